"""SPEC §14 CircuitBreaker: per key, closed/open/half-open, fails fast, transitions recorded."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from _mw_support import FakeTime, HTTPFailure, llm_ends, llm_request, named
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import llmflow
from llmflow import LlmRequest, intercepts, testing
from llmflow.middleware import CircuitBreaker, CircuitOpenError

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


class Provider:
    """A provider function whose next outcomes are scripted; counts the calls that reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    def __call__(self, request: LlmRequest) -> Any:
        self.calls.append(request.content["model"])
        if self.fail:
            raise HTTPFailure(503)
        return {"ok": True}


def transitions(events: list[llmflow.Event]) -> list[tuple[str, str, str]]:
    return [(m.data["key"], m.data["from"], m.data["to"]) for m in named(events, "llmflow.circuit")]


def test_after_the_threshold_the_circuit_opens_and_fails_fast_without_calling_the_provider() -> (
    None
):
    time = FakeTime()
    intercepts.register_llm_execution(
        "breaker", 0, CircuitBreaker(failure_threshold=3, recovery_time=10, clock=time.clock)
    )
    provider = Provider()
    provider.fail = True
    with testing.capture() as events:
        for _ in range(3):
            with pytest.raises(HTTPFailure):
                llmflow.llm_call_execute_sync("chat", llm_request(), provider)
        with pytest.raises(CircuitOpenError) as raised:
            llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    assert len(provider.calls) == 3  # the fourth never reached the provider
    assert raised.value.key == "chat/gpt-4o"
    assert raised.value.retry_in == 10
    assert "provider was not called" in str(raised.value)
    assert transitions(events) == [("chat/gpt-4o", "closed", "open")]
    fourth = llm_ends(events)[-1]
    assert fourth.metadata["exception.type"] == "llmflow.middleware.CircuitOpenError"
    # the transition mark sits under the call that tripped the circuit
    third = llm_ends(events)[2]
    assert named(events, "llmflow.circuit")[0].parent_uuid == third.uuid


def test_after_recovery_time_one_probe_closes_it_again_on_success(run_async: RunAsync) -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    provider = Provider()

    async def main() -> None:
        provider.fail = True
        with pytest.raises(HTTPFailure):
            await llmflow.llm_call_execute("chat", llm_request(), provider)
        with pytest.raises(CircuitOpenError):
            await llmflow.llm_call_execute("chat", llm_request(), provider)
        time.now += 5
        assert breaker.state("chat/gpt-4o") == "half_open"
        provider.fail = False
        assert await llmflow.llm_call_execute("chat", llm_request(), provider) == {"ok": True}

    with testing.capture() as events:
        run_async(main())
    assert breaker.state("chat/gpt-4o") == "closed"
    assert transitions(events) == [
        ("chat/gpt-4o", "closed", "open"),
        ("chat/gpt-4o", "open", "half_open"),
        ("chat/gpt-4o", "half_open", "closed"),
    ]
    assert len(provider.calls) == 2


def test_a_failed_probe_opens_the_circuit_again_for_a_full_recovery_time() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    provider = Provider()
    provider.fail = True
    with pytest.raises(HTTPFailure):
        llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    time.now += 5
    with pytest.raises(HTTPFailure):  # the probe reached the provider and failed
        llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    time.now += 4.9
    with pytest.raises(CircuitOpenError):
        llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    assert len(provider.calls) == 2


def test_half_open_lets_only_its_probe_through_while_concurrent_calls_fail_fast(
    run_async: RunAsync,
) -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=1, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    release = asyncio.Event

    async def main() -> list[Any]:
        gate = release()
        reached = 0

        async def provider(request: LlmRequest) -> Any:
            nonlocal reached
            reached += 1
            if reached == 1:
                raise HTTPFailure(500)
            await gate.wait()
            return {"ok": True}

        with pytest.raises(HTTPFailure):
            await llmflow.llm_call_execute("chat", llm_request(), provider)
        time.now += 1
        calls = [
            asyncio.ensure_future(llmflow.llm_call_execute("chat", llm_request(), provider))
            for _ in range(4)
        ]
        while reached < 2:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert reached == 2
        return results

    results = run_async(main())
    assert sum(isinstance(r, CircuitOpenError) for r in results) == 3
    assert {"ok": True} in results


