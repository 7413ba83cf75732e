"""The SSE relay's two paths give the SDK the same bytes and the record the same fold."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx2
import orjson
import pytest
from _http_support import only_pair, sse_client, sse_relayed
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow.testing import capture

URL = "http://127.0.0.1:9/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def _event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


FRAMES = [
    b": keep-alive\n\n",
    _event({"role": "assistant", "content": ""}),
    _event({"content": "Hel"}),
    b"data: {not json\n\n",
    _event({"content": "lo"}),
    _event({"refusal": "no"}),
    b'event: x\ndata: {"id":"c1","choices":[{"index":0,\ndata: "delta":{"content":"!"}}]}\n\n',
    _event({}, "stop"),
    b"data: [DONE]\n\n",
]
STREAM = b"".join(FRAMES)


def _received(reads: list[bytes], *, parsed: bool = False) -> tuple[list[bytes], Any, int]:
    return sse_relayed(reads, URL, BODY, parsed=parsed)


def test_without_a_stream_intercept_the_sdk_gets_the_providers_bytes_event_by_event() -> None:
    parts, data, failures = _received(list(FRAMES))
    assert b"".join(parts) == STREAM
    assert all(part.endswith(b"\n\n") for part in parts)  # whole events only
    assert data["choices"][0]["message"]["content"] == "Hello!"
    assert data["choices"][0]["message"]["refusal"] == "no"
    assert failures == 1  # the malformed frame, counted once, still relayed


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_the_raw_relay_and_the_intercept_path_fold_the_same_whatever_the_reads(
    cuts: list[int],
) -> None:
    bounds = [0, *sorted(set(cuts)), len(STREAM)]
    reads = [STREAM[a:b] for a, b in itertools.pairwise(bounds)]
    raw_parts, raw_data, raw_failures = _received(reads)
    parts, data, failures = _received(reads, parsed=True)
    assert b"".join(raw_parts) == b"".join(parts) == STREAM
    assert raw_data == data
    assert raw_failures == failures == 1


@pytest.mark.parametrize("stop_after", [1, 3])
def test_closing_the_raw_relay_early_folds_only_what_reached_the_sdk(stop_after: int) -> None:
    with capture() as events:
        with sse_client(list(FRAMES)).stream("POST", URL, json=BODY) as response:
            for count, _ in enumerate(response.iter_raw(), 1):
                if count == stop_after:
                    break
    _, end = only_pair(events)
    assert end.metadata["cancelled"] is True
    assert end.data["choices"][0]["message"]["content"] == ("" if stop_after == 1 else "Hello")


def test_the_async_raw_relay_relays_the_same_bytes_and_fold() -> None:
    class Reads(httpx2.AsyncByteStream):
        async def __aiter__(self) -> Any:
            for frame in FRAMES:
                yield frame

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Reads())

    client = llmflow.instrument(httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))

    async def go() -> bytes:
        async with client.stream("POST", URL, json=BODY) as response:
            return b"".join([part async for part in response.aiter_raw()])

    with capture() as events:
        received = asyncio.run(go())
    assert received == STREAM
    _, end = only_pair(events)
    assert end.data["choices"][0]["message"]["content"] == "Hello!"


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_a_read_cut_at_any_byte_gives_the_same_bytes_and_record(line_end: bytes) -> None:
    stream = STREAM.replace(b"\n", line_end)
    _, expected, expected_failures = _received([stream], parsed=True)  # parsed as they come
    assert expected["choices"][0]["message"]["content"] == "Hello!"
    for cut in range(1, len(stream)):
        parts, data, failures = _received([stream[:cut], stream[cut:]])
        assert b"".join(parts) == stream
        assert (data, failures) == (expected, expected_failures), cut


def test_the_usual_read_reaches_the_sdk_as_the_same_bytes_object() -> None:
    reads = [bytes(frame) for frame in FRAMES]  # fresh objects: identity means no copy
    parts, _, _ = _received(reads)
    assert parts[0] == reads[0] + reads[1]  # the keep-alive goes out with the first chunk
    assert parts[1] is reads[2]
    assert parts[2] == reads[3] + reads[4]  # the malformed frame goes out with the next chunk
    assert parts[3] is reads[5]
