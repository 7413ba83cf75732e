"""SPEC §4.4: ``llm_stream_call_execute`` and stream execution intercepts."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

import llmflow
from _llm_support import (
    TinyCodec,
    assert_valid_stream,
    llm_events,
    request,
)
from llmflow import (
    GuardrailRejected,
    LlmRequest,
    LlmStreamCallExecuteParams,
    guardrails,
    intercepts,
    testing,
)

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]
CHUNKS = [{"delta": "Hel"}, {"delta": "lo"}, {"delta": "!"}]


def provider_of(
    chunks: list[Any], *, fail_after: int | None = None, log: list[str] | None = None
) -> Callable[[LlmRequest], AsyncIterator[Any]]:
    """A provider stream yielding ``chunks`` (raising after ``fail_after`` of them)."""

    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        if log is not None:
            log.append("provider opened")
        try:
            for index, chunk in enumerate(chunks):
                if index == fail_after:
                    raise ConnectionResetError("provider dropped the stream")
                yield chunk
                await asyncio.sleep(0)
            if fail_after == len(chunks):
                raise ConnectionResetError("provider dropped the stream")
        finally:
            if log is not None:
                log.append("provider closed")

    return provider


class Collected:
    """A collector/finalizer pair that keeps the chunks it saw."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []

    def collect(self, chunk: Any) -> None:
        self.chunks.append(chunk)

    def finalize(self) -> Any:
        return {"text": "".join(c["delta"] for c in self.chunks), "n": len(self.chunks)}


def _ends(events: list[llmflow.Event]) -> list[llmflow.Event]:
    return [e for e in llm_events(events) if e.scope_category == "end"]


def _facts(metadata: dict[str, object] | None) -> dict[str, object] | None:
    """End metadata without the measured time to first chunk (present when a chunk came)."""
    if metadata is None:
        return None
    kept = {k: v for k, v in metadata.items() if k != "stream.time_to_first_chunk_us"}
    return kept or None


# -- normal streams ------------------------------------------------------------------


async def test_stream_yields_chunks_in_order_and_the_collector_sees_each() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        got = [chunk async for chunk in stream]
    assert got == CHUNKS
    assert collected.chunks == CHUNKS
    start, end = events
    assert start.attributes == end.attributes == ("streaming",)
    assert end.data == {"text": "Hello!", "n": 3}
    assert _facts(end.metadata) is None
    assert_valid_stream(events)


async def test_streaming_attribute_joins_the_given_attributes() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat",
            request(),
            provider_of(CHUNKS),
            collected.collect,
            collected.finalize,
            attributes=["remote", llmflow.LlmAttributes.STREAMING],
            model_name="tiny-1",
        )
        async for _chunk in stream:
            pass
    assert [e.attributes for e in events] == [("remote", "streaming")] * 2
    assert [e.category_profile for e in events] == [{"model_name": "tiny-1"}] * 2


async def test_awaiting_emits_the_start_and_iterating_runs_the_provider() -> None:
    log: list[str] = []
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS, log=log), collected.collect, collected.finalize
        )
        llmflow.flush()
        assert [e.scope_category for e in events] == ["start"]
        assert log == []
        async for _chunk in stream:
            pass
    assert log == ["provider opened", "provider closed"]
    assert [e.scope_category for e in events] == ["start", "end"]


async def test_stream_exhausted_then_iterated_again_emits_nothing_more() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        async for _chunk in stream:
            pass
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await stream.aclose()
    assert len(_ends(events)) == 1


async def test_stream_func_may_be_a_coroutine_returning_an_iterator() -> None:
    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        await asyncio.sleep(0)
        return provider_of(CHUNKS)(req)

    collected = Collected()
    stream = await llmflow.llm_stream_call_execute(
        "chat", request(), provider, collected.collect, collected.finalize
    )
    assert [c async for c in stream] == CHUNKS


