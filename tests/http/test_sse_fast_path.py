"""The fast path for reads shaped like the previous text-only chunk changes nothing.

The raw relay checks a read against the learned shape of the previous one and
then only decodes and appends its text; these tests compare it, on arbitrary
streams, with the path that parses and folds every event (an identity stream
intercept): the SDK's bytes, the end record and the codec failures must match.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import httpx2
import orjson
from _http_support import only_pair, sse_relayed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from llmflow.codecs import AnthropicStreamAccumulator, OpenAIChatStreamAccumulator
from llmflow.http import _transport
from llmflow.testing import capture

CHAT_URL = "http://127.0.0.1:9/v1/chat/completions"
CHAT_BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
MESSAGES_URL = "http://127.0.0.1:9/v1/messages"
MESSAGES_BODY = {
    "model": "claude",
    "max_tokens": 10,
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}

# Bytes that, put raw into a text slot, may make a valid string, another structure or junk.
_RAW = st.binary(max_size=12) | st.lists(
    st.sampled_from([b'"', b"\\", b",", b":", b"{", b"}", b"a", b"u", b"0", b"\\u00e9", b'\\"']),
    max_size=8,
).map(b"".join)
_ENCODINGS = [
    lambda s: orjson.dumps(s)[1:-1],
    lambda s: json.dumps(s, ensure_ascii=True)[1:-1].encode(),  # \\uXXXX escapes
    lambda s: orjson.dumps(s)[1:-1].replace(b"/", b"\\/"),
]


def _sse(data: bytes, event: bytes | None = None) -> bytes:
    return (b"event: " + event + b"\n" if event else b"") + b"data: " + data + b"\n\n"


# -- OpenAI chat --------------------------------------------------------------------------


def _chat_text(body: bytes, index: int, obfuscation: bytes | None, head: bytes) -> bytes:
    """A text chunk as a provider writes it, the text's string body given as raw bytes."""
    tail = b'"},"logprobs":null,"finish_reason":null}]'
    if obfuscation is not None:
        tail += b',"obfuscation":"' + obfuscation + b'"'
    return _sse(head + b',"choices":[{"index":%d,"delta":{"content":"' % index + body + tail + b"}")


def _chat_chunk(choice: dict[str, Any], head: bytes, **top: Any) -> bytes:
    extra = b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in top.items())
    return _sse(head + b',"choices":[' + orjson.dumps(choice) + b"]" + extra + b"}")


