"""SPEC §14 retry: backoff with full jitter, Retry-After, retryable failures only, a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from _mw_support import (
    FakeTime,
    HTTPFailure,
    http_response,
    llm_ends,
    llm_request,
    llm_starts,
    named,
    openai_status_error,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import LlmRequest, intercepts, testing
from llmflow.middleware import retry
from llmflow.middleware._retry import backoff_delay, classify, retry_after_seconds

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


def flaky(failures: list[BaseException], answer: Any = None) -> Callable[[LlmRequest], Any]:
    """A provider function raising each of ``failures`` in turn, then answering."""
    calls: list[LlmRequest] = []

    def func(request: LlmRequest) -> Any:
        calls.append(request)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return answer if answer is not None else {"answer": len(calls)}

    func.calls = calls  # type: ignore[attr-defined]
    return func


def async_flaky(failures: list[BaseException]) -> Callable[[LlmRequest], Any]:
    sync = flaky(failures)

    async def func(request: LlmRequest) -> Any:
        await asyncio.sleep(0)
        return sync(request)

    func.calls = sync.calls  # type: ignore[attr-defined]
    return func


def install(time: FakeTime, **kwargs: Any) -> None:
    policy = retry(
        sleep=time.sleep,
        async_sleep=time.async_sleep,
        clock=time.clock,
        random=lambda: 0.5,
        **kwargs,
    )
    intercepts.register_llm_execution("retry", 0, policy)


# -- through the managed entry points ----------------------------------------------


def test_a_429_is_retried_in_one_llm_span_with_a_mark_per_retry_and_the_attempts_on_the_end(
    run_async: RunAsync,
) -> None:
    time = FakeTime()
    install(time, base_delay=1.0)
    func = async_flaky([HTTPFailure(429), HTTPFailure(503)])
    with testing.capture() as events:
        result = run_async(llmflow.llm_call_execute("chat", llm_request(), func))
    assert result == {"answer": 3}
    assert len(func.calls) == 3  # type: ignore[attr-defined]
    assert time.sleeps == [0.5, 1.0]  # full jitter 0.5 * (1, 2)
    (start,) = llm_starts(events)
    (end,) = llm_ends(events)
    retries = named(events, "llmflow.retry")
    assert [m.data for m in retries] == [
        {"attempt": 1, "delay": 0.5, "reason": "http 429", "retry_after": None},
        {"attempt": 2, "delay": 1.0, "reason": "http 503", "retry_after": None},
    ]
    assert all(m.parent_uuid == start.uuid for m in retries)
    assert end.metadata == {"retry.attempts": 3}


def test_the_sync_twin_retries_and_waits_with_the_blocking_sleep() -> None:
    time = FakeTime()
    install(time, base_delay=1.0)
    func = flaky([ConnectionResetError("reset"), TimeoutError("slow")])
    with testing.capture() as events:
        result = llmflow.llm_call_execute_sync("chat", llm_request(), func)
    assert result == {"answer": 3}
    assert time.sleeps == [0.5, 1.0]
    assert [m.data["reason"] for m in named(events, "llmflow.retry")] == [
        "ConnectionResetError",
        "TimeoutError",
    ]
    assert llm_ends(events)[0].metadata == {"retry.attempts": 3}


def test_the_sync_twin_called_inside_a_running_event_loop_still_retries(
    run_async: RunAsync,
) -> None:
    # a notebook cell or a sync helper called from async code: a loop is running, the entry
    # point is synchronous; the intercept follows what next() returned, not the loop
    time = FakeTime()
    install(time)
    func = flaky([HTTPFailure(503)])

    async def main() -> Any:
        return llmflow.llm_call_execute_sync("chat", llm_request(), func)

    assert run_async(main()) == {"answer": 2}
    assert len(time.sleeps) == 1


def test_a_sync_provider_function_in_the_async_entry_point_is_retried(run_async: RunAsync) -> None:
    time = FakeTime()
    install(time)
    func = flaky([HTTPFailure(500), HTTPFailure(500)])
    assert run_async(llmflow.llm_call_execute("chat", llm_request(), func)) == {"answer": 3}
    assert len(time.sleeps) == 2


def test_tool_calls_are_retried_by_the_same_intercept(run_async: RunAsync) -> None:
    time = FakeTime()
    intercepts.register_tool_execution(
        "retry", 0, retry(sleep=time.sleep, async_sleep=time.async_sleep, clock=time.clock)
    )
    attempts: list[int] = []

    def lookup(args: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("db down")
        return {"rows": 1}

    with testing.capture() as events:
        assert run_async(llmflow.tool_call_execute("lookup", {"q": 1}, lookup)) == {"rows": 1}
    end = next(e for e in events if e.category == "tool" and e.scope_category == "end")
    assert end.metadata == {"retry.attempts": 2}


def test_registered_on_a_scope_it_retries_only_calls_under_that_scope(run_async: RunAsync) -> None:
    time = FakeTime()
    policy = retry(sleep=time.sleep, async_sleep=time.async_sleep, clock=time.clock)

    async def main() -> None:
        async with llmflow.scope("agent", "agent") as agent:
            intercepts.register_llm_execution("retry", 0, policy, scope=agent)
            func = flaky([HTTPFailure(429)])
            assert await llmflow.llm_call_execute("chat", llm_request(), func) == {"answer": 2}
        with pytest.raises(HTTPFailure):
            await llmflow.llm_call_execute("chat", llm_request(), flaky([HTTPFailure(429)]))

    run_async(main())


# -- what is retryable ---------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses_follow_the_openai_sdk_rules(status: int) -> None:
    assert classify(HTTPFailure(status)) == f"http {status}"
    assert classify(openai_status_error(status)) == f"http {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retryable(status: int) -> None:
    assert classify(HTTPFailure(status)) is None
    assert classify(openai_status_error(status)) is None


def test_the_servers_x_should_retry_header_wins_over_the_status() -> None:
    assert classify(HTTPFailure(503, {"x-should-retry": "false"})) is None
    assert classify(HTTPFailure(400, {"x-should-retry": "true"})) == "http 400"
    assert classify(openai_status_error(500, {"x-should-retry": "false"})) is None


def test_connection_errors_and_timeouts_of_every_origin_are_retryable() -> None:
    import anthropic
    import openai

    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/messages")
    retryable = [
        openai.APIConnectionError(request=request),
        openai.APITimeoutError(request=request),
        anthropic.APIConnectionError(request=request),
        anthropic.APITimeoutError(request=request),
        anthropic.InternalServerError("overloaded", response=http_response(529), body=None),
        httpx2.ConnectError("refused", request=request),
        httpx2.ReadTimeout("slow", request=request),
        httpx2.RemoteProtocolError("dropped", request=request),
        ConnectionRefusedError("refused"),
        TimeoutError("slow"),
        asyncio.TimeoutError(),  # noqa: UP041 - the asyncio name is the one the brief names
    ]
    for exc in retryable:
        assert classify(exc) is not None, exc
    for exc in [ValueError("bad"), KeyError("k"), openai.BadRequestError(
        "bad", response=http_response(400), body=None
    ), httpx2.UnsupportedProtocol("ftp", request=request)]:  # fmt: skip
        assert classify(exc) is None, exc


def test_a_provider_http_error_exposing_headers_on_its_response_is_read() -> None:
    class WithResponse(Exception):
        status_code = 429
        response = http_response(429, {"Retry-After": "7"})

    assert classify(WithResponse()) == "http 429"
    assert retry_after_seconds(WithResponse.response.headers) == 7.0


def test_importing_the_middleware_never_imports_the_sdks() -> None:
    code = (
        "import sys, llmflow.middleware; "
        "assert not {'openai', 'anthropic'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_non_retryable_failure_propagates_unchanged_after_one_attempt() -> None:
    time = FakeTime()
    install(time)
    error = HTTPFailure(400)
    func = flaky([error])
    with testing.capture() as events, pytest.raises(HTTPFailure) as raised:
        llmflow.llm_call_execute_sync("chat", llm_request(), func)
    assert raised.value is error
    assert len(func.calls) == 1  # type: ignore[attr-defined]
    assert time.sleeps == []
    assert named(events, "llmflow.retry") == []
    assert llm_ends(events)[0].metadata["retry.attempts"] == 1


def test_cancellation_is_never_retried(run_async: RunAsync) -> None:
    time = FakeTime()
    install(time)
    started = 0

    async def hang(request: LlmRequest) -> Any:
        nonlocal started
        started += 1
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.ensure_future(llmflow.llm_call_execute("chat", llm_request(), hang))
        while not started:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(main())
    assert started == 1
    assert time.sleeps == []


# -- Retry-After, limits, deadline ---------------------------------------------------


def test_retry_after_seconds_replaces_the_backoff_on_every_attempt() -> None:
    time = FakeTime()
    install(time, base_delay=0.1)
    func = flaky([HTTPFailure(429, {"Retry-After": "3"}), HTTPFailure(429, {"retry-after": "2.5"})])
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", llm_request(), func)
    assert time.sleeps == [3.0, 2.5]
    assert [m.data["retry_after"] for m in named(events, "llmflow.retry")] == [3.0, 2.5]


def test_retry_after_ms_is_preferred_and_an_http_date_is_read_against_the_wall_clock() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    date = email.utils.format_datetime(datetime(2030, 1, 1, 0, 0, 10, tzinfo=UTC), usegmt=True)
    wall = datetime(2030, 1, 1, tzinfo=UTC)
    assert retry_after_seconds({"retry-after": date}, wall.timestamp) == 10.0
    assert retry_after_seconds({"retry-after": date}, lambda: wall.timestamp() + 60) == 0.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after": "-3"}) is None
    assert retry_after_seconds(None) is None


def test_a_retry_after_longer_than_max_delay_is_capped() -> None:
    time = FakeTime()
    install(time, max_delay=5.0)
    func = flaky([HTTPFailure(429, {"retry-after": "600"})])
    llmflow.llm_call_execute_sync("chat", llm_request(), func)
    assert time.sleeps == [5.0]


def test_after_max_attempts_the_last_error_propagates_with_an_exhausted_mark() -> None:
    time = FakeTime()
    install(time, max_attempts=3)
    errors = [HTTPFailure(500), HTTPFailure(502), HTTPFailure(503)]
    func = flaky(errors)
    with testing.capture() as events, pytest.raises(HTTPFailure) as raised:
        llmflow.llm_call_execute_sync("chat", llm_request(), func)
    assert raised.value is errors[2]
    assert len(func.calls) == 3  # type: ignore[attr-defined]
    (exhausted,) = named(events, "llmflow.retry_exhausted")
    assert exhausted.data == {"attempts": 3, "reason": "http 503", "limit": "max_attempts"}
    (end,) = llm_ends(events)
    assert end.metadata["retry.attempts"] == 3
    assert end.metadata["exception.type"].endswith("HTTPFailure")


def test_no_wait_ends_after_the_deadline() -> None:
    time = FakeTime()
    install(time, max_attempts=100, base_delay=1.0, max_delay=8.0, deadline=10.0)
    func = flaky([HTTPFailure(503)] * 100)
    with testing.capture() as events, pytest.raises(HTTPFailure):
        llmflow.llm_call_execute_sync("chat", llm_request(), func)
    # waits 0.5, 1, 2, 4 (total 7.5); the next (4.0) would end at 11.5 > 10
    assert time.sleeps == [0.5, 1.0, 2.0, 4.0]
    assert named(events, "llmflow.retry_exhausted")[0].data["limit"] == "deadline"


def test_the_stream_variant_retries_a_stream_that_fails_before_its_first_chunk(
    run_async: RunAsync,
) -> None:
    time = FakeTime()
    policy = retry(sleep=time.sleep, async_sleep=time.async_sleep, clock=time.clock)
    intercepts.register_llm_stream_execution("retry", 0, policy.stream)
    opened = 0

    async def provider(request: LlmRequest) -> AsyncIterator[Any]:
        nonlocal opened
        opened += 1
        if opened == 1:
            raise HTTPFailure(503)
        for word in ("a", "b"):
            yield {"delta": word}

    async def main() -> list[Any]:
        stream = await llmflow.llm_stream_call_execute(
            "chat", llm_request(), provider, lambda chunk: None, lambda: {"text": "ab"}
        )
        return [chunk async for chunk in stream]

    with testing.capture() as events:
        assert run_async(main()) == [{"delta": "a"}, {"delta": "b"}]
    assert opened == 2
    assert len(llm_ends(events)) == 1
    assert [m.data["reason"] for m in named(events, "llmflow.retry")] == ["http 503"]


def test_the_stream_variant_never_retries_after_a_chunk_was_yielded(run_async: RunAsync) -> None:
    time = FakeTime()
    policy = retry(sleep=time.sleep, async_sleep=time.async_sleep, clock=time.clock)
    intercepts.register_llm_stream_execution("retry", 0, policy.stream)
    opened = 0

    async def provider(request: LlmRequest) -> AsyncIterator[Any]:
        nonlocal opened
        opened += 1
        yield {"delta": "a"}
        raise ConnectionResetError("dropped mid-stream")

    async def main() -> list[Any]:
        seen = []
        stream = await llmflow.llm_stream_call_execute(
            "chat", llm_request(), provider, lambda chunk: None, lambda: None
        )
        with pytest.raises(ConnectionResetError):
            async for chunk in stream:
                seen.append(chunk)
        return seen

    assert run_async(main()) == [{"delta": "a"}]
    assert opened == 1


# -- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -2}, "max_attempts"),
        ({"base_delay": -1}, "base_delay"),
        ({"max_delay": 0}, "max_delay"),
        ({"max_delay": float("inf")}, "max_delay"),
        ({"deadline": 0}, "deadline"),
        ({"deadline": -5.0}, "deadline"),
    ],
)
def test_limits_that_are_not_positive_are_a_value_error_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=f"^{param}: "):
        retry(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"base_delay": "1"}, "base_delay"),
        ({"sleep": None}, "sleep"),
        ({"random": 3}, "random"),
    ],
)
def test_values_of_the_wrong_type_are_a_type_error_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(TypeError, match=f"^{param}: "):
        retry(**kwargs)


# -- properties ------------------------------------------------------------------------

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    base=seconds,
    cap=st.floats(min_value=1e-6, max_value=1e6),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
    retry_after=st.none() | seconds,
)
def test_every_delay_is_within_zero_and_the_cap(
    failures: int, base: float, cap: float, jitter: float, retry_after: float | None
) -> None:
    delay = backoff_delay(failures, base, cap, jitter, retry_after)
    assert 0 <= delay <= cap
    if retry_after is not None:
        assert delay == min(cap, retry_after)  # the server's wait, honoured up to the cap


@settings(max_examples=60, deadline=None)
@given(
    headers=st.lists(
        st.none()
        | st.builds(lambda s: {"retry-after": str(s)}, st.integers(0, 50))
        | st.builds(lambda ms: {"retry-after-ms": str(ms)}, st.integers(0, 50_000)),
        min_size=1,
        max_size=12,
    ),
    cap=st.floats(min_value=0.1, max_value=30),
    deadline=st.floats(min_value=0.5, max_value=120),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_a_run_of_failures_never_waits_past_the_cap_or_the_deadline_and_honours_retry_after(
    headers: list[dict[str, str] | None], cap: float, deadline: float, jitter: float
) -> None:
    time = FakeTime()
    policy = retry(
        max_attempts=len(headers) + 1,
        max_delay=cap,
        deadline=deadline,
        sleep=time.sleep,
        clock=time.clock,
        random=lambda: jitter,
    )
    failures = [HTTPFailure(429, h) for h in headers]
    func = flaky(failures)
    with contextlib.suppress(HTTPFailure):
        llmflow.llm_call_execute_sync("chat", llm_request(), lambda r: policy(r, lambda: func(r)))
    assert sum(time.sleeps) <= deadline
    for wait, header in zip(time.sleeps, headers, strict=False):
        assert 0 <= wait <= cap
        wanted = retry_after_seconds(header)
        if wanted is not None:
            assert wait == min(cap, wanted)


# -- the real SDKs against FakeProvider, through llmflow.instrument ----------------------

USER = [{"role": "user", "content": "x"}]


@pytest.fixture
def provider() -> Any:
    from llmflow.testing import FakeProvider

    with FakeProvider() as fake:
        yield fake


def test_the_openai_sdk_with_max_retries_0_is_retried_through_429_a_drop_and_a_500(
    provider: Any,
) -> None:
    import openai

    from llmflow.testing import Drop, ErrorReply, Reply

    time = FakeTime()
    install(time, base_delay=1.0)
    provider.script(ErrorReply(429, retry_after="2"), Drop(), ErrorReply(500), Reply(text="ok"))
    client = llmflow.instrument(
        openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-test", max_retries=0)
    )
    with testing.capture() as events:
        answer = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert answer.choices[0].message.content == "ok"
    assert len(provider.requests) == 4
    assert time.sleeps == [2.0, 1.0, 2.0]  # Retry-After, then jittered backoff 0.5*(2, 4)
    assert [m.data["reason"] for m in named(events, "llmflow.retry")] == [
        "http 429",
        "RemoteProtocolError",
        "http 500",
    ]
    (end,) = llm_ends(events)  # every attempt inside one managed call
    assert end.metadata["retry.attempts"] == 4
    assert end.metadata["http.status_code"] == 200
    # the answer that ended the call speaks, not the failed attempts before it
    assert not {"http.error_body", "provider.error_code", "http.retry_after"} & set(end.metadata)


def test_the_async_openai_sdk_is_retried_without_blocking_the_loop(
    provider: Any, run_async: RunAsync
) -> None:
    import openai

    from llmflow.testing import ErrorReply, Reply

    time = FakeTime()
    install(time)
    provider.script(ErrorReply(503), ErrorReply(429, retry_after="1"), Reply(text="ok"))

    async def main() -> Any:
        client = llmflow.instrument(
            openai.AsyncOpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
        )
        async with client:
            return await client.chat.completions.create(model="gpt-4o", messages=USER)

    with testing.capture() as events:
        answer = run_async(main())
    assert answer.choices[0].message.content == "ok"
    assert time.sleeps == [0.25, 1.0]
    assert llm_ends(events)[0].metadata["retry.attempts"] == 3


def test_the_anthropic_sdk_is_retried_on_overloaded(provider: Any) -> None:
    import anthropic

    from llmflow.testing import ErrorReply, Reply

    time = FakeTime()
    install(time)
    provider.script(ErrorReply(529, message="Overloaded"), Reply(text="fine"))
    client = llmflow.instrument(
        anthropic.Anthropic(base_url=provider.base_url, api_key="k", max_retries=0)
    )
    message = client.messages.create(model="claude-x", max_tokens=5, messages=USER)
    assert message.content[0].text == "fine"  # type: ignore[union-attr]
    assert len(provider.requests) == 2


def test_when_retries_run_out_the_sdk_raises_its_own_typed_error(provider: Any) -> None:
    import openai

    from llmflow.testing import ErrorReply

    time = FakeTime()
    install(time, max_attempts=2)
    provider.script(ErrorReply(500), ErrorReply(502, message="still down"))
    client = llmflow.instrument(
        openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
    )
    with pytest.raises(openai.InternalServerError, match="still down"):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert len(provider.requests) == 2


def test_a_retry_after_http_date_from_the_server_is_honoured(provider: Any) -> None:
    import openai

    from llmflow.testing import ErrorReply, Reply

    time = FakeTime()
    wall = datetime(2030, 1, 1, tzinfo=UTC)
    when = email.utils.format_datetime(datetime(2030, 1, 1, 0, 0, 3, tzinfo=UTC), usegmt=True)
    intercepts.register_llm_execution(
        "retry", 0, retry(sleep=time.sleep, clock=time.clock, wall_clock=wall.timestamp)
    )
    provider.script(ErrorReply(429, retry_after=when), Reply(text="ok"))
    client = llmflow.instrument(
        openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
    )
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert time.sleeps == [3.0]


def test_a_record_that_cannot_be_written_is_counted_and_never_breaks_the_call(
    monkeypatch: pytest.MonkeyPatch, runtime: llmflow.Runtime
) -> None:
    from llmflow.middleware import _recording

    def broken_mark(*args: Any, **kwargs: Any) -> str:
        raise OSError("no space left on device")

    monkeypatch.setattr(_recording, "mark", broken_mark)
    time = FakeTime()
    install(time)
    func = flaky([HTTPFailure(429)])
    assert llmflow.llm_call_execute_sync("chat", llm_request(), func) == {"answer": 2}
    assert runtime.diagnostics().failures["middleware:retry"] == 1