async def test_stream_runs_the_managed_pipeline_before_the_start() -> None:
    received: list[LlmRequest] = []
    intercepts.register_llm_request(
        "tag", 0, lambda req, ctx: LlmRequest({**req.headers, "x-tag": "1"}, req.content)
    )
    guardrails.register_llm_sanitize_response(
        "redact", 0, lambda resp, ctx: {**resp, "text": "[redacted]"}
    )

    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        received.append(req)
        for chunk in CHUNKS:
            yield chunk

    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider, collected.collect, collected.finalize
        )
        async for _chunk in stream:
            pass
    assert received[0].headers["x-tag"] == "1"
    assert events[0].data["headers"]["x-tag"] == "1"
    assert events[1].data == {"text": "[redacted]", "n": 3}


async def test_stream_guardrail_rejection_raises_on_await_and_emits_no_llm_events() -> None:
    guardrails.register_llm_conditional_execution("deny", 0, lambda req: "no streaming")
    log: list[str] = []
    collected = Collected()
    with testing.capture() as events:
        with pytest.raises(GuardrailRejected) as info:
            await llmflow.llm_stream_call_execute(
                "chat", request(), provider_of(CHUNKS, log=log), collected.collect, lambda: None
            )
    assert (info.value.guardrail, info.value.reason) == ("deny", "no streaming")
    assert llm_events(events) == []
    assert log == []
    assert [e.kind for e in events] == ["scope", "mark", "scope"]


# -- exactly one end on every path ---------------------------------------------------------


async def test_early_aclose_emits_one_end_marked_closed_early() -> None:
    log: list[str] = []
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS, log=log), collected.collect, collected.finalize
        )
        assert await stream.__anext__() == CHUNKS[0]
        await stream.aclose()
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
    assert log == ["provider opened", "provider closed"]
    (end,) = _ends(events)
    assert _facts(end.metadata) == {"cancelled": True}
    assert end.data == {"text": "Hel", "n": 1}  # the partial response
    assert_valid_stream(events)


async def test_leaving_async_with_early_emits_one_end() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        async with stream:
            async for _chunk in stream:
                break
    (end,) = _ends(events)
    assert _facts(end.metadata) == {"cancelled": True}


async def test_aclose_before_iterating_emits_one_end_and_never_opens_the_provider() -> None:
    log: list[str] = []
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS, log=log), collected.collect, collected.finalize
        )
        await stream.aclose()
    assert log == []
    (end,) = _ends(events)
    assert end.data == {"text": "", "n": 0}


async def test_collector_error_emits_one_end_closes_the_provider_and_reraises() -> None:
    log: list[str] = []
    boom = ValueError("collector choked")

    def collector(chunk: Any) -> None:
        if chunk == CHUNKS[1]:
            raise boom

    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS, log=log), collector, lambda: {"never": 1}
        )
        got = []
        with pytest.raises(ValueError) as info:
            async for chunk in stream:
                got.append(chunk)
        await stream.aclose()
    assert info.value is boom
    assert got == CHUNKS[:1]
    assert log == ["provider opened", "provider closed"]
    (end,) = _ends(events)
    assert end.data is None
    assert _facts(end.metadata) == {
        "exception.type": "ValueError",
        "exception.message": "collector choked",
    }
    assert_valid_stream(events)


async def test_provider_error_mid_stream_emits_one_end_and_reraises() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat",
            request(),
            provider_of(CHUNKS, fail_after=2),
            collected.collect,
            collected.finalize,
            data={"fallback": True},
        )
        got = []
        with pytest.raises(ConnectionResetError, match="dropped"):
            async for chunk in stream:
                got.append(chunk)
    assert got == CHUNKS[:2]
    (end,) = _ends(events)
    assert end.data == {"fallback": True}  # failure: null output, or the handle data
    assert end.metadata is not None
    assert end.metadata["exception.type"] == "ConnectionResetError"
    assert_valid_stream(events)