_HEADS = st.sampled_from(
    [b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"'] * 4
    + [b'{"id":"c2","object":"chat.completion.chunk","created":1,"model":"m"']
)
_INDEX = st.sampled_from([0, 0, 0, 0, 0, 1])
_OBFUSCATION = st.sampled_from([None, b"abc"]) | st.text("abcXYZ019", max_size=6).map(str.encode)
# Texts equal to other strings of the chunk (a slot found in the wrong place must not matter).
_TEXT = st.text(max_size=8) | st.sampled_from(["c1", "c2", "m", "chat.completion.chunk", "abc"])


@st.composite
def _chat_frame(draw: st.DrawFn) -> bytes:
    head, index = draw(_HEADS), draw(_INDEX)
    kind = draw(st.integers(0, 12))
    if kind <= 5:  # the usual text chunk, in one of the encodings providers use
        body = draw(st.sampled_from(_ENCODINGS))(draw(_TEXT))
        return _chat_text(body, index, draw(_OBFUSCATION), head)
    if kind <= 7:  # the same shape with raw bytes in the text or the obfuscation slot
        raw, obfuscation = draw(_RAW), draw(_OBFUSCATION)
        if kind == 7:
            raw, obfuscation = b"a", raw
        return _chat_text(raw, index, obfuscation, head)
    kind -= 3
    if kind == 5:
        delta = draw(
            st.sampled_from(
                [
                    {"role": "assistant", "content": ""},
                    {"refusal": "no"},
                    {},
                    {"content": "x", "role": "assistant"},
                    {"content": None},
                    {"tool_calls": [{"index": 0, "id": "t", "function": {"name": "f"}}]},
                    {"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]},
                    {"content": 5},
                ]
            )
        )
        choice = {"index": index, "delta": delta, "finish_reason": None}
        return _chat_chunk(choice, head)
    if kind == 6:  # finish reasons, logprobs, usage
        finish = draw(st.sampled_from([None, "stop", "length", "tool_calls"]))
        choice = {"index": index, "delta": {"content": "z"}, "finish_reason": finish}
        if draw(st.booleans()):
            choice["logprobs"] = {"content": [{"token": "z", "logprob": -0.1}]}
        usage = draw(st.sampled_from([None, {"prompt_tokens": 1, "completion_tokens": 2}]))
        return _chat_chunk(choice, head, usage=usage)
    if kind == 7:
        return _chat_chunk({"index": index, "delta": {"content": "a"}}, head, usage={"x": 1})
    if kind == 8:
        return draw(st.sampled_from([b": keep-alive\n\n", b"data: {not json\n\n", b"\n\n"]))
    return _chat_text(b"a", index, None, head).replace(b"\n\n", b"\r\n\r\n")


def _reads(frames: list[bytes], cuts: list[int], merge: bool) -> list[bytes]:
    """One read per frame (the fast path's case), or the whole stream cut at ``cuts``."""
    if not merge:
        return frames
    stream = b"".join(frames)
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _same_as_parsed(reads: list[bytes], url: str, body: Any) -> Any:
    raw_parts, raw_data, raw_failures = sse_relayed(reads, url, body)
    parts, data, failures = sse_relayed(reads, url, body, parsed=True)
    assert b"".join(raw_parts) == b"".join(parts) == b"".join(reads)
    assert raw_data == data
    assert raw_failures == failures
    return raw_data


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    frames=st.lists(_chat_frame(), max_size=14),
    cuts=st.lists(st.integers(0, 10_000), max_size=4),
    merge=st.integers(0, 4).map(lambda n: n == 0),
)
def test_openai_chat_streams_fold_the_same_with_the_fast_path(
    frames: list[bytes], cuts: list[int], merge: bool
) -> None:
    _same_as_parsed([*_reads(frames, cuts, merge), b"data: [DONE]\n\n"], CHAT_URL, CHAT_BODY)


# -- Anthropic Messages -----------------------------------------------------------------


def _delta(index: int, kind: bytes, key: bytes, body: bytes) -> bytes:
    data = b'{"type":"content_block_delta","index":%d,"delta":{"type":"%s","%s":"%s"}}' % (
        index,
        kind,
        key,
        body,
    )
    return _sse(data, b"content_block_delta")


def _event(payload: dict[str, Any]) -> bytes:
    return _sse(orjson.dumps(payload), str(payload["type"]).encode())


_BLOCKS = {
    "text": (b"text_delta", b"text"),
    "thinking": (b"thinking_delta", b"thinking"),
    "tool_use": (b"input_json_delta", b"partial_json"),
}


@st.composite
def _messages_frame(draw: st.DrawFn) -> bytes:
    index = draw(st.sampled_from([0, 0, 0, 1]))
    kind = draw(st.integers(0, 10))
    if kind <= 5:
        delta_kind, key = _BLOCKS[draw(st.sampled_from(list(_BLOCKS)))]
        text = draw(st.text(max_size=8) | st.sampled_from(["text_delta", "content_block_delta"]))
        return _delta(index, delta_kind, key, draw(st.sampled_from(_ENCODINGS))(text))
    if kind == 6:
        return _delta(index, b"text_delta", b"text", draw(_RAW))
    kind -= 2
    if kind == 5:
        block = draw(
            st.sampled_from(
                [
                    {"type": "text", "text": ""},
                    {"type": "thinking", "thinking": ""},
                    {"type": "tool_use", "id": "t", "name": "f", "input": {}},
                ]
            )
        )
        return _event({"type": "content_block_start", "index": index, "content_block": block})
    if kind == 6:
        return _event({"type": "content_block_stop", "index": index})
    if kind == 7:
        delta = draw(
            st.sampled_from(
                [
                    {"type": "signature_delta", "signature": "s"},
                    {"type": "citations_delta", "citation": {"x": 1}},
                    {"type": "text_delta"},
                    {"type": "text_delta", "text": 3},
                    {"type": "other", "text": "q"},
                ]
            )
        )
        return _event({"type": "content_block_delta", "index": index, "delta": delta})
    return draw(
        st.sampled_from(
            [
                _event({"type": "ping"}),
                _event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
                b": keep-alive\n\n",
                b"event: content_block_delta\ndata: {oops\n\n",
            ]
        )
    )


_START = _event(
    {
        "type": "message_start",
        "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": []},
    }
)