def test_a_cancelled_probe_frees_its_slot_and_leaves_the_state_alone(run_async: RunAsync) -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=1, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)

    async def main() -> None:
        with pytest.raises(HTTPFailure):
            await llmflow.llm_call_execute("chat", llm_request(), always_500)
        time.now += 1
        started = asyncio.Event()

        async def hang(request: LlmRequest) -> Any:
            started.set()
            await asyncio.sleep(3600)

        probe = asyncio.ensure_future(llmflow.llm_call_execute("chat", llm_request(), hang))
        await started.wait()
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert breaker.state("chat/gpt-4o") == "half_open"
        # the slot is free again: the next call is the probe, and it closes the circuit
        assert await llmflow.llm_call_execute("chat", llm_request(), lambda r: 1) == 1
        assert breaker.state("chat/gpt-4o") == "closed"

    run_async(main())


def always_500(request: LlmRequest) -> Any:
    raise HTTPFailure(500)


def test_circuits_are_per_provider_and_model() -> None:
    time = FakeTime()
    intercepts.register_llm_execution(
        "breaker", 0, CircuitBreaker(failure_threshold=1, recovery_time=60, clock=time.clock)
    )
    provider = Provider()
    provider.fail = True
    with pytest.raises(HTTPFailure):
        llmflow.llm_call_execute_sync(
            "openai.chat", llm_request("gpt-4o"), provider, metadata={"provider.name": "openai"}
        )
    provider.fail = False
    assert llmflow.llm_call_execute_sync(
        "openai.chat", llm_request("gpt-4o-mini"), provider, metadata={"provider.name": "openai"}
    )
    anthropic = LlmRequest({"anthropic-version": "2023-06-01"}, {"model": "gpt-4o"})
    assert llmflow.llm_call_execute_sync("messages", anthropic, provider)
    with pytest.raises(CircuitOpenError) as raised:
        llmflow.llm_call_execute_sync(
            "openai.chat", llm_request("gpt-4o"), provider, metadata={"provider.name": "openai"}
        )
    assert raised.value.key == "openai/gpt-4o"


def test_client_errors_and_successes_do_not_trip_it_and_a_success_resets_the_count() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=2, recovery_time=60, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    outcomes = iter([HTTPFailure(400), HTTPFailure(400), HTTPFailure(503), None, HTTPFailure(503)])

    def provider(request: LlmRequest) -> Any:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome
        return {"ok": True}

    for _ in range(5):
        with contextlib.suppress(HTTPFailure):
            llmflow.llm_call_execute_sync("chat", llm_request(), provider)
    assert breaker.state("chat/gpt-4o") == "closed"


def test_one_breaker_is_consistent_across_threads() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=5, recovery_time=60, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    provider = Provider()
    provider.fail = True
    outcomes: list[type[BaseException]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            try:
                llmflow.llm_call_execute_sync("chat", llm_request(), provider)
            except (HTTPFailure, CircuitOpenError) as exc:
                with lock:
                    outcomes.append(type(exc))

    with testing.capture() as events:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(outcomes) == 160
    assert outcomes.count(HTTPFailure) == len(provider.calls)
    assert 5 <= len(provider.calls) < 5 + 8  # at most one in-flight call per thread got past
    assert transitions(events) == [("chat/gpt-4o", "closed", "open")]


def test_tool_calls_are_keyed_by_tool_name(run_async: RunAsync) -> None:
    time = FakeTime()
    intercepts.register_tool_execution(
        "breaker", 0, CircuitBreaker(failure_threshold=1, recovery_time=60, clock=time.clock)
    )

    def down(args: Any) -> Any:
        raise ConnectionRefusedError("db down")

    async def main() -> None:
        with pytest.raises(ConnectionRefusedError):
            await llmflow.tool_call_execute("lookup", {}, down)
        with pytest.raises(CircuitOpenError, match="'lookup'"):
            await llmflow.tool_call_execute("lookup", {}, down)
        assert await llmflow.tool_call_execute("search", {}, lambda args: 1) == 1

    run_async(main())


def test_the_stream_variant_counts_a_failure_before_the_first_chunk(run_async: RunAsync) -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=60, clock=time.clock)
    intercepts.register_llm_stream_execution("breaker", 0, breaker.stream)
    opened = 0

    async def provider(request: LlmRequest) -> AsyncIterator[Any]:
        nonlocal opened
        opened += 1
        raise HTTPFailure(502)
        yield {}

    async def consume() -> None:
        stream = await llmflow.llm_stream_call_execute(
            "chat", llm_request(), provider, lambda c: None, lambda: None
        )
        async for _ in stream:
            pass

    async def main() -> None:
        with pytest.raises(HTTPFailure):
            await consume()
        with pytest.raises(CircuitOpenError):
            await consume()

    run_async(main())
    assert opened == 1


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": -1}, "failure_threshold"),
        ({"recovery_time": 0}, "recovery_time"),
        ({"recovery_time": -3.0}, "recovery_time"),
        ({"recovery_time": float("nan")}, "recovery_time"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
    ],
)
def test_limits_that_are_not_positive_are_a_value_error_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=f"^{param}: "):
        CircuitBreaker(**kwargs)


