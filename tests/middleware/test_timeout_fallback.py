"""SPEC §14 timeout(seconds) and fallback(models), alone and composed with retry and the breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from _mw_support import FakeTime, HTTPFailure, llm_ends, llm_request, llm_starts, named

import llmflow
from llmflow import LlmRequest, intercepts, testing
from llmflow.middleware import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    fallback,
    retry,
    timeout,
)

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


# -- timeout -------------------------------------------------------------------------------


def test_a_slow_async_call_is_cancelled_and_fails_with_call_timeout_error(
    run_async: RunAsync,
) -> None:
    intercepts.register_llm_execution("timeout", 0, timeout(0.05))
    seen: list[str] = []

    async def slow(request: LlmRequest) -> Any:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        return {"never": True}

    async def main() -> None:
        with pytest.raises(CallTimeoutError) as raised:
            await llmflow.llm_call_execute("chat", llm_request(), slow)
        assert isinstance(raised.value, TimeoutError)
        assert raised.value.seconds == 0.05
        assert "'chat' did not finish within 0.05 s" in str(raised.value)

    with testing.capture() as events:
        run_async(main())
    assert seen == ["cancelled"]  # the provider coroutine saw the cancellation
    (start,) = llm_starts(events)
    (end,) = llm_ends(events)
    assert end.metadata["exception.type"] == "llmflow.middleware.CallTimeoutError"
    (timed_out,) = named(events, "llmflow.timeout")
    assert timed_out.parent_uuid == start.uuid
    assert timed_out.data == {"seconds": 0.05}


def test_a_call_that_finishes_in_time_is_untouched(run_async: RunAsync) -> None:
    intercepts.register_llm_execution("timeout", 0, timeout(5))

    async def quick(request: LlmRequest) -> Any:
        await asyncio.sleep(0)
        return {"ok": 1}

    with testing.capture() as events:
        assert run_async(llmflow.llm_call_execute("chat", llm_request(), quick)) == {"ok": 1}
    assert named(events, "llmflow.timeout") == []
    assert llm_ends(events)[0].metadata is None


def test_the_providers_own_timeout_error_is_not_rewritten(run_async: RunAsync) -> None:
    intercepts.register_llm_execution("timeout", 0, timeout(5))
    error = TimeoutError("socket read timed out")

    async def own_timeout(request: LlmRequest) -> Any:
        raise error

    async def main() -> None:
        with pytest.raises(TimeoutError) as raised:
            await llmflow.llm_call_execute("chat", llm_request(), own_timeout)
        assert raised.value is error

    run_async(main())


def test_an_outer_cancellation_stays_a_cancellation_not_a_timeout(run_async: RunAsync) -> None:
    intercepts.register_llm_execution("timeout", 0, timeout(30))
    started = asyncio.Event()

    async def slow(request: LlmRequest) -> Any:
        started.set()
        await asyncio.sleep(30)

    async def main() -> None:
        task = asyncio.ensure_future(llmflow.llm_call_execute("chat", llm_request(), slow))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    with testing.capture() as events:
        run_async(main())
    assert named(events, "llmflow.timeout") == []


def test_an_inner_bound_firing_leaves_the_outer_bound_and_the_task_usable(
    run_async: RunAsync,
) -> None:
    intercepts.register_llm_execution("outer", 0, timeout(30))
    intercepts.register_llm_execution("inner", 10, timeout(0.02))

    async def slow(request: LlmRequest) -> Any:
        await asyncio.sleep(30)

    async def main() -> None:
        with pytest.raises(CallTimeoutError) as raised:
            await llmflow.llm_call_execute("chat", llm_request(), slow)
        assert raised.value.seconds == 0.02
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # our cancel request withdrawn
        await asyncio.sleep(0.03)  # no stray cancellation reaches the caller later

    with testing.capture() as events:
        run_async(main())
    assert [mark.data for mark in named(events, "llmflow.timeout")] == [{"seconds": 0.02}]


def test_a_sync_call_cannot_be_interrupted_its_overrun_is_recorded_and_its_result_kept() -> None:
    time = FakeTime()
    intercepts.register_llm_execution("timeout", 0, timeout(1.0, clock=time.clock))

    def blocking(request: LlmRequest) -> Any:
        time.now += 2.5  # a blocking call that took 2.5 s
        return {"late": True}

    with testing.capture() as events:
        assert llmflow.llm_call_execute_sync("chat", llm_request(), blocking) == {"late": True}
    (overrun,) = named(events, "llmflow.timeout_overrun")
    assert overrun.data == {"seconds": 1.0, "elapsed": 2.5}
    assert overrun.parent_uuid == llm_starts(events)[0].uuid


def test_inside_retry_each_attempt_is_bounded_and_a_timed_out_attempt_is_retried(
    run_async: RunAsync,
) -> None:
    time = FakeTime()
    intercepts.register_llm_execution(
        "retry", 0, retry(async_sleep=time.async_sleep, clock=time.clock, random=lambda: 0.0)
    )
    intercepts.register_llm_execution("timeout", 10, timeout(0.05))
    attempts = 0

    async def hangs_twice(request: LlmRequest) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            await asyncio.sleep(30)
        return {"attempt": attempts}

    with testing.capture() as events:
        result = run_async(llmflow.llm_call_execute("chat", llm_request(), hangs_twice))
    assert result == {"attempt": 3}
    assert [m.data["reason"] for m in named(events, "llmflow.retry")] == ["CallTimeoutError"] * 2
    assert llm_ends(events)[0].metadata == {"retry.attempts": 3}


def test_the_stream_variant_bounds_the_time_to_the_first_chunk(run_async: RunAsync) -> None:
    intercepts.register_llm_stream_execution("timeout", 0, timeout(0.05).stream)

    async def silent(request: LlmRequest) -> AsyncIterator[Any]:
        await asyncio.sleep(30)
        yield {"delta": "late"}

    async def main() -> None:
        stream = await llmflow.llm_stream_call_execute(
            "chat", llm_request(), silent, lambda c: None, lambda: None
        )
        with pytest.raises(CallTimeoutError):
            async for _ in stream:
                pass

    with testing.capture() as events:
        run_async(main())
    assert llm_ends(events)[0].metadata["exception.type"] == "llmflow.middleware.CallTimeoutError"


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_a_bound_that_is_not_a_positive_finite_number_is_a_value_error(seconds: float) -> None:
    with pytest.raises(ValueError, match=r"^seconds: "):
        timeout(seconds)


def test_a_bound_that_is_not_a_number_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^seconds: "):
        timeout("5")  # type: ignore[arg-type]


# -- fallback ------------------------------------------------------------------------------


class Models:
    """A provider whose models fail (with the given exception) or answer."""

    def __init__(self, failing: dict[str, BaseException]) -> None:
        self.failing = failing
        self.calls: list[str] = []

    def __call__(self, request: LlmRequest) -> Any:
        model = request.content["model"]
        self.calls.append(model)
        if model in self.failing:
            raise self.failing[model]
        return {"model": model}


def test_a_retryable_failure_moves_to_the_next_model_and_records_which_answered(
    run_async: RunAsync,
) -> None:
    intercepts.register_llm_execution("fallback", 0, fallback(["gpt-4o-mini", "claude-haiku"]))
    provider = Models({"gpt-4o": HTTPFailure(429), "gpt-4o-mini": HTTPFailure(503)})

    async def call() -> Any:
        return await llmflow.llm_call_execute("chat", llm_request("gpt-4o"), provider)

    with testing.capture() as events:
        assert run_async(call()) == {"model": "claude-haiku"}
    assert provider.calls == ["gpt-4o", "gpt-4o-mini", "claude-haiku"]
    assert [m.data for m in named(events, "llmflow.fallback")] == [
        {"from": "gpt-4o", "to": "gpt-4o-mini", "reason": "http 429"},
        {"from": "gpt-4o-mini", "to": "claude-haiku", "reason": "http 503"},
    ]
    (end,) = llm_ends(events)
    assert end.metadata == {"fallback.model": "claude-haiku"}
    # the start still records the request the caller made
    assert llm_starts(events)[0].data["content"]["model"] == "gpt-4o"


def test_an_answer_from_the_first_model_adds_no_fallback_record() -> None:
    intercepts.register_llm_execution("fallback", 0, fallback(["gpt-4o-mini"]))
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", llm_request("gpt-4o"), Models({}))
    assert named(events, "llmflow.fallback") == []
    assert llm_ends(events)[0].metadata is None


def test_a_non_retryable_failure_does_not_fall_back() -> None:
    intercepts.register_llm_execution("fallback", 0, fallback(["gpt-4o-mini"]))
    provider = Models({"gpt-4o": HTTPFailure(400)})
    with pytest.raises(HTTPFailure):
        llmflow.llm_call_execute_sync("chat", llm_request("gpt-4o"), provider)
    assert provider.calls == ["gpt-4o"]


def test_when_every_model_fails_the_last_error_propagates(run_async: RunAsync) -> None:
    intercepts.register_llm_execution("fallback", 0, fallback(["b"]))
    last = ConnectionResetError("b is down too")
    provider = Models({"a": TimeoutError("a is slow"), "b": last})

    async def main() -> None:
        with pytest.raises(ConnectionResetError) as raised:
            await llmflow.llm_call_execute("chat", llm_request("a"), provider)
        assert raised.value is last

    run_async(main())
    assert provider.calls == ["a", "b"]


def test_an_open_circuit_falls_back_without_calling_the_broken_model() -> None:
    time = FakeTime()
    intercepts.register_llm_execution("fallback", 0, fallback(["backup"]))
    intercepts.register_llm_execution(
        "breaker", 10, CircuitBreaker(failure_threshold=1, recovery_time=60, clock=time.clock)
    )
    provider = Models({"primary": HTTPFailure(500)})
    assert llmflow.llm_call_execute_sync("chat", llm_request("primary"), provider) == {
        "model": "backup"
    }
    with testing.capture() as events:
        assert llmflow.llm_call_execute_sync("chat", llm_request("primary"), provider) == {
            "model": "backup"
        }
    assert provider.calls == ["primary", "backup", "backup"]
    assert named(events, "llmflow.fallback")[0].data["reason"] == "circuit open"


def test_retry_inside_fallback_retries_each_model_before_moving_on(run_async: RunAsync) -> None:
    time = FakeTime()
    intercepts.register_llm_execution("fallback", 0, fallback(["backup"]))
    intercepts.register_llm_execution(
        "retry",
        10,
        retry(max_attempts=2, sleep=time.sleep, async_sleep=time.async_sleep, clock=time.clock),
    )
    provider = Models({"primary": HTTPFailure(503)})
    result = run_async(llmflow.llm_call_execute("chat", llm_request("primary"), provider))
    assert result == {"model": "backup"}
    assert provider.calls == ["primary", "primary", "backup"]


def test_a_custom_rewrite_builds_the_request_for_another_model() -> None:
    def deployment(request: LlmRequest, model: str) -> LlmRequest:
        return LlmRequest({**request.headers, "x-deployment": model}, request.content)

    intercepts.register_llm_execution("fallback", 0, fallback(["eu"], rewrite=deployment))
    seen: list[str | None] = []

    def provider(request: LlmRequest) -> Any:
        seen.append(request.headers.get("x-deployment"))
        if len(seen) == 1:
            raise HTTPFailure(503)
        return {}

    llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    assert seen == [None, "eu"]


def test_the_stream_variant_falls_back_before_the_first_chunk(run_async: RunAsync) -> None:
    intercepts.register_llm_stream_execution("fallback", 0, fallback(["backup"]).stream)
    models: list[str] = []

    async def provider(request: LlmRequest) -> AsyncIterator[Any]:
        models.append(request.content["model"])
        if request.content["model"] == "primary":
            raise HTTPFailure(529)
        yield {"delta": request.content["model"]}

    async def main() -> list[Any]:
        stream = await llmflow.llm_stream_call_execute(
            "chat", llm_request("primary"), provider, lambda c: None, lambda: None
        )
        return [chunk async for chunk in stream]

    assert run_async(main()) == [{"delta": "backup"}]
    assert models == ["primary", "backup"]


@pytest.mark.parametrize("models", [[], [""], [None], ()])
def test_fallback_models_must_be_non_empty_names(models: Any) -> None:
    with pytest.raises(ValueError, match=r"^models: "):
        fallback(models)


def test_a_single_string_is_not_a_list_of_models() -> None:
    with pytest.raises(TypeError, match=r"^models: "):
        fallback("gpt-4o-mini")


def test_circuit_open_error_is_importable_for_callers() -> None:
    assert issubclass(CircuitOpenError, llmflow.FlowError)
    assert issubclass(CallTimeoutError, llmflow.FlowError)


# -- through llmflow.instrument with the real async openai SDK -----------------------------


def test_with_the_async_openai_sdk_fallback_resends_to_the_next_model_and_timeout_bounds_it(
    run_async: RunAsync,
) -> None:
    import openai

    from llmflow.testing import ErrorReply, FakeProvider, Reply

    intercepts.register_llm_execution("fallback", 0, fallback(["backup"]))
    intercepts.register_llm_execution("timeout", 10, timeout(0.3))
    user = [{"role": "user", "content": "x"}]

    async def main(provider: FakeProvider) -> None:
        client = llmflow.instrument(
            openai.AsyncOpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
        )
        async with client:
            answer = await client.chat.completions.create(model="primary", messages=user)
            assert answer.choices[0].message.content == "from backup"
            with pytest.raises(CallTimeoutError):  # both models too slow: the last error
                await client.chat.completions.create(model="primary", messages=user)

    with FakeProvider() as provider, testing.capture() as events:
        provider.script(
            ErrorReply(503), Reply(text="from backup"), Reply(delay=3.0), Reply(delay=3.0)
        )
        run_async(main(provider))
        sent = [request.json()["model"] for request in provider.requests]
    assert sent == ["primary", "backup", "primary", "backup"]  # the body was re-encoded
    first, second = llm_ends(events)
    assert first.metadata["fallback.model"] == "backup"
    assert second.metadata["exception.type"] == "llmflow.middleware.CallTimeoutError"
    assert len(named(events, "llmflow.timeout")) == 2


def test_with_a_codec_the_model_is_changed_in_the_annotated_request_and_encoded_back() -> None:
    from llmflow.codecs import AnthropicMessagesCodec

    intercepts.register_llm_execution(
        "fallback", 0, fallback(["claude-haiku"], codec=AnthropicMessagesCodec())
    )
    body = {
        "model": "claude-opus",
        "max_tokens": 64,
        "system": "be brief",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "u1"},
    }
    sent: list[dict[str, Any]] = []

    def provider(request: LlmRequest) -> Any:
        sent.append(request.content)
        if len(sent) == 1:
            raise HTTPFailure(529)
        return {}

    llmflow.llm_call_execute_sync("messages", LlmRequest({}, body), provider)
    assert sent[1] == {**body, "model": "claude-haiku"}  # every other field kept


def test_a_codec_without_decode_and_encode_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^codec: "):
        fallback(["b"], codec=object())