@_SETTINGS
@given(
    frames=st.lists(_messages_frame(), max_size=14),
    cuts=st.lists(st.integers(0, 10_000), max_size=4),
    merge=st.integers(0, 4).map(lambda n: n == 0),
)
def test_anthropic_streams_fold_the_same_with_the_fast_path(
    frames: list[bytes], cuts: list[int], merge: bool
) -> None:
    reads = [_START, *_reads(frames, cuts, merge), _event({"type": "message_stop"})]
    _same_as_parsed(reads, MESSAGES_URL, MESSAGES_BODY)


# -- the fast path is taken ---------------------------------------------------------------


def _counting(monkeypatch: Any) -> list[tuple[int, int]]:
    """Record ``(hits, tries)`` of every reader as it finishes."""
    seen: list[tuple[int, int]] = []
    finish = _transport._ChunkReader.finish

    def counted(reader: Any) -> None:
        seen.append((reader._hits, reader._tries))
        finish(reader)

    monkeypatch.setattr(_transport._ChunkReader, "finish", counted)
    return seen


HEAD = b'{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"'


def test_openai_chunks_with_a_varying_obfuscation_take_the_fast_path(monkeypatch: Any) -> None:
    seen = _counting(monkeypatch)
    texts = ["Hel", 'lo "w', "\\orld", "é☃", "/"]
    frames = [
        _chat_text(orjson.dumps(text)[1:-1], 0, b"abc"[: i % 4], HEAD)
        for i, text in enumerate(texts)
    ]
    data = _same_as_parsed([*frames, b"data: [DONE]\n\n"], CHAT_URL, CHAT_BODY)
    assert data["choices"][0]["message"]["content"] == "".join(texts)
    assert seen[0] == (4, 1)  # learned from the first, the four others fast


