"""SPEC §14 AntiLoop: the N-th identical LLM request or tool call within a scope is rejected."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from _mw_support import llm_request, named

import llmflow
from llmflow import GuardrailRejected, LlmRequest, guardrails, testing
from llmflow.codecs import OpenAIChatCodec
from llmflow.middleware import AntiLoop

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]


def answer(request: Any) -> Any:
    return {"ok": True}


def test_the_third_identical_llm_request_in_a_scope_is_rejected_with_the_count(
    run_async: RunAsync,
) -> None:
    AntiLoop(max_repeats=3).register()

    async def main() -> None:
        async with llmflow.scope("agent", "agent"):
            for _ in range(2):
                await llmflow.llm_call_execute("chat", llm_request(), answer)
            await llmflow.llm_call_execute("chat", llm_request("other"), answer)
            for count in (3, 4):
                with pytest.raises(GuardrailRejected) as raised:
                    await llmflow.llm_call_execute("chat", llm_request(), answer)
                assert raised.value.guardrail == "llmflow.antiloop"
                assert f"made {count} times" in raised.value.reason
                assert "max_repeats=3" in raised.value.reason

    with testing.capture() as events:
        run_async(main())
    assert len([e for e in events if e.category == "llm"]) == 6  # 3 calls ran, 2 never started
    assert len(named(events, "llmflow.guardrail_rejected")) == 2


def test_identical_tool_calls_are_counted_the_same_way(run_async: RunAsync) -> None:
    AntiLoop(max_repeats=2).register()

    async def main() -> None:
        async with llmflow.scope("agent", "agent"):
            await llmflow.tool_call_execute("search", {"q": "x", "n": 1}, answer)
            with pytest.raises(GuardrailRejected, match="identical tool call made 2 times"):
                await llmflow.tool_call_execute("search", {"n": 1, "q": "x"}, answer)  # key order
            await llmflow.tool_call_execute("search", {"q": "y", "n": 1}, answer)

    run_async(main())


def test_each_scope_counts_on_its_own_and_llm_and_tool_calls_never_mix() -> None:
    guard = AntiLoop(max_repeats=2)
    guard.register()
    for run in ("run-1", "run-2"):
        with llmflow.scope(run, "agent"):
            llmflow.llm_call_execute_sync("chat", llm_request(), answer)
            # the same JSON as the LLM body: a tool call never counts as that request
            llmflow.tool_call_execute_sync("t", llm_request().content, answer)
    with llmflow.scope("run-3", "agent"), pytest.raises(GuardrailRejected):
        llmflow.llm_call_execute_sync("chat", llm_request(), answer)
        llmflow.llm_call_execute_sync("chat", llm_request(), answer)


def test_headers_do_not_count_and_a_codec_makes_equivalent_bodies_identical() -> None:
    AntiLoop(max_repeats=2, codec=OpenAIChatCodec()).register()
    text = [{"role": "user", "content": "hi"}]
    plain = LlmRequest({"x-trace": "1"}, {"model": "m", "messages": text})
    parts = LlmRequest(
        {"x-trace": "2"},
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
    )
    with llmflow.scope("agent", "agent"):
        llmflow.llm_call_execute_sync("chat", plain, answer)
        with pytest.raises(GuardrailRejected):
            llmflow.llm_call_execute_sync("chat", parts, answer)


def test_a_body_the_codec_cannot_read_falls_back_to_canonical_json() -> None:
    guard = AntiLoop(max_repeats=2, codec=OpenAIChatCodec())
    weird = LlmRequest({}, {"prompt": "not a chat body"})
    assert guard.identity(weird) == guard.identity(LlmRequest({}, {"prompt": "not a chat body"}))
    assert guard.identity(weird) != guard.identity(LlmRequest({}, {"prompt": "other"}))


def test_a_custom_key_decides_what_is_identical() -> None:
    guard = AntiLoop(max_repeats=2, key=lambda args: args.get("q"))
    guardrails.register_tool_conditional_execution("loop", 0, guard)
    with llmflow.scope("agent", "agent"):
        llmflow.tool_call_execute_sync("search", {"q": "x", "page": 1}, answer)
        with pytest.raises(GuardrailRejected):
            llmflow.tool_call_execute_sync("search", {"q": "x", "page": 2}, answer)


def test_concurrent_identical_calls_never_get_past_the_limit(run_async: RunAsync) -> None:
    AntiLoop(max_repeats=3).register()

    async def call() -> Any:
        await asyncio.sleep(0)
        return await llmflow.llm_call_execute("chat", llm_request(), answer)

    async def main() -> list[Any]:
        async with llmflow.scope("agent", "agent"):
            return await asyncio.gather(*(call() for _ in range(20)), return_exceptions=True)

    results = run_async(main())
    assert results.count({"ok": True}) == 2
    assert sum(isinstance(r, GuardrailRejected) for r in results) == 18


def test_registered_on_a_scope_it_disappears_with_it() -> None:
    with llmflow.scope("agent", "agent") as agent:
        AntiLoop(max_repeats=2).register(scope=agent)
        llmflow.llm_call_execute_sync("chat", llm_request(), answer)
        with pytest.raises(GuardrailRejected):
            llmflow.llm_call_execute_sync("chat", llm_request(), answer)
    with llmflow.scope("later", "agent"):
        for _ in range(3):
            llmflow.llm_call_execute_sync("chat", llm_request(), answer)


def test_deregister_removes_both_families() -> None:
    guard = AntiLoop(max_repeats=2)
    guard.register()
    assert guard.deregister() is True
    assert guard.deregister() is False
    for _ in range(3):
        llmflow.llm_call_execute_sync("chat", llm_request(), answer)
        llmflow.tool_call_execute_sync("t", {}, answer)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_repeats": 0}, "max_repeats"),
        ({"max_repeats": -1}, "max_repeats"),
        ({"max_repeats": 1}, "max_repeats"),
        ({"max_scopes": 0}, "max_scopes"),
    ],
)
def test_limits_below_their_minimum_are_a_value_error_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{param}: "):
        AntiLoop(**kwargs)


def test_wrong_types_are_a_type_error_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"^max_repeats: "):
        AntiLoop(max_repeats="3")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^codec: "):
        AntiLoop(codec=object())
    with pytest.raises(TypeError, match=r"^key: "):
        AntiLoop(key="q")  # type: ignore[arg-type]


def test_streamed_llm_requests_count_like_plain_ones(run_async: RunAsync) -> None:
    AntiLoop(max_repeats=2).register()

    async def chunks(request: LlmRequest) -> Any:
        yield {"delta": "x"}

    async def main() -> None:
        async with llmflow.scope("agent", "agent"):
            await llmflow.llm_call_execute("chat", llm_request(), answer)
            with pytest.raises(GuardrailRejected):
                await llmflow.llm_stream_call_execute(
                    "chat", llm_request(), chunks, lambda c: None, lambda: None
                )

    run_async(main())
