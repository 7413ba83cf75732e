"""SPEC §4.3, §4.5, §4.6: managed calls, conditional execution, request intercepts, twins."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import llmflow
from _llm_support import (
    BrokenCodec,
    TinyCodec,
    TinyRequest,
    assert_valid_stream,
    llm_events,
    phases,
    request,
    response,
)
from llmflow import (
    FlowError,
    GuardrailRejected,
    LlmCallExecuteParams,
    LlmRequest,
    SyncCallbackError,
    guardrails,
    intercepts,
    testing,
)

Execute = Callable[..., Any]


@pytest.fixture(params=["async", "sync"])
def execute(request: pytest.FixtureRequest) -> Execute:
    """``llm_call_execute`` run to completion, or its ``_sync`` twin (sync callbacks only)."""
    if request.param == "sync":
        return llmflow.llm_call_execute_sync

    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(llmflow.llm_call_execute(*args, **kwargs))

    return run


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch, runtime: llmflow.Runtime) -> list[str]:
    """A log that receives ``"emit <category> <phase> <name>"`` at the moment of emission."""
    log: list[str] = []
    original = runtime.emit

    def emit(event: llmflow.Event) -> None:
        log.append(f"emit {event.category} {event.scope_category or event.kind} {event.name}")
        original(event)

    monkeypatch.setattr(runtime, "emit", emit)
    return log


def _exception_metadata(event: llmflow.Event) -> tuple[str, str]:
    assert event.metadata is not None
    return event.metadata["exception.type"], event.metadata["exception.message"]


# -- §4.3 order ----------------------------------------------------------------------


def test_managed_call_pipeline_order(execute: Execute, emitted: list[str]) -> None:
    log = emitted

    def guard(req: LlmRequest) -> None:
        log.append("guardrail")

    def rewrite(req: LlmRequest, ctx: Any) -> LlmRequest:
        log.append("request intercept")
        return req

    def sanitize_request(req: LlmRequest, ctx: Any) -> LlmRequest:
        log.append("sanitize-request")
        return req

    def around(req: LlmRequest, call_next: Any) -> Any:
        log.append("execution intercept: before")
        result = call_next()
        log.append("execution intercept: after")
        return result

    def sanitize_response(resp: Any, ctx: Any) -> Any:
        log.append("sanitize-response")
        return resp

    def provider(req: LlmRequest) -> Any:
        log.append("func")
        return response()

    guardrails.register_llm_conditional_execution("guard", 0, guard)
    intercepts.register_llm_request("rewrite", 0, rewrite)
    guardrails.register_llm_sanitize_request("sanitize-request", 0, sanitize_request)
    if execute is llmflow.llm_call_execute_sync:
        intercepts.register_llm_execution("around", 0, around)
    else:

        async def around_async(req: LlmRequest, call_next: Any) -> Any:
            log.append("execution intercept: before")
            result = await call_next()
            log.append("execution intercept: after")
            return result

        intercepts.register_llm_execution("around", 0, around_async)
    guardrails.register_llm_sanitize_response("sanitize-response", 0, sanitize_response)

    assert execute("chat", request(), provider) == response()
    assert log == [
        "emit guardrail start guard",
        "guardrail",
        "emit guardrail end guard",
        "request intercept",
        "sanitize-request",
        "emit llm start chat",
        "execution intercept: before",
        "func",
        "execution intercept: after",
        "sanitize-response",
        "emit llm end chat",
    ]


def test_managed_call_returns_the_raw_result_and_records_start_and_end(execute: Execute) -> None:
    result = {"id": "r-1", "text": "hi", "raw": True}
    with testing.capture() as events:
        got = execute(
            "chat",
            request(),
            lambda req: result,
            model_name="tiny-1",
            metadata={"m": 1},
            attributes=["remote"],
        )
    assert got is result
    start, end = events
    assert start.data == {
        "headers": {"content-type": "application/json"},
        "content": {"model": "tiny-1", "messages": ["hello"]},
    }
    assert end.data == result
    assert start.category_profile == end.category_profile == {"model_name": "tiny-1"}
    assert start.metadata == end.metadata == {"m": 1}
    assert start.attributes == end.attributes == ("remote",)
    assert_valid_stream(events)


async def test_managed_call_accepts_async_func() -> None:
    async def provider(req: LlmRequest) -> Any:
        await asyncio.sleep(0)
        return response("async")

    with testing.capture() as events:
        assert await llmflow.llm_call_execute("chat", request(), provider) == response("async")
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[1].data == response("async")


async def test_managed_call_accepts_sync_and_async_middleware_together() -> None:
    seen: list[str] = []

    async def guard(req: LlmRequest) -> None:
        seen.append("async guard")

    def sync_guard(req: LlmRequest) -> None:
        seen.append("sync guard")

    async def rewrite(req: LlmRequest, ctx: Any) -> LlmRequest:
        seen.append("async intercept")
        return LlmRequest(req.headers, {**req.content, "temperature": 0})

    def around(req: LlmRequest, call_next: Any) -> Any:
        seen.append("sync execution intercept")
        return call_next()  # an awaitable in the async entry point; llmflow awaits it

    guardrails.register_llm_conditional_execution("a", 0, guard)
    guardrails.register_llm_conditional_execution("b", 0, sync_guard)
    intercepts.register_llm_request("rewrite", 0, rewrite)
    intercepts.register_llm_execution("around", 0, around)
    got = await llmflow.llm_call_execute("chat", request(), lambda req: req.content)
    assert got["temperature"] == 0
    assert seen == ["async guard", "sync guard", "async intercept", "sync execution intercept"]


def test_managed_call_parent_is_the_current_scope_and_func_runs_under_the_llm_span(
    execute: Execute,
) -> None:
    inside: list[object] = []

    def provider(req: LlmRequest) -> Any:
        inside.append(llmflow.current_scope())
        llmflow.mark("provider.called")
        return response()

    with testing.capture() as events:
        with llmflow.scope("agent", "agent") as agent:
            execute("chat", request(), provider)
        assert llmflow.current_scope() is None
    start = next(e for e in events if e.category == "llm")
    mark = next(e for e in events if e.kind == "mark")
    assert start.parent_uuid == agent.uuid
    assert mark.parent_uuid == start.uuid
    assert getattr(inside[0], "uuid", None) == start.uuid
    assert_valid_stream(events)


# -- §4.3 / §4.5 rejection -----------------------------------------------------------


def test_rejection_raises_guardrail_rejected_with_name_and_reason_and_emits_no_llm_events(
    execute: Execute,
) -> None:
    calls: list[str] = []
    guardrails.register_llm_conditional_execution("allow", 0, lambda req: None)
    guardrails.register_llm_conditional_execution("deny", 1, lambda req: "blocked topic")
    guardrails.register_llm_conditional_execution("later", 2, lambda req: calls.append("later"))
    intercepts.register_llm_request("rewrite", 0, lambda req, ctx: calls.append("i") or req)

    with testing.capture() as events:
        with pytest.raises(GuardrailRejected) as info:
            execute("chat", request(), lambda req: calls.append("func"))
    assert info.value.guardrail == "deny"
    assert info.value.reason == "blocked topic"
    assert isinstance(info.value, FlowError)
    assert calls == []
    assert llm_events(events) == []
    assert phases(events) == [
        ("guardrail", "start", "allow"),
        ("guardrail", "end", "allow"),
        ("guardrail", "start", "deny"),
        ("mark", None, "llmflow.guardrail_rejected"),
        ("guardrail", "end", "deny"),
    ]
    deny_start = events[2]
    rejected = events[3]
    assert rejected.category == "guardrail"
    assert rejected.parent_uuid == deny_start.uuid
    assert rejected.data == {"guardrail": "deny", "reason": "blocked topic", "call": "chat"}
    assert_valid_stream(events)


def test_guardrail_exception_is_an_error_not_a_rejection(execute: Execute) -> None:
    boom = RuntimeError("guardrail backend down")

    def broken(req: LlmRequest) -> None:
        raise boom

    guardrails.register_llm_conditional_execution("broken", 0, broken)
    with testing.capture() as events:
        with pytest.raises(RuntimeError) as info:
            execute("chat", request(), lambda req: response())
    assert info.value is boom
    assert not isinstance(info.value, GuardrailRejected)
    assert llm_events(events) == []
    assert [e.kind for e in events] == ["scope", "scope"]  # no rejection mark
    end = events[1]
    assert (end.category, end.scope_category, end.name) == ("guardrail", "end", "broken")
    assert _exception_metadata(end) == ("RuntimeError", "guardrail backend down")
    assert_valid_stream(events)


def test_guardrail_returning_neither_none_nor_str_is_an_error(execute: Execute) -> None:
    guardrails.register_llm_conditional_execution("bool", 0, lambda req: False)
    with testing.capture() as events:
        with pytest.raises(TypeError, match="bool"):
            execute("chat", request(), lambda req: response())
    assert llm_events(events) == []
    assert _exception_metadata(events[-1])[0] == "TypeError"


# -- §4.3 failure and cancellation ----------------------------------------------------


def test_failure_after_start_emits_one_end_and_reraises_the_original(execute: Execute) -> None:
    boom = ValueError("provider said no")

    def provider(req: LlmRequest) -> Any:
        raise boom

    with testing.capture() as events:
        with pytest.raises(ValueError) as info:
            execute("chat", request(), provider, metadata={"m": 1})
    assert info.value is boom
    start, end = events
    assert end.scope_category == "end" and end.uuid == start.uuid
    assert end.data is None
    assert end.metadata == {
        "m": 1,
        "exception.type": "ValueError",
        "exception.message": "provider said no",
    }
    assert_valid_stream(events)


def test_failure_end_data_is_the_handle_data(execute: Execute) -> None:
    def provider(req: LlmRequest) -> Any:
        raise KeyError("k")

    with testing.capture() as events:
        with pytest.raises(KeyError):
            execute("chat", request(), provider, data={"conversation": 1})
    assert events[-1].data == {"conversation": 1}
    assert events[0].data["content"] == request().content


def test_failure_in_an_execution_intercept_emits_one_end(execute: Execute) -> None:
    class Custom(Exception):
        pass

    def failing(req: LlmRequest, call_next: Any) -> Any:
        raise Custom("intercept failed")

    intercepts.register_llm_execution("failing", 0, failing)
    with testing.capture() as events:
        with pytest.raises(Custom):
            execute("chat", request(), lambda req: response())
    assert [e.scope_category for e in events] == ["start", "end"]
    kind, message = _exception_metadata(events[1])
    assert kind.endswith("Custom") and message == "intercept failed"


def test_cancellation_after_start_emits_one_end_and_reraises(
    run_async: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    seen: list[BaseException] = []
    caught: list[BaseException] = []

    async def main() -> list[llmflow.Event]:
        started = asyncio.Event()

        async def provider(req: LlmRequest) -> Any:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError as exc:
                seen.append(exc)
                raise

        async def caller() -> None:
            try:
                await llmflow.llm_call_execute("chat", request(), provider)
            except asyncio.CancelledError as exc:
                caught.append(exc)
                raise

        with testing.capture() as events:
            task = asyncio.create_task(caller())
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return events

    events = run_async(main())
    assert caught and caught[0] is seen[0]
    start, end = events
    assert end.scope_category == "end" and end.uuid == start.uuid
    assert _exception_metadata(end)[0].endswith("CancelledError")
    assert end.data is None
    assert_valid_stream(events)


async def test_cancellation_inside_a_guardrail_ends_the_guardrail_and_emits_no_llm_events() -> None:
    started = asyncio.Event()

    async def slow(req: LlmRequest) -> None:
        started.set()
        await asyncio.Event().wait()

    guardrails.register_llm_conditional_execution("slow", 0, slow)
    with testing.capture() as events:
        task = asyncio.create_task(llmflow.llm_call_execute("chat", request(), lambda r: 1))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert llm_events(events) == []
    assert phases(events) == [("guardrail", "start", "slow"), ("guardrail", "end", "slow")]
    assert _exception_metadata(events[1])[0].endswith("CancelledError")


# -- execution intercepts ------------------------------------------------------------


async def test_next_may_be_awaited_several_times_for_retries() -> None:
    attempts: list[int] = []

    def flaky(req: LlmRequest) -> Any:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise ConnectionError("transient")
        return response("third time")

    async def retry(req: LlmRequest, call_next: Any) -> Any:
        for _ in range(5):
            try:
                return await call_next()
            except ConnectionError:
                continue
        raise AssertionError("unreachable")

    intercepts.register_llm_execution("retry", 0, retry)
    with testing.capture() as events:
        got = await llmflow.llm_call_execute("chat", request(), flaky)
    assert got == response("third time")
    assert attempts == [0, 1, 2]
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[1].metadata is None


def test_next_may_be_called_several_times_in_the_sync_twin() -> None:
    attempts: list[LlmRequest] = []

    def flaky(req: LlmRequest) -> Any:
        attempts.append(req)
        if len(attempts) == 1:
            raise TimeoutError("slow")
        return response()

    def retry(req: LlmRequest, call_next: Any) -> Any:
        try:
            return call_next()
        except TimeoutError:
            return call_next(LlmRequest(req.headers, {**req.content, "model": "fallback"}))

    intercepts.register_llm_execution("retry", 0, retry)
    assert llmflow.llm_call_execute_sync("chat", request(), flaky) == response()
    assert [r.content["model"] for r in attempts] == ["tiny-1", "fallback"]


async def test_next_after_the_intercept_returned_is_a_flow_error() -> None:
    saved: list[Any] = []

    async def leaky(req: LlmRequest, call_next: Any) -> Any:
        saved.append(call_next)
        return await call_next()

    intercepts.register_llm_execution("leaky", 0, leaky)
    await llmflow.llm_call_execute("chat", request(), lambda req: response())
    with pytest.raises(FlowError, match="leaky"):
        saved[0]()


def test_next_after_the_intercept_returned_is_a_flow_error_in_the_sync_twin() -> None:
    saved: list[Any] = []

    def leaky(req: LlmRequest, call_next: Any) -> Any:
        saved.append(call_next)
        return call_next()

    intercepts.register_llm_execution("leaky", 0, leaky)
    llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    with pytest.raises(FlowError, match="after it returned"):
        saved[0]()


def test_execution_intercept_may_replace_the_call_entirely(execute: Execute) -> None:
    calls: list[str] = []
    cached = {"id": "cache", "text": "from cache"}
    intercepts.register_llm_execution("cache", 0, lambda req, call_next: cached)
    with testing.capture() as events:
        got = execute("chat", request(), lambda req: calls.append("func"))
    assert got == cached
    assert calls == []
    assert events[-1].data == cached


def test_execution_intercepts_nest_in_priority_order(execute: Execute) -> None:
    log: list[str] = []

    def wrap(label: str) -> Callable[[LlmRequest, Any], Any]:
        def intercept(req: LlmRequest, call_next: Any) -> Any:
            log.append(f"{label} in")
            if execute is llmflow.llm_call_execute_sync:
                result = call_next()
                log.append(f"{label} out")
                return result

            async def run() -> Any:
                result = await call_next()
                log.append(f"{label} out")
                return result

            return run()

        return intercept

    intercepts.register_llm_execution("outer", 1, wrap("outer"))
    intercepts.register_llm_execution("inner", 2, wrap("inner"))
    intercepts.register_llm_execution("first", 0, wrap("first"))
    execute("chat", request(), lambda req: log.append("func"))
    assert log == [
        "first in",
        "outer in",
        "inner in",
        "func",
        "inner out",
        "outer out",
        "first out",
    ]


# -- request intercepts and codecs -----------------------------------------------------


def test_request_intercepts_change_the_real_request_and_the_event(execute: Execute) -> None:
    received: list[LlmRequest] = []

    def add_header(req: LlmRequest, ctx: Any) -> LlmRequest:
        assert ctx.name == "chat"
        assert ctx.annotated is None  # no codec
        return LlmRequest({**req.headers, "x-tenant": "t1"}, req.content)

    def set_temperature(req: LlmRequest, ctx: Any) -> LlmRequest:
        assert req.headers["x-tenant"] == "t1"  # runs after add_header (priority)
        return LlmRequest(req.headers, {**req.content, "temperature": 0.2})

    intercepts.register_llm_request("b", 1, set_temperature)
    intercepts.register_llm_request("a", 0, add_header)
    with testing.capture() as events:
        execute("chat", request(), lambda req: received.append(req) or response())
    assert received[0].headers["x-tenant"] == "t1"
    assert received[0].content["temperature"] == 0.2
    assert events[0].data["headers"]["x-tenant"] == "t1"
    assert events[0].data["content"]["temperature"] == 0.2


def test_request_intercept_sees_annotated_view_and_may_return_an_annotated_request(
    execute: Execute,
) -> None:
    received: list[LlmRequest] = []
    codec = TinyCodec()

    def upgrade(req: LlmRequest, ctx: Any) -> Any:
        assert ctx.codec is codec
        annotated = ctx.annotated
        assert annotated == TinyRequest(model="tiny-1", messages=["hello"])
        return annotated.model_copy(update={"model": "tiny-2", "messages": ["hello", "again"]})

    intercepts.register_llm_request("upgrade", 0, upgrade)
    with testing.capture() as events:
        execute(
            "chat",
            request(top_p=0.5),
            lambda req: received.append(req) or response(),
            codec=codec,
        )
    assert received[0].content == {"model": "tiny-2", "messages": ["hello", "again"], "top_p": 0.5}
    assert received[0].headers == {"content-type": "application/json"}
    start = events[0]
    assert start.data["content"]["model"] == "tiny-2"
    assert start.data_schema == TinyCodec.data_schema
    assert start.category_profile == {
        "model_name": "tiny-2",  # the intercepted request's model, via the codec
        "annotated_request": {"model": "tiny-2", "messages": ["hello", "again"]},
    }


def test_request_intercept_returning_a_non_request_is_an_error_before_the_start(
    execute: Execute,
) -> None:
    intercepts.register_llm_request("bad", 0, lambda req, ctx: {"not": "a request"})
    with testing.capture() as events:
        with pytest.raises(TypeError, match="LlmRequest"):
            execute("chat", request(), lambda req: response())
    assert events == []


def test_request_intercept_exception_propagates_unchanged_and_emits_nothing(
    execute: Execute,
) -> None:
    boom = PermissionError("tenant suspended")

    def refuse(req: LlmRequest, ctx: Any) -> LlmRequest:
        raise boom

    intercepts.register_llm_request("refuse", 0, refuse)
    with testing.capture() as events:
        with pytest.raises(PermissionError) as info:
            execute("chat", request(), lambda req: response())
    assert info.value is boom
    assert events == []


def test_request_codec_annotates_the_start_event(execute: Execute) -> None:
    with testing.capture() as events:
        execute("chat", request(), lambda req: response(), codec=TinyCodec(), model_name="t")
    start = events[0]
    assert start.data_schema == TinyCodec.data_schema
    assert start.category_profile == {
        "model_name": "t",
        "annotated_request": {"model": "tiny-1", "messages": ["hello"]},
    }


def test_response_codec_annotates_the_end_event_and_the_caller_gets_the_raw_result(
    execute: Execute,
) -> None:
    raw = {"id": "r-9", "text": "raw", "provider_extra": [1, 2]}
    with testing.capture() as events:
        got = execute(
            "chat", request(), lambda req: raw, response_codec=TinyCodec(), model_name="tiny-1"
        )
    assert got is raw
    end = events[-1]
    assert end.data == raw
    assert end.data_schema == TinyCodec.data_schema
    assert end.category_profile == {
        "model_name": "tiny-1",
        "annotated_response": {"id": "r-9", "text": "raw"},
    }


def test_a_raising_codec_never_breaks_the_call(execute: Execute, runtime: llmflow.Runtime) -> None:
    codec = BrokenCodec()
    annotated: list[object] = []
    intercepts.register_llm_request(
        "peek", 0, lambda req, ctx: annotated.append(ctx.annotated) or req
    )
    with testing.capture() as events:
        got = execute("chat", request(), lambda req: response(), codec=codec, response_codec=codec)
    assert got == response()
    assert annotated == [None]
    start, end = events
    assert start.data["content"] == request().content  # the raw payload is kept
    assert end.data == response()
    assert start.category_profile == end.category_profile == {"model_name": "tiny-1"}
    assert runtime.diagnostics().failure_count("codec:") == 3  # ctx.annotated, start, end


def test_a_non_json_result_is_returned_and_counted_not_raised(
    execute: Execute, runtime: llmflow.Runtime
) -> None:
    result = object()
    with testing.capture() as events:
        assert execute("chat", request(), lambda req: result, data={"d": 1}) is result
    assert events[-1].data == {"d": 1}
    assert runtime.diagnostics().failure_count() == 1


# -- _sync twins -------------------------------------------------------------------------


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_sync_twin_names_an_async_func_and_still_ends_the_span_once() -> None:
    async def provider(req: LlmRequest) -> Any:
        return response()

    with testing.capture() as events:
        with pytest.raises(SyncCallbackError, match="provider") as info:
            llmflow.llm_call_execute_sync("chat", request(), provider)
    assert isinstance(info.value, FlowError)
    assert "llm_call_execute" in str(info.value) or "async" in str(info.value)
    assert [e.scope_category for e in events] == ["start", "end"]
    assert _exception_metadata(events[1])[0].endswith("SyncCallbackError")
    assert_valid_stream(events)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_sync_twin_names_an_async_execution_intercept() -> None:
    async def wrapper(req: LlmRequest, call_next: Any) -> Any:
        return await call_next()

    intercepts.register_llm_execution("wrapper", 0, wrapper)
    with testing.capture() as events:
        with pytest.raises(SyncCallbackError, match="wrapper"):
            llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    assert [e.scope_category for e in events] == ["start", "end"]


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_sync_twin_names_an_async_guardrail_and_ends_its_scope() -> None:
    async def screen(req: LlmRequest) -> None:
        return None

    guardrails.register_llm_conditional_execution("screen", 0, screen)
    with testing.capture() as events:
        with pytest.raises(SyncCallbackError, match="screen"):
            llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
        with pytest.raises(SyncCallbackError, match="screen"):
            llmflow.llm_conditional_execution_sync(request())
    assert llm_events(events) == []
    assert [e.scope_category for e in events] == ["start", "end"] * 2
    assert_valid_stream(events)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_sync_twin_names_an_async_request_intercept() -> None:
    async def rewrite(req: LlmRequest, ctx: Any) -> LlmRequest:
        return req

    intercepts.register_llm_request("rewrite", 0, rewrite)
    with testing.capture() as events:
        with pytest.raises(SyncCallbackError, match="rewrite"):
            llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
        with pytest.raises(SyncCallbackError, match="rewrite"):
            llmflow.llm_request_intercepts_sync("chat", request())
    assert events == []


# -- params objects ----------------------------------------------------------------------


def test_llm_call_execute_accepts_llm_call_execute_params(execute: Execute) -> None:
    params = LlmCallExecuteParams(
        name="chat",
        request=request(),
        func=lambda req: response(),
        model_name="tiny-1",
        response_codec=TinyCodec(),
    )
    with testing.capture() as events:
        assert execute(params) == response()
    assert events[0].category_profile == {"model_name": "tiny-1"}
    assert events[1].data_schema == TinyCodec.data_schema


def test_llm_call_execute_params_and_keywords_together_raise_type_error(
    execute: Execute,
) -> None:
    params = LlmCallExecuteParams(name="chat", request=request(), func=lambda req: response())
    with testing.capture() as events:
        with pytest.raises(TypeError, match="not both"):
            execute(params, model_name="m")
        with pytest.raises(TypeError, match="not both"):
            execute(params, request())
    assert events == []


# -- §9 bad input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "param"),
    [
        (("chat", {"headers": {}, "content": {}}, lambda req: 1), {}, "request"),
        (("chat", request(), "not callable"), {}, "func"),
        (("chat", request(), None), {}, "func"),
        (("chat", LlmRequest({}, {"x": {1, 2}}), lambda req: 1), {}, "request"),
        (("", request(), lambda req: 1), {}, "name"),
        (("chat", request(), lambda req: 1), {"metadata": {"": 1}}, "metadata"),
        (("chat", request(), lambda req: 1), {"data": {"x": object()}}, "data"),
        (("chat", request(), lambda req: 1), {"model_name": 1}, "model_name"),
        (("chat", request(), lambda req: 1), {"attributes": "remote"}, "attributes"),
        (("chat", request(), lambda req: 1), {"parent": 5}, "parent"),
    ],
)
def test_managed_call_bad_input_names_the_parameter_and_emits_nothing(
    execute: Execute, args: tuple[Any, ...], kwargs: dict[str, Any], param: str
) -> None:
    guarded: list[LlmRequest] = []
    guardrails.register_llm_conditional_execution("g", 0, guarded.append)
    with testing.capture() as events:
        with pytest.raises((TypeError, ValueError)) as info:
            execute(*args, **kwargs)
    assert param in str(info.value)
    assert events == []
    assert guarded == []


# -- §4.5 conditional execution ----------------------------------------------------------


async def test_llm_conditional_execution_emits_only_guardrail_events() -> None:
    guardrails.register_llm_conditional_execution("a", 0, lambda req: None)
    guardrails.register_llm_conditional_execution("b", 1, lambda req: None)
    with testing.capture() as events:
        assert await llmflow.llm_conditional_execution(request()) is None
    assert phases(events) == [
        ("guardrail", "start", "a"),
        ("guardrail", "end", "a"),
        ("guardrail", "start", "b"),
        ("guardrail", "end", "b"),
    ]


async def test_llm_conditional_execution_rejection_raises_and_marks() -> None:
    guardrails.register_llm_conditional_execution("deny", 0, lambda req: "no")
    with testing.capture() as events:
        with pytest.raises(GuardrailRejected) as info:
            await llmflow.llm_conditional_execution(request())
    assert (info.value.guardrail, info.value.reason) == ("deny", "no")
    assert phases(events) == [
        ("guardrail", "start", "deny"),
        ("mark", None, "llmflow.guardrail_rejected"),
        ("guardrail", "end", "deny"),
    ]


def test_llm_conditional_execution_sync_twin() -> None:
    guardrails.register_llm_conditional_execution("deny", 0, lambda req: "no")
    with testing.capture() as events:
        with pytest.raises(GuardrailRejected):
            llmflow.llm_conditional_execution_sync(request())
    assert len(events) == 3


async def test_llm_conditional_execution_without_guardrails_emits_nothing() -> None:
    with testing.capture() as events:
        await llmflow.llm_conditional_execution(request())
    assert events == []


async def test_llm_conditional_execution_rejects_a_non_request() -> None:
    with pytest.raises(TypeError, match="request"):
        await llmflow.llm_conditional_execution({"content": {}})  # type: ignore[arg-type]


# -- §4.6 request intercepts only --------------------------------------------------------


async def test_llm_request_intercepts_runs_only_intercepts_and_emits_nothing() -> None:
    other: list[str] = []
    guardrails.register_llm_conditional_execution("deny", 0, lambda req: "no")
    intercepts.register_llm_execution("x", 0, lambda req, nxt: other.append("x"))
    guardrails.register_llm_sanitize_request("s", 0, lambda req, ctx: other.append("s"))
    intercepts.register_llm_request(
        "tag", 0, lambda req, ctx: LlmRequest({**req.headers, "x-tag": ctx.name}, req.content)
    )
    with testing.capture() as events:
        got = await llmflow.llm_request_intercepts("chat", request())
    assert got.headers["x-tag"] == "chat"
    assert events == []
    assert other == []


def test_llm_request_intercepts_sync_twin_with_a_codec() -> None:
    intercepts.register_llm_request(
        "upgrade", 0, lambda req, ctx: ctx.annotated.model_copy(update={"model": "tiny-2"})
    )
    with testing.capture() as events:
        got = llmflow.llm_request_intercepts_sync("chat", request(), codec=TinyCodec())
    assert got.content == {"model": "tiny-2", "messages": ["hello"]}
    assert events == []


async def test_llm_request_intercepts_include_scope_local_entries() -> None:
    with llmflow.scope("tenant") as tenant:
        intercepts.register_llm_request(
            "local",
            0,
            lambda req, ctx: LlmRequest({**req.headers, "x-local": "1"}, req.content),
            scope=tenant,
        )
        inside = await llmflow.llm_request_intercepts("chat", request())
    outside = await llmflow.llm_request_intercepts("chat", request())
    assert inside.headers.get("x-local") == "1"
    assert "x-local" not in outside.headers


# -- callbacks that leave scopes open ----------------------------------------------------


def test_func_leaving_a_scope_open_still_ends_the_call_once_and_restores_the_stack(
    execute: Execute,
) -> None:
    def leaky(req: LlmRequest) -> Any:
        llmflow.push_scope("left-open")
        return response()

    with testing.capture() as events:
        with llmflow.scope("agent") as agent:
            with pytest.raises(llmflow.ScopeError, match="left-open"):
                execute("chat", request(), leaky)
            assert llmflow.current_scope() is agent
    (end,) = [e for e in llm_events(events) if e.scope_category == "end"]
    assert _exception_metadata(end)[0].endswith("ScopeError")


def test_guardrail_leaving_a_scope_open_still_ends_its_scope(execute: Execute) -> None:
    guardrails.register_llm_conditional_execution(
        "leaky", 0, lambda req: llmflow.push_scope("left-open") and None
    )
    with testing.capture() as events:
        with pytest.raises(llmflow.ScopeError, match="left-open"):
            execute("chat", request(), lambda req: response())
        assert llmflow.current_scope() is None
    ends = [e for e in events if e.category == "guardrail" and e.scope_category == "end"]
    assert len(ends) == 1
    assert llm_events(events) == []
