"""SPEC §15 at the entry points: bad input fails early, faults never lose an end (issue 12).

Each test names the rule; each failed on the code before issue 12's fixes.
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

import llmflow
from llmflow import LlmRequest, _scope, testing

SURROGATE = b"/tmp/\xff".decode("utf-8", "surrogateescape")  # a bytes path, as os gives it


class UnprintableError(Exception):
    """An exception whose ``str()`` raises, as some SDK errors do on a broken response."""

    def __str__(self) -> str:
        raise RuntimeError("cannot describe myself")


def _request() -> LlmRequest:
    return LlmRequest({"content-type": "application/json"}, {"model": "m", "messages": []})


def _raise(exc: BaseException) -> Any:
    raise exc


def _assert_lines_are_json(events: list[llmflow.Event]) -> None:
    for event in events:
        orjson.loads(event.to_json())


def _failure_metadata(events: list[llmflow.Event]) -> dict[str, Any]:
    ends = [e for e in events if e.scope_category == "end" and e.metadata]
    assert ends, "no end event with metadata"
    return dict(ends[-1].metadata)


# -- 1: an exception whose message cannot be encoded ---------------------------------

BAD_EXCEPTIONS = [
    pytest.param(lambda: ValueError(f"cannot open {SURROGATE}"), id="lone-surrogate"),
    pytest.param(UnprintableError, id="str-raises"),
]


@pytest.mark.parametrize("make", BAD_EXCEPTIONS)
def test_scope_records_an_unencodable_exception_and_reraises_it_unchanged(make: Any) -> None:
    error = make()
    with testing.capture() as events:
        with pytest.raises(type(error)) as caught, llmflow.scope("work"):
            raise error
    assert caught.value is error
    assert llmflow.current_scope() is None
    assert [e.scope_category for e in events] == ["start", "end"]
    metadata = _failure_metadata(events)
    assert metadata["exception.type"].endswith(type(error).__name__)
    _assert_lines_are_json(events)


@pytest.mark.parametrize("make", BAD_EXCEPTIONS)
@pytest.mark.parametrize("kind", ["llm", "tool"])
def test_managed_calls_record_an_unencodable_exception_and_reraise_it(make: Any, kind: str) -> None:
    error = make()
    with testing.capture() as events, llmflow.scope("outer") as outer:
        with pytest.raises(type(error)) as caught:
            if kind == "llm":
                llmflow.llm_call_execute_sync("chat", _request(), lambda r: _raise(error))
            else:
                llmflow.tool_call_execute_sync("tool", {}, lambda a: _raise(error))
        assert llmflow.current_scope() is outer
    assert caught.value is error
    calls = [e for e in events if e.category == kind]
    assert [e.scope_category for e in calls] == ["start", "end"]
    message = calls[1].metadata["exception.message"]
    qualified = f"{type(error).__module__}.{type(error).__qualname__}"
    assert "\\udcff" in message or message == f"<unprintable {qualified}>"
    _assert_lines_are_json(events)


@pytest.mark.parametrize("make", BAD_EXCEPTIONS)
async def test_a_stream_failing_with_an_unencodable_exception_still_ends(make: Any) -> None:
    error = make()

    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        yield {"delta": "a"}
        raise error

    with testing.capture() as events:
        stream = await llmflow.llm_stream_call_execute(
            "chat", _request(), provider, lambda c: None, lambda: {"text": "a"}
        )
        with pytest.raises(type(error)) as caught:
            async for _chunk in stream:
                pass
    assert caught.value is error
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[1].metadata["exception.type"].endswith(type(error).__name__)
    _assert_lines_are_json(events)


def test_a_scope_left_with_inner_scopes_open_by_an_exception_restores_the_stack() -> None:
    with testing.capture() as events, llmflow.scope("outer") as outer:
        with pytest.raises(KeyError), llmflow.scope("work"):
            llmflow.push_scope("leaked")
            raise KeyError("k")
        assert llmflow.current_scope() is outer
    work_end = [e for e in events if e.name == "work" and e.scope_category == "end"]
    assert work_end and work_end[0].metadata["exception.type"] == "KeyError"


# -- 2: validate at the entry point ---------------------------------------------------


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (lambda: llmflow.mark(f"bad{SURROGATE}"), "name"),
        (lambda: llmflow.push_scope(f"s{SURROGATE}"), "name"),
        (lambda: llmflow.scope(f"s{SURROGATE}"), "name"),
        (lambda: llmflow.mark("m", timestamp=10**25), "timestamp"),
        (lambda: llmflow.mark("m", timestamp=-(10**18)), "timestamp"),
        (lambda: llmflow.push_scope("s", attributes=[f"a{SURROGATE}"]), "attributes"),
        (lambda: llmflow.llm_call("c", _request(), model_name=f"m{SURROGATE}"), "model_name"),
        (lambda: llmflow.llm_call(f"c{SURROGATE}", _request()), "name"),
        (
            lambda: llmflow.mark("m", data_schema={"name": f"x{SURROGATE}", "version": "1"}),
            "data_schema.name",
        ),
        (lambda: llmflow.DataSchema("x", f"1{SURROGATE}"), "DataSchema.version"),
        (lambda: llmflow.tool_call("t", {}, tool_call_id=f"c{SURROGATE}"), "tool_call_id"),
        (lambda: llmflow.tool_call(f"t{SURROGATE}", {}), "name"),
        (lambda: llmflow.mark("m", data={"k": SURROGATE}), "data"),
        (lambda: llmflow.mark("m", metadata={"k": SURROGATE}), "metadata"),
    ],
)
def test_bad_input_raises_naming_the_parameter_before_anything_is_emitted(
    call: Any, param: str
) -> None:
    with testing.capture() as events:
        with pytest.raises((TypeError, ValueError)) as caught:
            call()
    assert isinstance(caught.value, llmflow.FlowError)
    assert str(caught.value).startswith(f"{param}:"), str(caught.value)
    assert events == []


@pytest.mark.parametrize(
    "timestamp",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        -62_135_596_800_000_000,
        253_402_300_799_999_999,
    ],
)
def test_timestamps_at_the_rfc3339_bounds_are_accepted_and_serialize(timestamp: Any) -> None:
    with testing.capture() as events:
        llmflow.mark("m", timestamp=timestamp)
    assert orjson.loads(events[0].to_json())["timestamp"][:4] in ("0001", "9999")


def test_an_aware_datetime_whose_utc_time_is_before_year_one_is_rejected() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
    with pytest.raises(llmflow.InvalidParameterError, match=r"^timestamp:"):
        llmflow.mark("m", timestamp=early)


# -- 8: two threads ending one handle at once ------------------------------------------


@pytest.mark.parametrize("kind", ["llm", "tool"])
def test_two_threads_ending_one_handle_emit_exactly_one_end(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Widen the window between "is it ended?" and "mark it ended" by yielding the
    # GIL there, so a non-atomic claim would let both threads through every round.
    original = _scope.Span.mark_ended

    def slow_mark_ended(self: _scope.Span) -> None:
        time.sleep(0)
        original(self)

    monkeypatch.setattr(_scope.Span, "mark_ended", slow_mark_ended)
    rounds = 300
    handles = [
        llmflow.llm_call("c", _request()) if kind == "llm" else llmflow.tool_call("t", {})
        for _ in range(rounds)
    ]
    outcomes: list[str] = []
    lock = threading.Lock()

    def end_all(barriers: list[threading.Barrier]) -> None:
        for handle, barrier in zip(handles, barriers, strict=True):
            barrier.wait()
            try:
                if kind == "llm":
                    llmflow.llm_call_end(handle, {"ok": 1})
                else:
                    llmflow.tool_call_end(handle, {"ok": 1})
                result = "ended"
            except llmflow.HandleError:
                result = "refused"
            with lock:
                outcomes.append(result)

    barriers = [threading.Barrier(2) for _ in range(rounds)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: make the race likely
    try:
        with testing.capture() as events:
            threads = [threading.Thread(target=end_all, args=(barriers,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert outcomes.count("ended") == rounds
    assert outcomes.count("refused") == rounds
    ends = [e.uuid for e in events if e.scope_category == "end"]
    assert sorted(ends) == sorted(h.uuid for h in handles)


# -- unclear input ---------------------------------------------------------------------


def test_nan_and_infinity_are_recorded_as_null_as_documented() -> None:
    with testing.capture() as events:
        llmflow.mark("m", data={"nan": math.nan, "inf": math.inf, "ninf": -math.inf})
    assert orjson.loads(events[0].to_json())["data"] == {"nan": None, "inf": None, "ninf": None}


async def test_one_scope_object_misused_across_tasks_never_fails_the_innocent_task() -> None:
    step = llmflow.scope("step")
    b_entered = asyncio.Event()
    a_done = asyncio.Event()

    async def guilty() -> None:
        async with step:
            llmflow.push_scope("leaked")  # never popped: leaving `step` is out of order
            await b_entered.wait()
            raise KeyError("guilty")

    async def innocent() -> str:
        async with step as handle:
            b_entered.set()
            await a_done.wait()
        return handle.uuid

    async def run_guilty() -> None:
        try:
            await guilty()
        finally:
            a_done.set()

    with testing.capture() as events:
        results = await asyncio.gather(run_guilty(), innocent(), return_exceptions=True)
    assert isinstance(results[0], KeyError)
    assert isinstance(results[1], str)
    innocent_end = [e for e in events if e.uuid == results[1] and e.scope_category == "end"]
    assert innocent_end and innocent_end[0].metadata is None


def test_leaving_a_scope_object_from_a_context_that_never_entered_it_is_a_clear_error() -> None:
    step = llmflow.scope("step")
    with pytest.raises(llmflow.ScopeError, match="was not entered in this context"):
        step.__exit__(None, None, None)


@pytest.mark.parametrize("make", BAD_EXCEPTIONS)
def test_a_sync_stream_failing_with_an_unencodable_exception_still_ends(make: Any) -> None:
    error = make()

    def provider(req: LlmRequest) -> Any:
        yield {"delta": "a"}
        raise error

    with testing.capture() as events:
        stream = llmflow.llm_stream_call_execute_sync(
            "chat", _request(), provider, lambda c: None, lambda: {"text": "a"}
        )
        with pytest.raises(type(error)) as caught:
            for _chunk in stream:
                pass
    assert caught.value is error
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[1].metadata["exception.type"].endswith(type(error).__name__)
    _assert_lines_are_json(events)
