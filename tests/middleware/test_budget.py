"""``Budget``: reserve before, settle after; rejects once spent, streams included."""

from __future__ import annotations

import asyncio
import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from _cost_support import CHAT, FakeProvider, chat_chunks, chat_request, chat_response, drain, ends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import GuardrailRejected, LlmRequest, guardrails, testing
from llmflow.middleware import Budget, price

_names = itertools.count()


def small_request(**extra: Any) -> LlmRequest:
    return chat_request(max_completion_tokens=50, **extra)


def reservation(request: LlmRequest) -> int:
    return len(orjson.dumps(request.content)) + 50


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "max_cost_usd, max_tokens"),
        ({"max_cost_usd": 0}, ValueError, "max_cost_usd"),
        ({"max_cost_usd": -1.0}, ValueError, "max_cost_usd"),
        ({"max_cost_usd": float("nan")}, ValueError, "max_cost_usd"),
        ({"max_cost_usd": "1"}, TypeError, "max_cost_usd"),
        ({"max_tokens": 0}, ValueError, "max_tokens"),
        ({"max_tokens": -10}, ValueError, "max_tokens"),
        ({"max_tokens": 1.5}, TypeError, "max_tokens"),
        ({"max_tokens": True}, TypeError, "max_tokens"),
        ({"max_tokens": 10, "default_output_tokens": 0}, ValueError, "default_output_tokens"),
        ({"max_tokens": 10, "name": ""}, TypeError, "name"),
    ],
)
def test_bad_limits_are_refused_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Budget(**kwargs)


def test_rejects_once_spent_with_the_spend_in_the_reason() -> None:
    request = small_request()
    budget = Budget(max_tokens=reservation(request) + 100).register()
    provider = FakeProvider(chat_response(prompt=80, completion=40))
    llmflow.llm_call_execute_sync("chat", request, provider)
    assert (budget.spent_tokens, budget.reserved_tokens, budget.calls) == (120, 0, 1)
    with testing.capture() as events, pytest.raises(GuardrailRejected) as caught:
        llmflow.llm_call_execute_sync("chat", request, provider)
    assert caught.value.guardrail == "llmflow.budget"
    assert "120 tokens spent" in caught.value.reason
    assert provider.calls == 1
    assert not [e for e in events if e.category == "llm"]
    (rejected,) = [e for e in events if e.name == "llmflow.guardrail_rejected"]
    assert "tokens spent" in rejected.data["reason"]


def test_a_cost_budget_settles_the_actual_price() -> None:
    request = small_request()
    response = chat_response(prompt=100, completion=50, cached=20)
    budget = Budget(max_cost_usd=1.0).register()
    llmflow.llm_call_execute_sync("chat", request, FakeProvider(response))
    expected = price("gpt-4o-2024-08-06", CHAT.decode_response(response).usage)  # type: ignore[arg-type]
    assert expected is not None
    assert budget.spent_usd == pytest.approx(expected.usd)
    assert budget.reserved_usd == 0


def test_spent_cost_budget_rejects_with_dollars_in_the_reason() -> None:
    budget = Budget(max_cost_usd=0.005).register()
    provider = FakeProvider(chat_response(prompt=300, completion=50))
    llmflow.llm_call_execute_sync("chat", small_request(), provider)
    assert 0 < budget.spent_usd < 0.005
    with pytest.raises(GuardrailRejected, match=r"\$0\.00") as caught:
        for _ in range(10):
            llmflow.llm_call_execute_sync("chat", small_request(), provider)
    assert "of $0.005000" in caught.value.reason
    assert budget.spent_usd <= 0.005


def test_streamed_calls_are_counted(run_async: Any) -> None:
    async def main() -> Budget:
        budget = Budget(max_tokens=10_000).register()
        provider = FakeProvider(None, chunks=chat_chunks(prompt=70, completion=30))
        stream = await llmflow.llm_stream_call_execute(
            "s", small_request(stream=True), provider.stream, response_codec=CHAT
        )
        chunks = await drain(stream)
        assert len(chunks) == 7
        return budget

    budget = run_async(main())
    assert (budget.spent_tokens, budget.reserved_tokens, budget.calls) == (100, 0, 1)


def test_a_stream_closed_early_is_charged_its_reservation(run_async: Any) -> None:
    request = small_request(stream=True)

    async def main() -> Budget:
        budget = Budget(max_tokens=100_000).register()
        provider = FakeProvider(None, chunks=chat_chunks())
        stream = await llmflow.llm_stream_call_execute(
            "s", request, provider.stream, response_codec=CHAT
        )
        await stream.__anext__()
        await stream.aclose()
        return budget

    budget = run_async(main())
    assert budget.spent_tokens == reservation(request)
    assert budget.reserved_tokens == 0


def test_a_failed_call_releases_its_reservation() -> None:
    budget = Budget(max_tokens=100_000).register()
    provider = FakeProvider(chat_response())
    provider.down = True
    with pytest.raises(ConnectionError):
        llmflow.llm_call_execute_sync("chat", small_request(), provider)
    assert (budget.spent_tokens, budget.reserved_tokens) == (0, 0)


