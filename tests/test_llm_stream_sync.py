"""Streams as real code uses them (issue 11 item 5): break, the sync twin, codec folding."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

import llmflow
from llmflow import LlmRequest, SyncCallbackError, intercepts, testing
from llmflow.atof import validate_stream
from llmflow.codecs import OpenAIChatCodec

Run = Callable[[Coroutine[Any, Any, Any]], Any]
CODEC = OpenAIChatCodec()


def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


CHUNKS = [chunk("Hel"), chunk("lo"), chunk("!", "stop")]


def request() -> LlmRequest:
    return LlmRequest({}, {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})


def ends(events: list[llmflow.Event]) -> list[llmflow.Event]:
    return [e for e in events if e.scope_category == "end" and e.category == "llm"]


def test_break_out_of_the_awaited_stream_ends_at_once_and_closes_the_provider(
    run_async: Run,
) -> None:
    log: list[str] = []

    async def provider(req: LlmRequest) -> AsyncIterator[dict[str, Any]]:
        try:
            for c in CHUNKS:
                yield c
        finally:
            log.append("provider closed")

    async def main() -> list[llmflow.Event]:
        with testing.capture() as events:
            async for _ in await llmflow.llm_stream_call_execute(
                "chat", request(), provider, response_codec=CODEC
            ):
                break
            llmflow.flush()
            assert len(ends(events)) == 1  # before any garbage collection or loop exit
            await asyncio.sleep(0)  # the provider's aclose runs on the loop
            assert log == ["provider closed"]
        return events

    (end,) = ends(run_async(main()))
    assert end.metadata is not None and end.metadata["cancelled"] is True
    assert end.data["choices"][0]["message"]["content"] == "Hel"


def test_break_without_async_with_prints_nothing_at_exit() -> None:
    script = textwrap.dedent(
        """
        import asyncio, llmflow
        from llmflow import LlmRequest

        async def provider(req):
            try:
                for i in range(5):
                    yield {"i": i}
                    await asyncio.sleep(0)
            finally:
                await asyncio.sleep(0)  # cleanup that needs the loop

        async def main():
            stream = await llmflow.llm_stream_call_execute(
                "s", LlmRequest({}, {}), provider, lambda c: None, lambda: {"ok": 1}
            )
            async for _ in stream:
                break

        asyncio.run(main())
        llmflow.flush()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert result.stderr == ""


def test_sync_twin_yields_chunks_and_ends_once_with_the_codec_fold() -> None:
    seen: list[Any] = []
    with testing.capture() as events:
        stream = llmflow.llm_stream_call_execute_sync(
            "chat",
            request(),
            lambda req: iter(CHUNKS),
            seen.append,
            codec=CODEC,
            response_codec=CODEC,
        )
        assert list(stream) == CHUNKS
    assert seen == CHUNKS  # the caller's collector ...
    start, end = [e for e in events if e.category == "llm"]
    assert "streaming" in start.attributes
    assert start.category_profile["model_name"] == "gpt-4o"
    # ... and the codec's fold, together
    assert end.data["choices"][0]["message"]["content"] == "Hello!"
    assert end.category_profile["annotated_response"]["finish_reason"] == "stop"
    assert end.metadata["stream.time_to_first_chunk_us"] >= 0
    assert validate_stream(e.to_json() for e in events) == []


def test_sync_twin_close_and_drop_each_end_once_cancelled() -> None:
    closed: list[str] = []

    def provider(req: LlmRequest) -> Iterator[dict[str, Any]]:
        try:
            yield from CHUNKS
        finally:
            closed.append("closed")

    with testing.capture() as events:
        with llmflow.llm_stream_call_execute_sync(
            "a", request(), provider, response_codec=CODEC
        ) as stream:
            next(stream)
        for _ in llmflow.llm_stream_call_execute_sync(
            "b", request(), provider, response_codec=CODEC
        ):
            break
    assert closed == ["closed", "closed"]
    assert [(e.name, e.metadata["cancelled"]) for e in ends(events)] == [("a", True), ("b", True)]


def test_sync_twin_records_a_provider_error_and_reraises_it() -> None:
    def provider(req: LlmRequest) -> Iterator[dict[str, Any]]:
        yield CHUNKS[0]
        raise ConnectionResetError("peer went away")

    with testing.capture() as events, pytest.raises(ConnectionResetError):
        list(
            llmflow.llm_stream_call_execute_sync("chat", request(), provider, response_codec=CODEC)
        )
    (end,) = ends(events)
    assert end.metadata["exception.type"] == "ConnectionResetError"


