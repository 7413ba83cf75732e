"""The SSE splitter keeps every byte and finds every event, however the network cuts the stream."""

from __future__ import annotations

from hypothesis import given
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