async def test_func_that_does_not_return_an_iterator_fails_with_one_end() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), lambda req: {"not": "a stream"}, collected.collect, lambda: None
        )
        with pytest.raises(TypeError, match="async iterator"):
            await stream.__anext__()
    (end,) = _ends(events)
    assert end.metadata is not None and end.metadata["exception.type"] == "TypeError"


async def test_finalizer_error_records_null_output_once(runtime: llmflow.Runtime) -> None:
    def finalizer() -> Any:
        raise KeyError("no final message")

    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, finalizer
        )
        got = [chunk async for chunk in stream]  # the caller's stream is complete
    assert got == CHUNKS
    (end,) = _ends(events)
    assert end.data is None
    assert end.metadata is not None and end.metadata["exception.type"] == "KeyError"
    assert runtime.diagnostics().failure_count("stream_finalizer") == 1
    assert_valid_stream(events)


def test_cancellation_mid_stream_emits_one_end_and_reraises(run_async: RunAsync) -> None:
    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        yield CHUNKS[0]
        await asyncio.Event().wait()
        yield CHUNKS[1]

    async def main() -> list[llmflow.Event]:
        first = asyncio.Event()
        collected = Collected()

        async def consume() -> None:
            stream = await llmflow.llm_stream_call_execute(
                "chat", request(), provider, collected.collect, collected.finalize
            )
            async for _chunk in stream:
                first.set()

        with testing.capture() as events:
            task = asyncio.create_task(consume())
            await first.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return events

    events = run_async(main())
    (end,) = _ends(events)
    assert end.metadata is not None
    assert end.metadata["exception.type"].endswith("CancelledError")
    assert_valid_stream(events)


async def test_abandoned_stream_still_ends_once() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        await stream.__anext__()
        del stream
        gc.collect()
        await asyncio.sleep(0)
    (end,) = _ends(events)
    assert _facts(end.metadata) == {"cancelled": True}
    assert_valid_stream(events)


# -- stream execution intercepts -----------------------------------------------------------


async def test_stream_execution_intercept_may_transform_chunks() -> None:
    async def upper(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        async for chunk in call_next():
            yield {"delta": chunk["delta"].upper()}

    intercepts.register_llm_stream_execution("upper", 0, upper)
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        got = [chunk async for chunk in stream]
    assert [c["delta"] for c in got] == ["HEL", "LO", "!"]
    assert events[-1].data == {"text": "HELLO!", "n": 3}


async def test_stream_execution_intercept_may_retry_by_calling_next_again() -> None:
    attempts: list[str] = []

    async def flaky(req: LlmRequest) -> AsyncIterator[Any]:
        attempts.append(req.content["model"])
        if len(attempts) == 1:
            raise ConnectionError("connect failed")
        for chunk in CHUNKS:
            yield chunk

    async def retry(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        try:
            async for chunk in call_next():
                yield chunk
        except ConnectionError:
            fallback = LlmRequest(req.headers, {**req.content, "model": "fallback"})
            async for chunk in call_next(fallback):
                yield chunk

    intercepts.register_llm_stream_execution("retry", 0, retry)
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), flaky, collected.collect, collected.finalize
        )
        got = [chunk async for chunk in stream]
    assert got == CHUNKS
    assert attempts == ["tiny-1", "fallback"]
    assert len(_ends(events)) == 1
    assert _facts(events[-1].metadata) is None


