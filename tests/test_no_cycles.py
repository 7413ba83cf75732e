"""The call paths leave no reference cycles: what a call allocates is freed when it ends.

Garbage in a cycle waits for the cyclic collector; under load that means more
collections and memory that is not reused while it is still warm. These tests
run each entry point with every middleware family in its chain and check that
the collector finds nothing unreachable afterwards (``gc.DEBUG_SAVEALL`` keeps
what it found, so a failure names the leaked types).
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import llmflow
from llmflow import LlmRequest


def _cyclic_garbage(run: Callable[[], None]) -> Counter[str]:
    """Types of the objects ``run()`` left in reference cycles (run once to warm up)."""
    run()
    llmflow.flush()
    enabled = gc.isenabled()
    gc.disable()
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run()
        llmflow.flush()
        gc.collect()
        return Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


@pytest.fixture
def full_chains() -> None:
    """One entry in every family a managed LLM, tool or stream call runs."""

    async def around(request: Any, next_: Any) -> Any:
        return await next_(request)

    def around_stream(request: Any, next_: Any) -> Any:
        return next_(request)

    llmflow.guardrails.register_llm_conditional_execution("allow", 1, lambda _r: None)
    llmflow.guardrails.register_tool_conditional_execution("allow", 1, lambda _a: None)
    llmflow.intercepts.register_llm_request("same", 1, lambda r, _c: r)
    llmflow.intercepts.register_llm_execution("outer", 1, around)
    llmflow.intercepts.register_llm_execution("inner", 2, around)
    llmflow.intercepts.register_tool_execution("outer", 1, around)
    llmflow.intercepts.register_llm_stream_execution("outer", 1, around_stream)
    llmflow.intercepts.register_llm_stream_execution("inner", 2, around_stream)
    llmflow.guardrails.register_llm_sanitize_request("same", 1, lambda r, _c: r)
    llmflow.guardrails.register_llm_sanitize_response("same", 1, lambda r, _c: r)


def _request() -> LlmRequest:
    return LlmRequest({"content-type": "application/json"}, {"model": "m", "messages": []})


async def _provider(_request: LlmRequest) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}


async def _tool(_args: Any) -> dict[str, Any]:
    return {"ok": True}


async def _chunks(_request: LlmRequest) -> AsyncIterator[dict[str, Any]]:
    for i in range(3):
        yield {"i": i}


def _sync_chunks(_request: LlmRequest) -> Iterator[dict[str, Any]]:
    yield from ({"i": i} for i in range(3))


@pytest.mark.usefixtures("full_chains")
def test_async_managed_llm_tool_and_stream_calls_leave_no_cycles() -> None:
    async def calls() -> None:
        with llmflow.scope("agent", "agent"):
            await llmflow.llm_call_execute("chat", _request(), _provider)
            await llmflow.tool_call_execute("lookup", {"q": 1}, _tool)
            stream = await llmflow.llm_stream_call_execute(
                "chat.stream",
                _request(),
                _chunks,
                collector=lambda _c: None,
                finalizer=lambda: None,
            )
            async for _chunk in stream:
                pass

    assert _cyclic_garbage(lambda: asyncio.run(calls())) == Counter()


@pytest.mark.usefixtures("full_chains")
def test_sync_managed_calls_and_manual_pairs_leave_no_cycles() -> None:
    def around_sync(request: Any, next_: Any) -> Any:
        return next_(request)

    llmflow.intercepts.deregister_llm_execution("outer")
    llmflow.intercepts.deregister_llm_execution("inner")
    llmflow.intercepts.register_llm_execution("sync", 1, around_sync)

    def calls() -> None:
        llmflow.llm_call_execute_sync("chat", _request(), lambda _r: {"choices": []})
        stream = llmflow.llm_stream_call_execute_sync(
            "chat.stream",
            _request(),
            _sync_chunks,
            collector=lambda _c: None,
            finalizer=lambda: None,
        )
        for _chunk in stream:
            pass
        handle = llmflow.llm_call("manual", _request(), model_name="m")
        llmflow.llm_call_end(handle, {"choices": []})

    assert _cyclic_garbage(calls) == Counter()
