"""The SSE splitter keeps every byte and finds every event, however the network cuts the stream."""

from __future__ import annotations

import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from llmflow.http._sse import SseSplitter, encode_event

payloads = st.lists(
    st.dictionaries(st.sampled_from(["type", "x", "delta"]), st.text(max_size=8), max_size=3),
    min_size=1,
    max_size=8,
)
line_ends = st.sampled_from([b"\n", b"\r\n"])


@given(
    payloads,
    st.lists(st.integers(min_value=1, max_value=40), max_size=30),
    line_ends,
    st.booleans(),
)
def test_any_chunking_yields_the_same_events_and_every_byte_once(
    events: list[dict[str, str]], cuts: list[int], line_end: bytes, named: bool
) -> None:
    frames = [encode_event(e, named).replace(b"\n", line_end) for e in events]
    stream = b": keep-alive" + line_end * 2 + b"".join(frames)
    splitter = SseSplitter()
    got: list[tuple[bytes, bytes | None]] = []
    position = 0
    for cut in cuts:
        got += splitter.feed(stream[position : position + cut])
        position += cut
    got += splitter.feed(stream[position:])
    assert b"".join(raw for raw, _ in got) + splitter.rest() == stream
    datas = [data for _, data in got if data is not None]
    assert len(datas) == len(events)
    assert got[0][1] is None  # the comment has no data


def test_multi_line_data_is_joined_and_fields_like_database_are_not_data() -> None:
    splitter = SseSplitter()
    (event,) = splitter.feed(b"event: x\ndata: a\ndata:b\ndatabase: no\nid: 1\n\n")
    assert event[1] == b"a\nb"


# The splitter as it was before the "\n"-only fast path: the record must not change.
_OLD_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_OLD_LINE = re.compile(rb"\r\n|\n|\r")


def _old_data_of(block: bytes) -> bytes | None:
    data: list[bytes] = []
    for line in _OLD_LINE.split(block):
        if line == b"data" or line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data) if data else None


def _old_events(stream: bytes) -> tuple[list[tuple[bytes, bytes | None]], bytes]:
    events, start = [], 0
    while (found := _OLD_BOUNDARY.search(stream, start)) is not None:
        events.append((stream[start : found.end()], _old_data_of(stream[start : found.start()])))
        start = found.end()
    return events, stream[start:]


lines = st.sampled_from(
    [
        b"data: {}",
        b'data: {"a": 1}',
        b"data:x",
        b"data",
        b"data: ",
        b"database: no",
        b"event: delta",
        b"event:",
        b": comment",
        b"id: 7",
        b"retry: 10",
        b"data: [DONE]",
        b"data: {not json",
        b'event: delta\ndata: {"a": 1}',  # the usual named event, with "\n" line ends
        b"event: delta\ndata: x\ndata: y",
    ]
)
ends = st.sampled_from([b"\n", b"\r\n", b"\r"])
blocks = st.lists(st.tuples(lines, ends), min_size=0, max_size=4).map(
    lambda pairs: b"".join(line + end for line, end in pairs)
)


@settings(max_examples=400)
@given(st.lists(st.tuples(blocks, ends), max_size=8), st.data())
def test_the_splitter_finds_the_same_events_as_before_however_the_reads_fall(
    events: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(block + end for block, end in events) + data.draw(blocks)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10)))
    splitter = SseSplitter()
    got: list[tuple[bytes, bytes | None]] = []
    for a, b in itertools.pairwise([0, *cuts, len(stream)]):
        got += splitter.feed(stream[a:b])
    assert (got, splitter.rest()) == _old_events(stream)


def test_named_and_one_line_events_read_directly_match_the_line_by_line_reading() -> None:
    splitter = SseSplitter()
    stream = b'event: x\ndata: {"a":1}\n\nevent: y\ndata: z\nid: 1\n\nevent: e\n\ndata: 1\n\n'
    assert splitter.feed(stream) == _old_events(stream)[0]
    assert [data for _, data in splitter.feed(stream)] == [b'{"a":1}', b"z", None, b"1"]