async def test_stream_execution_intercepts_nest_in_priority_order() -> None:
    def tagger(tag: str) -> Callable[[LlmRequest, Any], AsyncIterator[Any]]:
        async def intercept(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
            async for chunk in call_next():
                yield {"delta": chunk["delta"] + tag}

        return intercept

    intercepts.register_llm_stream_execution("inner", 2, tagger("i"))
    intercepts.register_llm_stream_execution("outer", 1, tagger("o"))
    collected = Collected()
    stream = await llmflow.llm_stream_call_execute(
        "chat", request(), provider_of(CHUNKS[:1]), collected.collect, collected.finalize
    )
    assert [c async for c in stream] == [{"delta": "Helio"}]


async def test_stream_execution_intercept_may_replace_the_stream() -> None:
    log: list[str] = []

    async def cached(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        yield {"delta": "cached"}

    intercepts.register_llm_stream_execution("cache", 0, cached)
    collected = Collected()
    stream = await llmflow.llm_stream_call_execute(
        "chat", request(), provider_of(CHUNKS, log=log), collected.collect, collected.finalize
    )
    assert [c async for c in stream] == [{"delta": "cached"}]
    assert log == []


async def test_stream_execution_intercept_error_emits_one_end() -> None:
    async def broken(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        raise RuntimeError("intercept bug")
        yield  # pragma: no cover - makes this an async generator

    intercepts.register_llm_stream_execution("broken", 0, broken)
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        with pytest.raises(RuntimeError, match="intercept bug"):
            async for _chunk in stream:
                pass
    (end,) = _ends(events)
    assert end.metadata is not None and end.metadata["exception.type"] == "RuntimeError"


def test_scope_local_stream_intercept_applies_under_its_scope_only(run_async: RunAsync) -> None:
    async def mark_chunks(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        async for chunk in call_next():
            yield {"delta": chunk["delta"] + "*"}

    async def run_stream() -> list[Any]:
        collected = Collected()
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS[:1]), collected.collect, collected.finalize
        )
        return [c async for c in stream]

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        async with llmflow.scope("tenant") as tenant:
            intercepts.register_llm_stream_execution("mark", 0, mark_chunks, scope=tenant)
            inside = await asyncio.create_task(run_stream())
            sibling_result = await sibling
        after = await run_stream()
        return inside, sibling_result, after

    sibling: asyncio.Task[list[Any]]

    async def outer() -> tuple[list[Any], list[Any], list[Any]]:
        nonlocal sibling
        sibling = asyncio.create_task(run_stream())  # created outside the scope
        return await main()

    inside, sibling_result, after = run_async(outer())
    assert inside == [{"delta": "Hel*"}]
    assert sibling_result == [{"delta": "Hel"}]
    assert after == [{"delta": "Hel"}]


# -- codecs ------------------------------------------------------------------------------


async def test_default_collector_and_finalizer_come_from_the_response_codec() -> None:
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat",
            request(),
            provider_of(CHUNKS),
            response_codec=TinyCodec(),
            model_name="tiny-1",
        )
        got = [chunk async for chunk in stream]
    assert got == CHUNKS
    end = events[-1]
    assert end.data == {"id": "stream", "text": "Hello!"}
    assert end.data_schema == TinyCodec.data_schema
    assert end.category_profile == {
        "model_name": "tiny-1",
        "annotated_response": {"id": "stream", "text": "Hello!"},
    }


async def test_request_codec_annotates_the_stream_start() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat",
            request(),
            provider_of(CHUNKS),
            collected.collect,
            collected.finalize,
            codec=TinyCodec(),
        )
        await stream.aclose()
    assert events[0].data_schema == TinyCodec.data_schema
    assert events[0].category_profile == {
        "model_name": "tiny-1",  # from the request body, via the codec
        "annotated_request": {"model": "tiny-1", "messages": ["hello"]},
    }


# -- params and bad input ------------------------------------------------------------------


async def test_stream_accepts_llm_stream_call_execute_params() -> None:
    collected = Collected()
    params = LlmStreamCallExecuteParams(
        name="chat",
        request=request(),
        func=provider_of(CHUNKS),
        collector=collected.collect,
        finalizer=collected.finalize,
        metadata={"m": 1},
    )
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(params)
        assert [c async for c in stream] == CHUNKS
    assert [_facts(e.metadata) for e in events] == [{"m": 1}] * 2