def test_a_reservation_left_by_a_later_rejection_is_released_by_the_next_call() -> None:
    budget = Budget(max_tokens=100_000).register(priority=0)
    verdicts = iter(["no", None])
    guardrails.register_llm_conditional_execution("after", 10, lambda r: next(verdicts))
    with pytest.raises(GuardrailRejected):
        llmflow.llm_call_execute_sync("chat", small_request(), FakeProvider(chat_response()))
    assert budget.reserved_tokens == reservation(small_request())
    llmflow.llm_call_execute_sync(
        "chat", small_request(), FakeProvider(chat_response(prompt=10, completion=5))
    )
    assert (budget.spent_tokens, budget.reserved_tokens) == (15, 0)


def test_a_budget_on_a_scope_applies_only_under_it() -> None:
    provider = FakeProvider(chat_response(prompt=10, completion=5))
    with llmflow.scope("agent") as agent:
        budget = Budget(max_tokens=10_000).register(scope=agent)
        llmflow.llm_call_execute_sync("inside", small_request(), provider)
    llmflow.llm_call_execute_sync("outside", small_request(), provider)
    assert budget.spent_tokens == 15
    assert budget.calls == 1


def test_an_unknown_price_counts_tokens_and_is_reported(runtime: llmflow.Runtime) -> None:
    budget = Budget(max_cost_usd=1.0, max_tokens=10_000).register()
    provider = FakeProvider(chat_response(model="acme-9", prompt=10, completion=5))
    llmflow.llm_call_execute_sync("chat", small_request(model="acme-9"), provider)
    assert (budget.spent_usd, budget.spent_tokens) == (0.0, 15)
    assert runtime.diagnostics().failures["budget:unknown_price"] == 1


def test_a_response_without_readable_usage_is_charged_its_reservation(
    runtime: llmflow.Runtime,
) -> None:
    budget = Budget(max_tokens=100_000).register()
    llmflow.llm_call_execute_sync("chat", small_request(), lambda r: {"text": "hi"})
    assert budget.spent_tokens == reservation(small_request())
    assert runtime.diagnostics().failures["budget:llmflow.budget"] == 1


def test_deregister_removes_every_entry() -> None:
    budget = Budget(max_tokens=1).register()
    assert budget.deregister() is True
    llmflow.llm_call_execute_sync("chat", small_request(), FakeProvider(chat_response()))
    assert budget.deregister() is False


# -- concurrency --------------------------------------------------------------------


def _concurrent_run(limit: int, usages: list[tuple[int, int]], delays: list[int]) -> Budget:
    budget = Budget(max_tokens=limit, name=f"b{next(_names)}").register()
    request = small_request()

    async def one(prompt: int, completion: int, delay: int) -> str:
        async def provider(req: LlmRequest) -> Any:
            for _ in range(delay):
                await asyncio.sleep(0)
            return chat_response(prompt=prompt, completion=completion)

        try:
            await llmflow.llm_call_execute("chat", request, provider)
        except GuardrailRejected:
            return "rejected"
        return "ok"

    async def main() -> list[str]:
        return await asyncio.gather(
            *(one(p, c, d) for (p, c), d in zip(usages, delays, strict=True))
        )

    outcomes = asyncio.run(main())
    assert outcomes.count("ok") == budget.calls
    budget.deregister()
    return budget


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), calls=st.integers(1, 25), room=st.integers(1, 8))
def test_concurrent_calls_never_spend_more_than_the_budget(
    data: st.DataObject, calls: int, room: int
) -> None:
    reserve = reservation(small_request())
    # actual usage never above the reservation: prompt <= body bytes, completion <= 50
    usages = data.draw(
        st.lists(
            st.tuples(st.integers(0, reserve - 50), st.integers(0, 50)),
            min_size=calls,
            max_size=calls,
        )
    )
    delays = data.draw(st.lists(st.integers(0, 5), min_size=calls, max_size=calls))
    limit = reserve * room
    budget = _concurrent_run(limit, usages, delays)
    assert budget.spent_tokens <= limit
    assert budget.reserved_tokens == 0
    assert budget.calls >= min(calls, room)  # `room` reservations always fit


def test_threads_calling_the_sync_twin_cannot_overspend_either() -> None:
    request = small_request()
    limit = reservation(request) * 5
    budget = Budget(max_tokens=limit).register()
    rng = random.Random(7)
    usages = [(rng.randint(0, 300), rng.randint(0, 50)) for _ in range(40)]

    def one(usage: tuple[int, int]) -> bool:
        try:
            llmflow.llm_call_execute_sync(
                "chat", request, lambda r: chat_response(prompt=usage[0], completion=usage[1])
            )
        except GuardrailRejected:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(one, usages))
    assert budget.spent_tokens <= limit
    assert admitted == budget.calls
    assert budget.reserved_tokens == 0


def test_usage_beyond_the_reservation_is_the_documented_overshoot() -> None:
    request = chat_request()  # no output limit: default_output_tokens reserved
    budget = Budget(max_tokens=5500, default_output_tokens=100).register()
    big = FakeProvider(chat_response(prompt=200, completion=5000))
    llmflow.llm_call_execute_sync("chat", request, big)
    assert budget.spent_tokens == 5200  # the call outran its reservation; charged in full
    with pytest.raises(GuardrailRejected):
        llmflow.llm_call_execute_sync("chat", request, big)


