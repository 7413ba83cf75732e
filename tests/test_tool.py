"""SPEC §4/§5/§10: the tool lifecycle (``tool_call``, ``tool_call_end``, ``tool_call_execute``).

Tool calls mirror the LLM rules with the ``tool_*`` middleware families; each
test is named after the rule it checks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from _llm_support import assert_valid_stream, phases
from llmflow import (
    Event,
    FlowError,
    GuardrailRejected,
    HandleError,
    InvalidPayloadError,
    LlmAttributes,
    LlmRequest,
    ToolExecutionResult,
    ToolHandle,
    guardrails,
    intercepts,
    testing,
)

Run = Callable[[Coroutine[Any, Any, Any]], Any]
WEATHER = {"city": "Lisbon"}


def tool_events(events: Iterable[Event]) -> list[Event]:
    """The ``tool`` scope events among ``events``, in delivery order."""
    return [e for e in events if e.kind == "scope" and e.category == "tool"]


def echo(args: Any) -> Any:
    return {"echo": args}


async def aecho(args: Any) -> Any:
    await asyncio.sleep(0)
    return {"echo": args}


# -- pipeline order ------------------------------------------------------------------


def test_execute_order_is_guardrail_request_sanitize_start_execution_func_sanitize_end(
    run_async: Run,
) -> None:
    log: list[tuple[str, Any, list[str | None]]] = []
    events: list[Event] = []  # filled by the capture below

    def delivered() -> list[str | None]:
        llmflow.flush()
        return [e.scope_category for e in tool_events(events)]

    def guardrail(args: Any) -> None:
        log.append(("guardrail", args, delivered()))

    async def request_intercept(args: Any, ctx: Any) -> Any:
        log.append(("request", (args, ctx.name), delivered()))
        return {**args, "units": "metric"}

    def sanitize_request(args: Any, ctx: Any) -> Any:
        log.append(("sanitize_request", (args, ctx.phase), delivered()))
        return {**args, "city": "<city>"}

    async def execution(args: Any, call_next: Any) -> Any:
        log.append(("execution", args, delivered()))
        result = await call_next(args)
        log.append(("execution returned", result, delivered()))
        return result

    async def func(args: Any) -> Any:
        log.append(("func", args, delivered()))
        return {"temp_c": 19, "city": args["city"]}

    def sanitize_response(result: Any, ctx: Any) -> Any:
        log.append(("sanitize_response", (result, ctx.phase), delivered()))
        return {**result, "city": "<city>"}

    guardrails.register_tool_conditional_execution("guard", 10, guardrail)
    intercepts.register_tool_request("rewrite", 10, request_intercept)
    guardrails.register_tool_sanitize_request("redact-args", 10, sanitize_request)
    intercepts.register_tool_execution("wrap", 10, execution)
    guardrails.register_tool_sanitize_response("redact-result", 10, sanitize_response)

    with testing.capture() as captured:
        events = captured
        result = run_async(llmflow.tool_call_execute("get_weather", WEATHER, func))

    rewritten = {"city": "Lisbon", "units": "metric"}
    real_result = {"temp_c": 19, "city": "Lisbon"}
    assert log == [
        ("guardrail", WEATHER, []),
        ("request", (WEATHER, "get_weather"), []),
        ("sanitize_request", (rewritten, "request"), []),
        ("execution", rewritten, ["start"]),
        ("func", rewritten, ["start"]),
        ("execution returned", real_result, ["start"]),
        ("sanitize_response", (real_result, "response"), ["start"]),
    ]
    assert result == real_result  # the caller gets the raw result, not the sanitized copy
    start, end = tool_events(events)
    assert start.data == {"city": "<city>", "units": "metric"}
    assert end.data == {"temp_c": 19, "city": "<city>"}
    assert phases(events) == [
        ("guardrail", "start", "guard"),
        ("guardrail", "end", "guard"),
        ("tool", "start", "get_weather"),
        ("tool", "end", "get_weather"),
    ]
    assert_valid_stream(events)


def test_request_intercepts_run_in_priority_order_then_name_and_the_tool_gets_their_args(
    run_async: Run,
) -> None:
    def append(tag: str) -> Callable[[Any, Any], Any]:
        return lambda args, ctx: {"trail": [*args["trail"], tag]}

    intercepts.register_tool_request("b", 20, append("b20"))
    intercepts.register_tool_request("z", 10, append("z10"))
    intercepts.register_tool_request("a", 20, append("a20"))
    received: list[Any] = []
    run_async(llmflow.tool_call_execute("t", {"trail": []}, received.append))
    assert received == [{"trail": ["z10", "a20", "b20"]}]


def test_request_intercept_returning_non_json_args_raises_before_the_tool_start(
    run_async: Run,
) -> None:
    intercepts.register_tool_request("bad", 10, lambda args, ctx: {"when": object()})
    called: list[Any] = []
    with testing.capture() as events, pytest.raises(InvalidPayloadError, match=r"^args"):
        run_async(llmflow.tool_call_execute("t", {}, called.append))
    assert called == []
    assert tool_events(events) == []


def test_execution_intercept_may_retry_next_and_one_start_end_pair_is_emitted(
    run_async: Run,
) -> None:
    attempts: list[Any] = []

    def flaky(args: Any) -> Any:
        attempts.append(args)
        if len(attempts) == 1:
            raise TimeoutError("slow")
        return "ok"

    async def retry(args: Any, call_next: Any) -> Any:
        try:
            return await call_next()
        except TimeoutError:
            return await call_next({**args, "attempt": 2})

    intercepts.register_tool_execution("retry", 10, retry)
    with testing.capture() as events:
        assert run_async(llmflow.tool_call_execute("t", {"attempt": 1}, flaky)) == "ok"
    assert attempts == [{"attempt": 1}, {"attempt": 2}]
    assert [e.scope_category for e in tool_events(events)] == ["start", "end"]
    assert tool_events(events)[1].data == "ok"


def test_execution_intercept_may_replace_the_tool_call(run_async: Run) -> None:
    called: list[Any] = []
    intercepts.register_tool_execution("cache", 10, lambda args, call_next: {"cached": True})
    with testing.capture() as events:
        result = run_async(llmflow.tool_call_execute("t", {}, called.append))
    assert result == {"cached": True}
    assert called == []
    assert tool_events(events)[1].data == {"cached": True}


# -- rejection -----------------------------------------------------------------------


def test_guardrail_rejection_raises_emits_guardrail_pair_and_mark_and_no_tool_events(
    run_async: Run,
) -> None:
    reached: list[str] = []
    guardrails.register_tool_conditional_execution(
        "no-deletes", 10, lambda args: "deleting is not allowed" if args.get("delete") else None
    )
    intercepts.register_tool_request("spy", 10, lambda args, ctx: reached.append("request") or args)
    with testing.capture() as events, pytest.raises(GuardrailRejected) as info:
        run_async(llmflow.tool_call_execute("files", {"delete": True}, reached.append))
    assert (info.value.guardrail, info.value.reason) == ("no-deletes", "deleting is not allowed")
    assert reached == []
    assert phases(events) == [
        ("guardrail", "start", "no-deletes"),
        ("mark", None, "llmflow.guardrail_rejected"),
        ("guardrail", "end", "no-deletes"),
    ]
    guard_start, rejected, _ = events
    assert rejected.parent_uuid == guard_start.uuid
    assert rejected.data == {
        "guardrail": "no-deletes",
        "reason": "deleting is not allowed",
        "call": "files",
    }
    assert_valid_stream(events)


def test_guardrail_exception_is_an_error_not_a_rejection(run_async: Run) -> None:
    boom = RuntimeError("guardrail broke")

    def broken(args: Any) -> None:
        raise boom

    guardrails.register_tool_conditional_execution("broken", 10, broken)
    with testing.capture() as events, pytest.raises(RuntimeError) as info:
        run_async(llmflow.tool_call_execute("t", {}, echo))
    assert info.value is boom
    assert tool_events(events) == []
    assert [e.name for e in events if e.kind == "mark"] == []
    assert events[-1].metadata == {
        "exception.type": "RuntimeError",
        "exception.message": "guardrail broke",
    }


# -- failure and cancellation after the start -----------------------------------------


def test_failure_after_start_emits_exactly_one_end_with_exception_and_reraises_original(
    run_async: Run,
) -> None:
    boom = ValueError("no such city")

    def func(args: Any) -> Any:
        raise boom

    with testing.capture() as events, pytest.raises(ValueError) as info:
        run_async(llmflow.tool_call_execute("get_weather", WEATHER, func, tool_call_id="c1"))
    assert info.value is boom
    start, end = tool_events(events)
    assert (start.scope_category, end.scope_category) == ("start", "end")
    assert end.data is None
    assert end.metadata == {"exception.type": "ValueError", "exception.message": "no such city"}
    assert end.category_profile == {"tool_call_id": "c1"}
    assert_valid_stream(events)


def test_failure_after_start_records_the_handle_data_as_output(run_async: Run) -> None:
    def func(args: Any) -> Any:
        raise KeyError("x")

    with testing.capture() as events, pytest.raises(KeyError):
        run_async(llmflow.tool_call_execute("t", {}, func, data={"fallback": True}))
    start, end = tool_events(events)
    assert start.data == {}
    assert end.data == {"fallback": True}
    assert end.metadata is not None and end.metadata["exception.type"] == "KeyError"


def test_failed_end_never_carries_a_tool_result_annotation(run_async: Run) -> None:
    async def fail_after_next(args: Any, call_next: Any) -> Any:
        await call_next()  # the tool returned an annotated result ...
        raise RuntimeError("post-processing failed")  # ... but the call failed

    intercepts.register_tool_execution("post", 10, fail_after_next)
    with testing.capture() as events, pytest.raises(RuntimeError):
        run_async(
            llmflow.tool_call_execute(
                "t", {}, lambda args: ToolExecutionResult("r", {"src": "x"}), tool_call_id="c1"
            )
        )
    end = tool_events(events)[1]
    assert end.category_profile == {"tool_call_id": "c1"}
    assert end.metadata is not None
    assert end.metadata["exception.message"] == "post-processing failed"


def test_cancellation_after_start_emits_exactly_one_end_and_reraises(run_async: Run) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def slow(args: Any) -> Any:
            started.set()
            await asyncio.sleep(3600)

        task = asyncio.ensure_future(llmflow.tool_call_execute("slow", {}, slow))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with testing.capture() as events:
        run_async(main())
    start, end = tool_events(events)
    assert end.uuid == start.uuid
    assert end.metadata is not None
    assert end.metadata["exception.type"].endswith("CancelledError")
    assert "exception.message" in end.metadata
    assert llmflow.current_scope() is None
    assert_valid_stream(events)


# -- manual spans --------------------------------------------------------------------


def test_tool_call_emits_start_and_tool_call_end_emits_end_sharing_the_span_fields() -> None:
    with testing.capture() as events, llmflow.scope("agent", "agent") as outer:
        handle = llmflow.tool_call(
            "search", {"q": "lisbon"}, tool_call_id="c9", metadata={"m": 1}, data={"kept": 1}
        )
        llmflow.tool_call_end(handle, ["result"], metadata={"n": 2})
    assert isinstance(handle, ToolHandle)
    start, end = tool_events(events)
    assert (start.name, end.name) == ("search", "search")
    assert start.uuid == end.uuid == handle.uuid
    assert start.parent_uuid == end.parent_uuid == outer.uuid == handle.parent_uuid
    assert handle.tool_call_id == "c9"
    assert handle.data == {"kept": 1}
    assert start.data == {"q": "lisbon"}  # the handle data is not emitted on the start
    assert end.data == ["result"]
    assert start.metadata == {"m": 1}
    assert end.metadata == {"m": 1, "n": 2}  # the end's metadata merged over the handle's
    assert end.timestamp_us > start.timestamp_us
    assert_valid_stream(events)


def test_tool_call_end_with_null_result_records_the_handle_data() -> None:
    with testing.capture() as events:
        handle = llmflow.tool_call("t", {}, data={"fallback": 1})
        llmflow.tool_call_end(handle, None)
    assert events[1].data == {"fallback": 1}


def test_double_end_raises_handle_error_and_emits_nothing() -> None:
    handle = llmflow.tool_call("t", {})
    llmflow.tool_call_end(handle, "first")
    with testing.capture() as events, pytest.raises(HandleError, match="already ended"):
        llmflow.tool_call_end(handle, "second")
    assert events == []


def test_tool_call_end_rejects_a_handle_that_is_not_a_tool_handle() -> None:
    llm = llmflow.llm_call("chat", LlmRequest({}, {"messages": []}))
    with testing.capture() as events, pytest.raises(HandleError, match=r"^handle"):
        llmflow.tool_call_end(llm, "r")  # type: ignore[arg-type]
    assert events == []


def test_tool_call_end_timestamp_before_start_raises_and_the_handle_stays_open() -> None:
    handle = llmflow.tool_call("t", {}, timestamp=2_000_000_000_000_000)
    with testing.capture() as events:
        with pytest.raises(ValueError, match=r"^timestamp"):
            llmflow.tool_call_end(handle, "r", timestamp=1_999_999_999_999_999)
        llmflow.tool_call_end(handle, "r", timestamp=2_000_000_000_000_001)
    assert [e.scope_category for e in events] == ["end"]


# -- sanitizers ----------------------------------------------------------------------

PHASES = ["request", "response"]


def _register_sanitizer(phase: str, name: str, priority: int, fn: Any) -> None:
    register = (
        guardrails.register_tool_sanitize_request
        if phase == "request"
        else guardrails.register_tool_sanitize_response
    )
    register(name, priority, fn)


def _payload(events: list[Event], phase: str) -> Any:
    start, end = tool_events(events)
    return start.data if phase == "request" else end.data


@pytest.mark.parametrize("phase", PHASES)
def test_sanitizer_returning_none_omits_the_payload_and_stops_the_chain(phase: str) -> None:
    later: list[Any] = []
    _register_sanitizer(phase, "omit", 10, lambda payload, ctx: None)
    _register_sanitizer(phase, "later", 20, lambda payload, ctx: later.append(payload) or payload)
    received: list[Any] = []
    with testing.capture() as events:
        result = llmflow.tool_call_execute_sync(
            "t", {"secret": 1}, lambda a: received.append(a) or "r"
        )
    assert _payload(events, phase) is None
    assert later == []
    assert received == [{"secret": 1}] and result == "r"  # only the event copy is affected
    assert llmflow.diagnostics().failures == {}


@pytest.mark.parametrize("phase", PHASES)
def test_sanitizer_exception_omits_the_payload_and_is_counted(phase: str) -> None:
    def broken(payload: Any, ctx: Any) -> Any:
        raise RuntimeError("sanitizer bug")

    _register_sanitizer(phase, "broken", 10, broken)
    with testing.capture() as events:
        assert llmflow.tool_call_execute_sync("t", {"secret": 1}, lambda a: "r") == "r"
    assert _payload(events, phase) is None
    failures = llmflow.diagnostics().failures
    assert list(failures.values()) == [1]
    (source,) = failures
    assert f"sanitize_{phase}" in source and "broken" in source


@pytest.mark.parametrize("phase", PHASES)
def test_sanitizer_non_json_return_omits_the_payload_and_is_counted(phase: str) -> None:
    _register_sanitizer(phase, "to-set", 10, lambda payload, ctx: {"not", "json"})
    with testing.capture() as events:
        assert llmflow.tool_call_execute_sync("t", {"secret": 1}, lambda a: "r") == "r"
    assert _payload(events, phase) is None
    failures = llmflow.diagnostics().failures
    assert list(failures.values()) == [1]
    (source,) = failures
    assert f"sanitize_{phase}" in source


def test_start_data_is_the_sanitized_args_and_end_data_the_sanitized_result() -> None:
    contexts: list[Any] = []

    def mask(payload: Any, ctx: Any) -> Any:
        contexts.append((ctx.name, ctx.category, ctx.phase, ctx.codec))
        return {k: "***" if k == "token" else v for k, v in payload.items()}

    guardrails.register_tool_sanitize_request("mask", 10, mask)
    guardrails.register_tool_sanitize_response("mask", 10, mask)
    with testing.capture() as events:
        handle = llmflow.tool_call("login", {"user": "ana", "token": "t-1"})
        llmflow.tool_call_end(handle, {"ok": True, "token": "t-2"})
    start, end = events
    assert start.data == {"user": "ana", "token": "***"}
    assert end.data == {"ok": True, "token": "***"}
    assert contexts == [
        ("login", "tool", "request", None),
        ("login", "tool", "response", None),
    ]


# -- annotations ---------------------------------------------------------------------


def test_annotation_from_func_goes_to_the_successful_end_and_the_caller_gets_the_result(
    run_async: Run,
) -> None:
    async def func(args: Any) -> ToolExecutionResult:
        return ToolExecutionResult({"temp_c": 19}, {"source": "forecast", "stale": False})

    with testing.capture() as events:
        result = run_async(llmflow.tool_call_execute("t", {}, func, tool_call_id="c1"))
    assert result == {"temp_c": 19}
    start, end = tool_events(events)
    assert start.category_profile == {"tool_call_id": "c1"}
    assert end.category_profile == {
        "tool_call_id": "c1",
        "tool_result_annotation": {"source": "forecast", "stale": False},
    }
    assert end.data == {"temp_c": 19}


def test_annotation_passed_to_tool_call_end_goes_to_the_end() -> None:
    with testing.capture() as events:
        handle = llmflow.tool_call("t", {})
        llmflow.tool_call_end(handle, ToolExecutionResult("sunny", "from cache"))
    start, end = events
    assert start.category_profile is None
    assert end.category_profile == {"tool_result_annotation": "from cache"}
    assert end.data == "sunny"


@pytest.mark.parametrize("tool_call_id", [None, "c1"])
def test_null_annotation_adds_no_profile_key(tool_call_id: str | None) -> None:
    with testing.capture() as events:
        llmflow.tool_call_execute_sync(
            "t", {}, lambda a: ToolExecutionResult("r"), tool_call_id=tool_call_id
        )
        handle = llmflow.tool_call("t", {}, tool_call_id=tool_call_id)
        llmflow.tool_call_end(handle, ToolExecutionResult("r", None))
    expected = None if tool_call_id is None else {"tool_call_id": tool_call_id}
    assert [e.category_profile for e in events] == [expected] * 4
    assert all("tool_result_annotation" not in e.to_json().decode() for e in events)


def test_sanitizer_omitting_the_result_omits_its_annotation() -> None:
    guardrails.register_tool_sanitize_response("drop", 10, lambda result, ctx: None)
    with testing.capture() as events:
        llmflow.tool_call_execute_sync("t", {}, lambda a: ToolExecutionResult("secret", "secret"))
    end = tool_events(events)[1]
    assert end.data is None
    assert end.category_profile is None


def test_tool_call_end_rejects_a_non_json_annotation_before_ending() -> None:
    handle = llmflow.tool_call("t", {})
    with testing.capture() as events:
        with pytest.raises(InvalidPayloadError, match=r"^result\.annotation"):
            llmflow.tool_call_end(handle, ToolExecutionResult("r", {"not", "json"}))
        assert not handle.ended
        llmflow.tool_call_end(handle, "r")
    assert [e.scope_category for e in events] == ["end"]


def test_non_json_annotation_from_func_is_omitted_and_counted_and_the_end_is_emitted() -> None:
    with testing.capture() as events:
        result = llmflow.tool_call_execute_sync(
            "t", {}, lambda a: ToolExecutionResult("r", {"not", "json"})
        )
    assert result == "r"
    end = tool_events(events)[1]
    assert (end.data, end.category_profile) == ("r", None)
    assert llmflow.diagnostics().failure_count() == 1
    assert_valid_stream(events)


# -- event fields --------------------------------------------------------------------


def test_tool_events_have_category_tool(run_async: Run) -> None:
    with testing.capture() as events:
        run_async(llmflow.tool_call_execute("t", {}, echo))
        handle = llmflow.tool_call("m", {})
        llmflow.tool_call_end(handle, "r")
    assert [e.category for e in events] == ["tool"] * 4


@pytest.mark.parametrize("manual", [False, True], ids=["execute", "manual"])
def test_tool_call_id_is_on_start_and_end_when_given_and_absent_otherwise(manual: bool) -> None:
    def run(tool_call_id: str | None) -> None:
        if manual:
            handle = llmflow.tool_call("t", {}, tool_call_id=tool_call_id)
            llmflow.tool_call_end(handle, "r")
        else:
            llmflow.tool_call_execute_sync("t", {}, echo, tool_call_id=tool_call_id)

    with testing.capture() as events:
        run("call_abc")
        run(None)
    assert [e.category_profile for e in events] == [
        {"tool_call_id": "call_abc"},
        {"tool_call_id": "call_abc"},
        None,
        None,
    ]


@pytest.mark.parametrize("remote", ["remote", LlmAttributes.REMOTE], ids=["str", "enum"])
def test_remote_attribute_is_accepted_and_shared_by_start_and_end(
    remote: Any, run_async: Run
) -> None:
    with testing.capture() as events:
        run_async(llmflow.tool_call_execute("mcp.search", {}, echo, attributes=[remote]))
        handle = llmflow.tool_call("mcp.fetch", {}, attributes=[remote, "parallel"])
        llmflow.tool_call_end(handle, "r")
    assert [e.attributes for e in events] == [("remote",)] * 2 + [("parallel", "remote")] * 2
    assert handle.attributes == ("parallel", "remote")
    assert_valid_stream(events)


# -- sync and async ------------------------------------------------------------------


@pytest.mark.parametrize("func", [echo, aecho], ids=["sync-func", "async-func"])
def test_tool_call_execute_accepts_sync_and_async_tool_functions(
    func: Callable[[Any], Any], run_async: Run
) -> None:
    with testing.capture() as events:
        result = run_async(llmflow.tool_call_execute("t", {"x": 1}, func))
    assert result == {"echo": {"x": 1}}
    assert tool_events(events)[1].data == {"echo": {"x": 1}}


def test_tool_call_execute_awaits_async_middleware(run_async: Run) -> None:
    async def guard(args: Any) -> None:
        await asyncio.sleep(0)

    async def add(args: Any, ctx: Any) -> Any:
        await asyncio.sleep(0)
        return {**args, "added": True}

    async def wrap(args: Any, call_next: Any) -> Any:
        return {"wrapped": await call_next()}

    guardrails.register_tool_conditional_execution("g", 10, guard)
    intercepts.register_tool_request("r", 10, add)
    intercepts.register_tool_execution("e", 10, wrap)
    result = run_async(llmflow.tool_call_execute("t", {}, aecho))
    assert result == {"wrapped": {"echo": {"added": True}}}


def test_tool_call_execute_sync_runs_sync_callbacks_like_the_async_entry_point() -> None:
    guardrails.register_tool_conditional_execution("g", 10, lambda args: None)
    intercepts.register_tool_request("r", 10, lambda args, ctx: {**args, "added": True})
    intercepts.register_tool_execution("e", 10, lambda args, call_next: {"wrapped": call_next()})
    with testing.capture() as events:
        result = llmflow.tool_call_execute_sync("t", {}, echo, tool_call_id="c1")
    assert result == {"wrapped": {"echo": {"added": True}}}
    assert phases(events) == [
        ("guardrail", "start", "g"),
        ("guardrail", "end", "g"),
        ("tool", "start", "t"),
        ("tool", "end", "t"),
    ]


async def _async_guard(args: Any) -> None:
    return None


async def _async_request(args: Any, ctx: Any) -> Any:
    return args


async def _async_execution(args: Any, call_next: Any) -> Any:
    return call_next()


@pytest.mark.parametrize("where", ["func", "guardrail", "request", "execution"])
def test_tool_call_execute_sync_with_an_async_callback_raises_a_clear_flow_error(
    where: str,
) -> None:
    func: Callable[[Any], Any] = aecho if where == "func" else echo
    if where == "guardrail":
        guardrails.register_tool_conditional_execution("async", 10, _async_guard)
    elif where == "request":
        intercepts.register_tool_request("async", 10, _async_request)
    elif where == "execution":
        intercepts.register_tool_execution("async", 10, _async_execution)
    with testing.capture() as events:
        with pytest.raises(FlowError, match="synchronous entry point") as info:
            llmflow.tool_call_execute_sync("t", {}, func)
    assert isinstance(info.value, llmflow.SyncCallbackError)
    ends = [e for e in tool_events(events) if e.scope_category == "end"]
    if where in ("func", "execution"):  # after the start: recorded on the end
        assert len(ends) == 1
        assert ends[0].metadata is not None
        assert ends[0].metadata["exception.type"].endswith("SyncCallbackError")
    else:
        assert tool_events(events) == []
    assert_valid_stream(events)


# -- bad input -----------------------------------------------------------------------

BAD_EXECUTE_INPUT = [
    pytest.param({"name": ""}, "name", TypeError, id="empty-name"),
    pytest.param({"name": 3}, "name", TypeError, id="non-str-name"),
    pytest.param({"args": {"when": object()}}, "args", InvalidPayloadError, id="non-json-args"),
    pytest.param({"args": {1, 2}}, "args", InvalidPayloadError, id="set-args"),
    pytest.param({"func": "get_weather"}, "func", TypeError, id="non-callable-func"),
    pytest.param({"tool_call_id": ""}, "tool_call_id", TypeError, id="empty-tool-call-id"),
    pytest.param({"tool_call_id": 7}, "tool_call_id", TypeError, id="int-tool-call-id"),
    pytest.param({"metadata": {"": 1}}, "metadata", InvalidPayloadError, id="bad-metadata"),
    pytest.param({"attributes": "remote"}, "attributes", TypeError, id="str-attributes"),
    pytest.param({"parent": 42}, "parent", TypeError, id="bad-parent"),
]


@pytest.mark.parametrize(("override", "param", "error"), BAD_EXECUTE_INPUT)
def test_tool_call_execute_bad_input_raises_naming_the_parameter_and_emits_nothing(
    override: dict[str, Any], param: str, error: type[Exception], run_async: Run
) -> None:
    seen: list[Any] = []
    guardrails.register_tool_conditional_execution("spy", 10, seen.append)
    kwargs: dict[str, Any] = {"name": "t", "args": {}, "func": echo, **override}
    with testing.capture() as events:
        with pytest.raises(error, match=f"^{param}:"):
            run_async(llmflow.tool_call_execute(**kwargs))
        with pytest.raises(error, match=f"^{param}:"):
            llmflow.tool_call_execute_sync(**kwargs)
    assert events == []
    assert seen == []  # no middleware ran on invalid input


@pytest.mark.parametrize(
    ("override", "param", "error"), [p for p in BAD_EXECUTE_INPUT if "func" not in p.id]
)
def test_tool_call_bad_input_raises_naming_the_parameter_and_emits_nothing(
    override: dict[str, Any], param: str, error: type[Exception]
) -> None:
    kwargs: dict[str, Any] = {"name": "t", "args": {}, **override}
    with testing.capture() as events, pytest.raises(error, match=f"^{param}:"):
        llmflow.tool_call(**kwargs)
    assert events == []


# -- middleware scoping and registries ------------------------------------------------


def test_scope_local_tool_middleware_applies_only_under_its_scope(run_async: Run) -> None:
    def trail(tag: str) -> Callable[[Any, Any], Any]:
        return lambda args, ctx: {**args, "trail": [*args.get("trail", []), tag]}

    async def wrap(args: Any, call_next: Any) -> Any:
        return {"local": await call_next()}

    async def main() -> list[Any]:
        results = []
        async with llmflow.scope("session") as session:
            guardrails.register_tool_conditional_execution(
                "local-guard", 10, lambda a: "local" if a.get("block") else None, scope=session
            )
            intercepts.register_tool_request("local-req", 10, trail("req"), scope=session)
            intercepts.register_tool_execution("local-exec", 10, wrap, scope=session)
            guardrails.register_tool_sanitize_request(
                "local-in", 10, lambda a, ctx: "masked-in", scope=session
            )
            guardrails.register_tool_sanitize_response(
                "local-out", 10, lambda r, ctx: "masked-out", scope=session
            )
            results.append(await llmflow.tool_call_execute("t", {}, echo))
            results.append(await asyncio.create_task(llmflow.tool_call_execute("t", {}, echo)))
            with pytest.raises(GuardrailRejected):
                await llmflow.tool_call_execute("t", {"block": True}, echo)
        results.append(await llmflow.tool_call_execute("t", {"block": True}, echo))
        return results

    with testing.capture() as events:
        inside, child, outside = run_async(main())
    assert inside == child == {"local": {"echo": {"trail": ["req"]}}}
    assert outside == {"echo": {"block": True}}
    data = [e.data for e in tool_events(events)]
    assert data == ["masked-in", "masked-out"] * 2 + [{"block": True}, {"echo": {"block": True}}]


def test_tool_middleware_families_register_and_deregister() -> None:
    families = [
        (
            guardrails.register_tool_conditional_execution,
            guardrails.deregister_tool_conditional_execution,
        ),
        (guardrails.register_tool_sanitize_request, guardrails.deregister_tool_sanitize_request),
        (guardrails.register_tool_sanitize_response, guardrails.deregister_tool_sanitize_response),
        (intercepts.register_tool_request, intercepts.deregister_tool_request),
        (intercepts.register_tool_execution, intercepts.deregister_tool_execution),
    ]
    for register, deregister in families:
        register("x", 10, echo)
        with pytest.raises(llmflow.DuplicateRegistrationError):
            register("x", 20, echo)
        assert deregister("x") is True
        assert deregister("x") is False


def test_tool_middleware_is_separate_from_llm_middleware() -> None:
    guardrails.register_llm_conditional_execution("llm-only", 10, lambda r: "no llm")
    intercepts.register_llm_request("llm-only", 10, lambda r, ctx: 1 / 0)
    assert llmflow.tool_call_execute_sync("t", {"a": 1}, echo) == {"echo": {"a": 1}}


# -- nesting -------------------------------------------------------------------------


def test_tool_called_inside_an_llm_execute_has_the_llm_span_as_parent(run_async: Run) -> None:
    async def provider(request: LlmRequest) -> Any:
        # e.g. a provider-side tool loop run by the application inside the call
        return await llmflow.tool_call_execute("lookup", {"id": 1}, aecho)

    async def main() -> Any:
        async with llmflow.scope("agent", "agent"):
            return await llmflow.llm_call_execute(
                "chat", LlmRequest({}, {"messages": []}), provider
            )

    with testing.capture() as events:
        run_async(main())
    (llm_start,) = [e for e in events if e.category == "llm" and e.scope_category == "start"]
    tool_start, tool_end = tool_events(events)
    assert tool_start.parent_uuid == tool_end.parent_uuid == llm_start.uuid
    assert_valid_stream(events)


def test_work_inside_the_tool_function_is_parented_to_the_tool_span(run_async: Run) -> None:
    async def outer(args: Any) -> Any:
        llmflow.mark("inside")
        return await llmflow.tool_call_execute("inner", {}, aecho)

    with testing.capture() as events:
        run_async(llmflow.tool_call_execute("outer", {}, outer))
        after = llmflow.current_scope()
    outer_start = next(e for e in events if e.name == "outer")
    assert next(e for e in events if e.name == "inside").parent_uuid == outer_start.uuid
    assert next(e for e in events if e.name == "inner").parent_uuid == outer_start.uuid
    assert outer_start.parent_uuid is None
    assert after is None
    assert_valid_stream(events)


def test_explicit_parent_overrides_the_current_scope() -> None:
    with llmflow.scope("a") as a, llmflow.scope("b"), testing.capture() as events:
        llmflow.tool_call_execute_sync("t", {}, echo, parent=a)
        llmflow.tool_call_execute_sync("t", {}, echo, parent=a.uuid)
    assert {e.parent_uuid for e in events} == {a.uuid}


def test_concurrent_tool_calls_each_pair_under_their_own_task_scope(run_async: Run) -> None:
    async def worker(i: int) -> Any:
        async with llmflow.scope(f"worker-{i}"):
            return await llmflow.tool_call_execute("t", {"i": i}, aecho, tool_call_id=f"c{i}")

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(worker(i) for i in range(5))))

    with testing.capture() as events:
        results = run_async(main())
    assert results == [{"echo": {"i": i}} for i in range(5)]
    scopes = {e.uuid: e.name for e in events if e.category == "function"}
    for event in tool_events(events):
        i = event.category_profile["tool_call_id"][1:]  # type: ignore[index]
        assert scopes[event.parent_uuid] == f"worker-{i}"  # type: ignore[index]
    assert_valid_stream(events)


# -- invariant -----------------------------------------------------------------------

OUTCOMES = st.sampled_from(["ok", "annotated", "raise", "reject", "omit-result"])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    calls=st.lists(
        st.tuples(OUTCOMES, st.one_of(st.none(), st.text(min_size=1, max_size=8))),
        max_size=8,
    )
)
def test_every_started_tool_call_has_exactly_one_end_with_its_tool_call_id(
    calls: list[tuple[str, str | None]],
) -> None:
    guardrails.register_tool_conditional_execution(
        "reject", 10, lambda args: "rejected" if args["outcome"] == "reject" else None
    )
    guardrails.register_tool_sanitize_response(
        "omit", 10, lambda result, ctx: None if result == "omit-result" else result
    )

    def func(args: Any) -> Any:
        outcome = args["outcome"]
        if outcome == "raise":
            raise RuntimeError("tool failed")
        if outcome == "annotated":
            return ToolExecutionResult("ok", {"n": args["n"]})
        return outcome

    try:
        with testing.capture() as events:
            for n, (outcome, tool_call_id) in enumerate(calls):
                with contextlib.suppress(RuntimeError, GuardrailRejected):
                    llmflow.tool_call_execute_sync(
                        "t", {"outcome": outcome, "n": n}, func, tool_call_id=tool_call_id
                    )
    finally:
        guardrails.deregister_tool_conditional_execution("reject")
        guardrails.deregister_tool_sanitize_response("omit")
    assert_valid_stream(events)
    starts = [e for e in tool_events(events) if e.scope_category == "start"]
    ends = {e.uuid: e for e in tool_events(events) if e.scope_category == "end"}
    assert len(starts) == len(ends) == sum(outcome != "reject" for outcome, _ in calls)
    for start in starts:
        end = ends[start.uuid]
        n = start.data["n"]  # type: ignore[index]
        outcome, tool_call_id = calls[n]
        profile = end.category_profile or {}
        assert (start.category_profile or {}).get("tool_call_id") == tool_call_id
        assert profile.get("tool_call_id") == tool_call_id
        annotated = outcome == "annotated"
        assert profile.get("tool_result_annotation") == ({"n": n} if annotated else None)
        failed = end.metadata is not None and "exception.type" in end.metadata
        assert failed == (outcome == "raise")


# -- one end path (issue 10 item 4) -------------------------------------------------


@pytest.mark.parametrize(
    ("result", "param"),
    [({"not", "json"}, "result"), (ToolExecutionResult({"not", "json"}), "result.result")],
)
def test_tool_call_end_validates_the_result_up_front_and_the_handle_stays_open(
    result: Any, param: str
) -> None:
    handle = llmflow.tool_call("t", {})
    with testing.capture() as events:
        with pytest.raises(InvalidPayloadError, match=rf"^{param}:"):
            llmflow.tool_call_end(handle, result)
        assert not handle.ended
        llmflow.tool_call_end(handle, "r")
    assert [e.data for e in events] == ["r"]


def test_tool_call_end_bad_metadata_raises_before_ending() -> None:
    handle = llmflow.tool_call("t", {})
    with testing.capture() as events:
        with pytest.raises(InvalidPayloadError, match=r"^metadata"):
            llmflow.tool_call_end(handle, "r", metadata={"k": {1, 2}})
        assert not handle.ended
    assert events == []


def test_a_request_intercept_editing_args_in_place_is_what_the_start_records() -> None:
    def edit(args: Any, ctx: Any) -> Any:
        args["city"] = "Porto"
        return args

    intercepts.register_tool_request("edit", 0, edit)
    with testing.capture() as events:
        llmflow.tool_call_execute_sync("weather", dict(WEATHER), lambda a: a)
    start, end = tool_events(events)
    assert start.data == {"city": "Porto"} == end.data