async def test_stream_params_and_keywords_together_raise_type_error() -> None:
    params = LlmStreamCallExecuteParams(
        name="chat", request=request(), func=provider_of(CHUNKS), response_codec=TinyCodec()
    )
    with testing.capture() as events:
        with pytest.raises(TypeError, match="not both"):
            await llmflow.llm_stream_call_execute(params, model_name="m")
    assert events == []


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (("chat", {"content": {}}, provider_of(CHUNKS), print, dict), "request"),
        (("chat", request(), "nope", print, dict), "func"),
        (("chat", request(), provider_of(CHUNKS), None, dict), "collector"),
        (("chat", request(), provider_of(CHUNKS), print, 3), "finalizer"),
        (("chat", LlmRequest({}, {"x": {1}}), provider_of(CHUNKS), print, dict), "request"),
    ],
)
async def test_stream_bad_input_names_the_parameter_and_emits_nothing(
    args: tuple[Any, ...], param: str
) -> None:
    guardrails.register_llm_conditional_execution("g", 0, lambda req: None)
    with testing.capture() as events:
        with pytest.raises(TypeError) as info:
            await llmflow.llm_stream_call_execute(*args)
    assert param in str(info.value)
    assert events == []


async def test_collector_error_wins_over_a_provider_that_fails_to_close(
    runtime: llmflow.Runtime,
) -> None:
    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        try:
            yield CHUNKS[0]
            yield CHUNKS[1]
        finally:
            raise OSError("close failed")  # a provider that misbehaves on close

    boom = ValueError("collector choked")

    def collector(chunk: Any) -> None:
        raise boom

    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider, collector, lambda: None
        )
        with pytest.raises(ValueError) as info:
            async for _chunk in stream:
                pass
    assert info.value is boom
    (end,) = _ends(events)
    assert end.metadata is not None and end.metadata["exception.type"] == "ValueError"
    assert runtime.diagnostics().failure_count("stream_close") == 1


async def test_stream_next_after_the_stream_ended_is_a_flow_error() -> None:
    saved: list[Any] = []

    async def keep(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        saved.append(call_next)
        async for chunk in call_next():
            yield chunk

    intercepts.register_llm_stream_execution("keep", 0, keep)
    collected = Collected()
    stream = await llmflow.llm_stream_call_execute(
        "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
    )
    async for _chunk in stream:
        pass
    with pytest.raises(llmflow.FlowError, match="keep"):
        saved[0]()


async def test_uncollected_passes_the_rest_by_the_collector_and_ends_once() -> None:
    collected = Collected()
    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        first = await stream.__anext__()
        rest = [chunk async for chunk in stream.uncollected()]
        assert [chunk async for chunk in stream.uncollected()] == []
    assert [first, *rest] == CHUNKS
    assert collected.chunks == CHUNKS[:1]
    (end,) = _ends(events)
    assert end.data == {"text": "Hel", "n": 1}
    assert "cancelled" not in (end.metadata or {})


async def test_uncollected_failing_or_unopened_ends_as_iterating_does() -> None:
    collected = Collected()
    with testing.capture() as events:
        failing = await llmflow.llm_stream_call_execute(
            "a", request(), provider_of(CHUNKS, fail_after=2), collected.collect, collected.finalize
        )
        await failing.__anext__()
        with pytest.raises(ConnectionResetError):
            async for _ in failing.uncollected():
                pass
        unopened = await llmflow.llm_stream_call_execute(
            "b", request(), provider_of(CHUNKS), collected.collect, collected.finalize
        )
        assert [chunk async for chunk in unopened.uncollected()] == CHUNKS  # collected
    a, b = _ends(events)
    assert a.metadata is not None and a.metadata["exception.type"] == "ConnectionResetError"
    assert b.data == {"text": "HelHello!", "n": 4}  # one collector saw both streams