def test_sync_twin_runs_sync_stream_intercepts_and_refuses_async_ones() -> None:
    def retry(req: LlmRequest, next_: Any) -> Iterator[Any]:
        yield from next_()

    intercepts.register_llm_stream_execution("retry", 0, retry)
    assert (
        list(
            llmflow.llm_stream_call_execute_sync(
                "chat", request(), lambda r: iter(CHUNKS), response_codec=CODEC
            )
        )
        == CHUNKS
    )
    intercepts.deregister_llm_stream_execution("retry")

    async def async_intercept(req: LlmRequest, next_: Any) -> AsyncIterator[Any]:
        for c in next_():
            yield c

    intercepts.register_llm_stream_execution("async", 0, async_intercept)
    with testing.capture() as events, pytest.raises(SyncCallbackError, match="async"):
        list(
            llmflow.llm_stream_call_execute_sync(
                "chat", request(), lambda r: iter(CHUNKS), response_codec=CODEC
            )
        )
    assert len(ends(events)) == 1


async def test_a_collector_given_with_a_codec_keeps_the_codec_folding() -> None:
    seen: list[Any] = []

    async def provider(req: LlmRequest) -> AsyncIterator[dict[str, Any]]:
        for c in CHUNKS:
            yield c

    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider, seen.append, response_codec=CODEC
        )
        assert [c async for c in stream] == CHUNKS
    assert seen == CHUNKS
    (end,) = ends(events)
    assert end.data["choices"][0]["message"]["content"] == "Hello!"
    assert end.category_profile["annotated_response"]["finish_reason"] == "stop"


async def test_a_chunk_the_codec_cannot_read_is_counted_and_the_stream_goes_on(
    runtime: llmflow.Runtime,
) -> None:
    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        yield CHUNKS[0]
        yield {"choices": "not a list"}
        yield CHUNKS[1]

    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider, response_codec=CODEC
        )
        got = [c async for c in stream]
    assert len(got) == 3  # the caller still gets every chunk
    assert runtime.diagnostics().failure_count("codec:openai/chat-completions") == 1
    (end,) = ends(events)
    assert "exception.type" not in (end.metadata or {})
    assert end.data["choices"][0]["message"]["content"] == "Hello"


def test_uncollected_passes_the_rest_through_and_ends_like_iterating() -> None:
    def provider(req: LlmRequest) -> Iterator[dict[str, Any]]:
        yield from CHUNKS

    seen: list[Any] = []
    with testing.capture() as events:
        stream = llmflow.llm_stream_call_execute_sync(
            "chat", request(), provider, seen.append, codec=CODEC, response_codec=CODEC
        )
        first = next(stream)
        rest = list(stream.uncollected())
        assert list(stream.uncollected()) == []  # ended: nothing more
    assert [first, *rest] == CHUNKS
    assert seen == CHUNKS[:1]  # the rest went past the collector
    (end,) = ends(events)
    assert "cancelled" not in end.metadata
    assert end.data["choices"][0]["message"]["content"] == "Hel"  # the codec folded only that


def test_uncollected_before_the_first_chunk_collects_as_iterating_does() -> None:
    seen: list[Any] = []
    with testing.capture() as events:
        stream = llmflow.llm_stream_call_execute_sync(
            "chat", request(), lambda req: iter(CHUNKS), seen.append, response_codec=CODEC
        )
        assert list(stream.uncollected()) == CHUNKS
    assert seen == CHUNKS
    (end,) = ends(events)
    assert end.data["choices"][0]["message"]["content"] == "Hello!"


def test_uncollected_closed_early_or_failing_ends_the_call_once() -> None:
    closed: list[str] = []

    def provider(req: LlmRequest) -> Iterator[dict[str, Any]]:
        try:
            yield from CHUNKS
        finally:
            closed.append("closed")

    def failing(req: LlmRequest) -> Iterator[dict[str, Any]]:
        yield from CHUNKS[:2]
        raise ConnectionResetError("peer went away")

    with testing.capture() as events:
        stream = llmflow.llm_stream_call_execute_sync(
            "a", request(), provider, response_codec=CODEC
        )
        next(stream)
        rest = stream.uncollected()
        next(rest)
        rest.close()  # as a consumer breaking out of the relay
        rest.close()
        stream.close()
        stream = llmflow.llm_stream_call_execute_sync("b", request(), failing, response_codec=CODEC)
        next(stream)
        with pytest.raises(ConnectionResetError):
            list(stream.uncollected())
    assert closed == ["closed"]
    a, b = ends(events)
    assert a.metadata["cancelled"] is True
    assert b.metadata["exception.type"] == "ConnectionResetError"