def test_anthropic_text_deltas_take_the_fast_path(monkeypatch: Any) -> None:
    seen = _counting(monkeypatch)
    start = _event({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    deltas = [_delta(0, b"text_delta", b"text", orjson.dumps(t)[1:-1]) for t in "abcd"]
    data = _same_as_parsed([_START, start, *deltas], MESSAGES_URL, MESSAGES_BODY)
    assert data["content"] == [{"type": "text", "text": "abcd"}]
    assert seen[0] == (3, 3)


def test_a_text_that_is_also_another_value_of_the_chunk_is_found_in_its_own_place(
    monkeypatch: Any,
) -> None:
    seen = _counting(monkeypatch)
    other = HEAD.replace(b'"c1"', b'"c9"')
    frames = [_chat_text(b"c1", 0, None, HEAD), _chat_text(b"c1", 0, None, other)]
    data = _same_as_parsed([*frames, _chat_text(b"c1", 0, None, HEAD)], CHAT_URL, CHAT_BODY)
    assert data["choices"][0]["message"]["content"] == "c1c1c1"
    assert seen[0][0] == 0  # the id slot was not taken for the text


def test_a_free_string_that_is_not_a_json_string_falls_back(monkeypatch: Any) -> None:
    seen = _counting(monkeypatch)
    frames = [_chat_text(b"a", 0, b"x", HEAD), _chat_text(b"b", 0, b'x"', HEAD)]
    frames.append(_chat_text(b"c", 0, b'\\u00e9"', HEAD))
    data = _same_as_parsed(frames, CHAT_URL, CHAT_BODY)
    assert data["choices"][0]["message"]["content"] == "a"
    assert seen[0][0] == 0


def test_a_read_where_the_learned_prefix_and_end_overlap_falls_back(monkeypatch: Any) -> None:
    seen = _counting(monkeypatch)
    for obfuscation in (None, b"o"):
        learned = _chat_text(b"a", 0, obfuscation, HEAD)
        at = learned.index(b'"a"') + 1  # the text's first byte
        end = learned.rindex(b'"', 0, -2)  # the closing quote of the last string
        empty = learned[:at] + learned[at + 1 :]
        frames = [learned, learned[:at] + learned[at + 2 :], learned]
        frames += [learned[:end] + learned[end + 1 :], empty]
        data = _same_as_parsed(frames, CHAT_URL, CHAT_BODY)
        assert data["choices"][0]["message"]["content"] == "aa"
    assert seen[0] == seen[2] == (0, 3)  # the overlapping read was no hit


def test_a_stream_that_never_fits_stops_trying(monkeypatch: Any) -> None:
    seen = _counting(monkeypatch)
    frames = [_chat_chunk({"index": 0, "delta": {"refusal": "r"}}, HEAD) for _ in range(20)]
    _same_as_parsed(frames, CHAT_URL, CHAT_BODY)
    assert seen[0] == (0, _transport._TRIES + 1)


def test_the_async_relay_takes_the_same_fast_path() -> None:
    frames = [_chat_text(orjson.dumps(t)[1:-1], 0, b"x", HEAD) for t in ["a", '"b', "c\\"]]

    class Reads(httpx2.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for frame in frames:
                yield frame

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Reads())

    client = llmflow.instrument(httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))

    async def go() -> list[bytes]:
        async with client.stream("POST", CHAT_URL, json=CHAT_BODY) as response:
            return [part async for part in response.aiter_raw()]

    with capture() as events:
        parts = asyncio.run(go())
    assert parts == frames
    assert all(part is frame for part, frame in zip(parts, frames, strict=True))
    _, end = only_pair(events)
    assert end.data == sse_relayed(frames, CHAT_URL, CHAT_BODY, parsed=True)[1]
    assert end.data["choices"][0]["message"]["content"] == 'a"bc\\'


# -- the accumulators' promise ------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(first=st.text(max_size=5), other=st.text(max_size=5), obfuscation=st.text(max_size=4))
def test_openai_text_slot_append_is_the_fold_of_the_same_chunk_with_other_text(
    first: str, other: str, obfuscation: str
) -> None:
    def chunk(text: str, free: str) -> dict[str, Any]:
        choice = {"index": 1, "delta": {"content": text}, "finish_reason": None}
        return {"id": "c", "choices": [choice], "usage": None, "obfuscation": free}

    folded, fast = OpenAIChatStreamAccumulator(), OpenAIChatStreamAccumulator()
    for accumulator in (folded, fast):
        accumulator.collect(chunk(first, "o"))
    slot = fast.text_slot(chunk(first, "o"))
    assert slot is not None and slot[0] == first and slot[2] == "o"
    folded.collect(chunk(other, obfuscation))
    slot[1](other)
    assert fast.finalize() == folded.finalize()


@settings(max_examples=200, deadline=None)
@given(first=st.text(max_size=5), other=st.text(max_size=5), kind=st.sampled_from(list(_BLOCKS)))
def test_anthropic_text_slot_append_is_the_fold_of_the_same_event_with_other_text(
    first: str, other: str, kind: str
) -> None:
    delta_kind, key = (part.decode() for part in _BLOCKS[kind])

    def event(text: str) -> dict[str, Any]:
        return {"type": "content_block_delta", "index": 2, "delta": {"type": delta_kind, key: text}}

    folded, fast = AnthropicStreamAccumulator(), AnthropicStreamAccumulator()
    for accumulator in (folded, fast):
        accumulator.collect({"type": "content_block_start", "index": 2, "content_block": {}})
        accumulator.collect(event(first))
    slot = fast.text_slot(event(first))
    assert slot is not None and slot[0] == first
    folded.collect(event(other))
    slot[1](other)
    assert fast.finalize() == folded.finalize()