def test_wrong_types_are_a_type_error_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"^failure_threshold: "):
        CircuitBreaker(failure_threshold=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^key: "):
        CircuitBreaker(key="model")  # type: ignore[arg-type]


# -- the state machine against a reference model ----------------------------------------


class BreakerMachine(RuleBasedStateMachine):
    """Drive one key through random successes, failures, client errors and clock moves."""

    THRESHOLD = 3
    RECOVERY = 10.0

    def __init__(self) -> None:
        super().__init__()
        self.time = FakeTime()
        self.breaker = CircuitBreaker(
            failure_threshold=self.THRESHOLD, recovery_time=self.RECOVERY, clock=self.time.clock
        )
        self.provider_calls = 0
        # the reference model
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0

    def _call(self, outcome: BaseException | None) -> str:
        def call_next() -> Any:
            self.provider_calls += 1
            if outcome is not None:
                raise outcome
            return "ok"

        try:
            self.breaker(llm_request(), call_next)
        except CircuitOpenError:
            return "rejected"
        except HTTPFailure:
            return "failed"
        return "ok"

    def _expected_admit(self) -> bool:
        if self.state == "open" and self.time.now - self.opened_at >= self.RECOVERY:
            self.state = "half_open"
        return self.state != "open"

    @rule(kind=st.sampled_from(["success", "failure", "client_error"]))
    def call(self, kind: str) -> None:
        before = self.provider_calls
        admitted = self._expected_admit()
        outcome = {"success": None, "failure": HTTPFailure(503), "client_error": HTTPFailure(400)}
        result = self._call(outcome[kind])
        assert (result != "rejected") == admitted
        assert self.provider_calls == before + (1 if admitted else 0)  # open never calls
        if not admitted:
            return
        if kind == "success":
            self.failures = 0
            self.state = "closed"
        elif kind == "failure":
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.THRESHOLD:
                self.state = "open"
                self.opened_at = self.time.now

    @rule(seconds=st.floats(min_value=0, max_value=15))
    def wait(self, seconds: float) -> None:
        self.time.now += seconds

    @precondition(lambda self: self.state == "open")
    @rule()
    def wait_out_recovery(self) -> None:
        self.time.now = self.opened_at + self.RECOVERY

    @invariant()
    def state_matches_the_model(self) -> None:
        expected = self.state
        if expected == "open" and self.time.now - self.opened_at >= self.RECOVERY:
            expected = "half_open"
        assert self.breaker.state("call/gpt-4o") == expected


BreakerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_breaker_follows_the_closed_open_half_open_state_machine = BreakerMachine.TestCase


# -- the real openai SDK against FakeProvider --------------------------------------------


def test_with_the_openai_sdk_an_open_circuit_stops_requests_reaching_the_server() -> None:
    import openai

    from llmflow.testing import ErrorReply, FakeProvider, Reply

    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=2, recovery_time=30, clock=time.clock)
    intercepts.register_llm_execution("breaker", 0, breaker)
    user = [{"role": "user", "content": "x"}]
    with FakeProvider() as provider:
        provider.script(ErrorReply(500), ErrorReply(503), Reply(text="back"))
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
        )
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):  # the SDK's own error
                client.chat.completions.create(model="gpt-4o", messages=user)
        with pytest.raises(CircuitOpenError) as raised:
            client.chat.completions.create(model="gpt-4o", messages=user)
        assert raised.value.key == "openai/gpt-4o"  # provider from the transport's metadata
        assert len(provider.requests) == 2
        time.now += 30
        answer = client.chat.completions.create(model="gpt-4o", messages=user)
        assert answer.choices[0].message.content == "back"
        assert breaker.state("openai/gpt-4o") == "closed"
        assert len(provider.requests) == 3