def test_a_budget_rejection_ends_no_llm_span_and_keeps_the_tree_valid() -> None:
    budget = Budget(max_tokens=1).register()
    with testing.capture() as events, pytest.raises(GuardrailRejected):
        llmflow.llm_call_execute_sync("chat", small_request(), FakeProvider(chat_response()))
    assert ends(events, "guardrail")
    assert not ends(events)
    assert budget.spent_tokens == 0


def test_an_openai_sdk_call_over_budget_gets_a_400_and_never_reaches_the_provider() -> None:
    openai = pytest.importorskip("openai")
    from llmflow.testing import FakeProvider as Loopback
    from llmflow.testing import Reply

    with Loopback() as server:
        server.script(*[Reply(text="ok", usage={"input_tokens": 30, "output_tokens": 20})] * 5)
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        ask = [{"role": "user", "content": "go"}]
        budget = Budget(max_tokens=300).register()
        client.chat.completions.create(model="gpt-4o", messages=ask, max_completion_tokens=20)
        assert budget.spent_tokens == 50
        list(
            client.chat.completions.create(
                model="gpt-4o",
                messages=ask,
                max_completion_tokens=20,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert budget.spent_tokens == 100  # the stream counted
        with pytest.raises(openai.BadRequestError, match="budget"):
            for _ in range(5):
                client.chat.completions.create(
                    model="gpt-4o", messages=ask, max_completion_tokens=20
                )
        sent = len(server.requests)
    assert budget.spent_tokens <= 300
    assert sent == budget.calls


def test_concurrent_async_sdk_calls_cannot_overspend(run_async: Any) -> None:
    openai = pytest.importorskip("openai")
    from llmflow.testing import FakeProvider as Loopback
    from llmflow.testing import Reply

    ask = [{"role": "user", "content": "go"}]

    async def main(server: Any) -> tuple[Budget, int]:
        client = llmflow.instrument(
            openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        budget = Budget(max_tokens=1000).register()

        async def one() -> bool:
            try:
                await client.chat.completions.create(
                    model="gpt-4o", messages=ask, max_completion_tokens=20
                )
            except openai.BadRequestError:
                return False
            return True

        admitted = sum(await asyncio.gather(*(one() for _ in range(30))))
        await client.close()
        return budget, admitted

    with Loopback() as server:
        server.script(
            *[Reply(text="ok", usage={"input_tokens": 40, "output_tokens": 20}, delay=0.01)] * 30
        )
        budget, admitted = run_async(main(server))
        sent = len(server.requests)
    assert budget.spent_tokens <= 1000
    assert admitted == sent == budget.calls
    assert 0 < admitted < 30


def test_an_anthropic_stream_is_settled_from_its_start_and_delta_usage(run_async: Any) -> None:
    from _cost_support import ANTHROPIC, anthropic_events, anthropic_request

    async def main() -> Budget:
        budget = Budget(max_cost_usd=10.0, max_tokens=100_000).register()
        provider = FakeProvider(None, chunks=anthropic_events())
        stream = await llmflow.llm_stream_call_execute(
            "claude", anthropic_request(), provider.stream, response_codec=ANTHROPIC
        )
        await drain(stream)
        return budget

    budget = run_async(main())
    assert budget.spent_tokens == 300 + 600 + 100 + 150
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write, $15 output per M
    assert budget.spent_usd == pytest.approx((300 * 3 + 600 * 0.3 + 100 * 3.75 + 150 * 15) / 1e6)


def test_answers_from_a_cache_or_a_replay_cost_the_budget_nothing(tmp_path: Any) -> None:
    from llmflow.exporters import AtofFileExporter
    from llmflow.middleware import ResponseCache, replay

    runtime = llmflow.get_runtime()
    path = tmp_path / "log.jsonl"
    name = AtofFileExporter(path).register()
    budget = Budget(max_tokens=100_000).register()
    cache = ResponseCache().register()
    provider = FakeProvider(chat_response(prompt=60, completion=40))
    for _ in range(3):
        llmflow.llm_call_execute_sync("chat", small_request(), provider, response_codec=CHAT)
    assert (provider.calls, budget.spent_tokens, budget.calls) == (1, 100, 3)
    runtime.remove_exporter(name)
    cache.deregister()
    replay(path, match="order").register()
    llmflow.llm_call_execute_sync("chat", small_request(), provider, response_codec=CHAT)
    assert (provider.calls, budget.spent_tokens, budget.reserved_tokens) == (1, 100, 0)


def test_a_rejecting_guardrail_registered_after_the_budget_reserves_nothing() -> None:
    budget = Budget(max_tokens=100_000).register()
    guardrails.register_llm_conditional_execution("deny", 10, lambda r: "no")
    with pytest.raises(GuardrailRejected, match="no"):
        llmflow.llm_call_execute_sync("chat", small_request(), FakeProvider(chat_response()))
    assert budget.reserved_tokens == 0
