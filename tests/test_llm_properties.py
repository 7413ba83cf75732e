"""Property tests: random middleware stacks and failure points never break the pairing.

For random stacks of guardrails (allow, reject, raise), request intercepts,
execution intercepts (pass, retry, fail, replace), sanitizers (pass, None,
raise, invalid) and random provider failures, every started llm call has
exactly one end, its outcome matches what the caller saw, and the captured
events form a valid ATOF stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from _llm_support import assert_valid_stream, llm_events, request
from llmflow import GuardrailRejected, LlmRequest, guardrails, intercepts, testing
from llmflow import _runtime as runtime_module

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class ProviderError(Exception):
    """What the fake provider and failing intercepts raise."""


@contextmanager
def fresh_runtime() -> Iterator[llmflow.Runtime]:
    """A runtime of its own for one hypothesis example (registries start empty)."""
    rt = llmflow.Runtime()
    previous = rt.install()
    try:
        yield rt
    finally:
        rt.shutdown(timeout=10.0)
        with runtime_module._default_lock:
            runtime_module._default = previous


priorities = st.integers(min_value=-2, max_value=2)
guard_kinds = st.lists(
    st.tuples(st.sampled_from(["allow", "reject", "raise"]), priorities), max_size=3
)
request_kinds = st.lists(
    st.tuples(st.sampled_from(["pass", "rewrite", "raise"]), priorities), max_size=2
)
execution_kinds = st.lists(
    st.tuples(st.sampled_from(["pass", "retry", "fail", "replace"]), priorities), max_size=3
)
sanitizer_kinds = st.lists(
    st.tuples(st.sampled_from(["pass", "rewrite", "none", "raise", "invalid"]), priorities),
    max_size=3,
)


@dataclass
class Stack:
    guards: list[tuple[str, int]]
    requests: list[tuple[str, int]]
    executions: list[tuple[str, int]]
    sanitize_requests: list[tuple[str, int]]
    sanitize_responses: list[tuple[str, int]]


stacks = st.builds(
    Stack, guard_kinds, request_kinds, execution_kinds, sanitizer_kinds, sanitizer_kinds
)


def _register_common(stack: Stack, asynchronous: bool) -> None:
    for index, (kind, priority) in enumerate(stack.guards):

        def guard(req: LlmRequest, kind: str = kind) -> str | None:
            if kind == "raise":
                raise ProviderError("guardrail failed")
            return "rejected" if kind == "reject" else None

        guardrails.register_llm_conditional_execution(f"g{index}", priority, guard)

    for index, (kind, priority) in enumerate(stack.requests):

        def rewrite(req: LlmRequest, ctx: Any, kind: str = kind) -> LlmRequest:
            if kind == "raise":
                raise ProviderError("request intercept failed")
            if kind == "rewrite":
                return LlmRequest(req.headers, {**req.content, "n": req.content.get("n", 0) + 1})
            return req

        intercepts.register_llm_request(f"r{index}", priority, rewrite)

    for family, entries in (
        (guardrails.register_llm_sanitize_request, stack.sanitize_requests),
        (guardrails.register_llm_sanitize_response, stack.sanitize_responses),
    ):
        for index, (kind, priority) in enumerate(entries):

            def sanitizer(payload: Any, ctx: Any, kind: str = kind) -> Any:
                if kind == "none":
                    return None
                if kind == "raise":
                    raise ProviderError("sanitizer failed")
                if kind == "invalid":
                    return {"not-json": {1, 2}}
                if kind == "rewrite" and isinstance(payload, LlmRequest):
                    return LlmRequest({}, {"redacted": True})
                if kind == "rewrite":
                    return {"redacted": True}
                return payload

            family(f"s{index}", priority, sanitizer)

    for index, (kind, priority) in enumerate(stack.executions):
        intercepts.register_llm_execution(
            f"x{index}", priority, _execution_intercept(kind, asynchronous)
        )


def _execution_intercept(kind: str, asynchronous: bool) -> Any:
    if asynchronous:

        async def intercept(req: LlmRequest, call_next: Any) -> Any:
            if kind == "fail":
                raise ProviderError("execution intercept failed")
            if kind == "replace":
                return {"replaced": True}
            if kind == "retry":
                try:
                    return await call_next()
                except ProviderError:
                    return await call_next()
            return await call_next()

        return intercept

    def sync_intercept(req: LlmRequest, call_next: Any) -> Any:
        if kind == "fail":
            raise ProviderError("execution intercept failed")
        if kind == "replace":
            return {"replaced": True}
        if kind == "retry":
            try:
                return call_next()
            except ProviderError:
                return call_next()
        return call_next()

    return sync_intercept


def _provider(kind: str) -> Any:
    calls = [0]

    def provider(req: LlmRequest) -> Any:
        calls[0] += 1
        if kind == "fail" or (kind == "fail_once" and calls[0] == 1):
            raise ProviderError("provider failed")
        if kind == "cancelled":
            raise asyncio.CancelledError()
        if kind == "non_json":
            return {"bad": {1}}
        return {"ok": calls[0]}

    return provider


def _check_outcomes(events: list[llmflow.Event], outcomes: dict[str, object]) -> None:
    assert_valid_stream(events)
    llm = llm_events(events)
    for name, outcome in outcomes.items():
        mine = [e for e in llm if e.name == name]
        if isinstance(outcome, GuardrailRejected) or (
            isinstance(outcome, BaseException) and not mine
        ):
            assert mine == []  # failed before the start: no llm events at all
            continue
        starts = [e for e in mine if e.scope_category == "start"]
        ends = [e for e in mine if e.scope_category == "end"]
        assert len(starts) == 1 and len(ends) == 1, (name, outcome, mine)
        metadata = ends[0].metadata or {}
        if isinstance(outcome, BaseException):
            assert metadata["exception.type"].endswith(type(outcome).__name__)
        else:
            assert "exception.type" not in metadata


@SETTINGS
@given(
    stack=stacks,
    providers=st.lists(
        st.sampled_from(["ok", "fail", "fail_once", "cancelled", "non_json"]),
        min_size=1,
        max_size=3,
    ),
    mode=st.sampled_from(["async", "sync"]),
    nested=st.booleans(),
)
def test_every_started_call_has_exactly_one_end_whatever_the_stack(
    stack: Stack, providers: list[str], mode: str, nested: bool
) -> None:
    outcomes: dict[str, object] = {}
    with fresh_runtime() as rt:
        _register_common(stack, asynchronous=mode == "async")
        with testing.capture(runtime=rt) as events:
            if mode == "sync":
                with llmflow.scope("agent") if nested else _nothing():
                    for index, kind in enumerate(providers):
                        name = f"call-{index}"
                        try:
                            outcomes[name] = llmflow.llm_call_execute_sync(
                                name, request(), _provider(kind)
                            )
                        except BaseException as exc:
                            outcomes[name] = exc
            else:

                async def one(name: str, kind: str) -> None:
                    try:
                        outcomes[name] = await llmflow.llm_call_execute(
                            name, request(), _provider(kind)
                        )
                    except BaseException as exc:
                        outcomes[name] = exc

                async def main() -> None:
                    with llmflow.scope("agent") if nested else _nothing():
                        await asyncio.gather(
                            *(one(f"call-{i}", kind) for i, kind in enumerate(providers))
                        )

                asyncio.run(main())
    _check_outcomes(events, outcomes)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# -- streams -------------------------------------------------------------------------------


stream_intercepts = st.lists(
    st.tuples(st.sampled_from(["pass", "transform", "retry"]), priorities), max_size=3
)


@SETTINGS
@given(
    stack=stacks,
    stream_stack=stream_intercepts,
    chunks=st.integers(min_value=0, max_value=4),
    provider_fails_at=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    collector_fails_at=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    close_at=st.one_of(st.none(), st.integers(min_value=0, max_value=4)),
    finalizer_fails=st.booleans(),
)
def test_every_started_stream_has_exactly_one_end_whatever_fails(
    stack: Stack,
    stream_stack: list[tuple[str, int]],
    chunks: int,
    provider_fails_at: int | None,
    collector_fails_at: int | None,
    close_at: int | None,
    finalizer_fails: bool,
) -> None:
    stack.executions = []  # non-streaming execution intercepts do not apply to streams
    outcome: list[object] = []

    async def provider(req: LlmRequest) -> AsyncIterator[Any]:
        for index in range(chunks):
            if index == provider_fails_at:
                raise ProviderError("provider failed mid-stream")
            yield {"i": index}

    collected: list[Any] = []

    def collector(chunk: Any) -> None:
        if len(collected) == collector_fails_at:
            raise ProviderError("collector failed")
        collected.append(chunk)

    def finalizer() -> Any:
        if finalizer_fails:
            raise ProviderError("finalizer failed")
        return {"chunks": len(collected)}

    async def main() -> None:
        try:
            stream = await llmflow.llm_stream_call_execute(
                "stream", request(), provider, collector, finalizer
            )
        except BaseException as exc:
            outcome.append(exc)
            return
        seen = 0
        try:
            async for _chunk in stream:
                seen += 1
                if seen == close_at:
                    await stream.aclose()
                    break
        except BaseException as exc:
            outcome.append(exc)
            return
        outcome.append("ok")

    with fresh_runtime() as rt:
        _register_common(stack, asynchronous=True)
        for index, (kind, priority) in enumerate(stream_stack):
            intercepts.register_llm_stream_execution(
                f"sx{index}", priority, _stream_intercept(kind)
            )
        with testing.capture(runtime=rt) as events:
            asyncio.run(main())

    assert_valid_stream(events)
    mine = llm_events(events)
    result = outcome[0]
    if isinstance(result, BaseException) and not mine:
        return  # rejected or failed before the start
    ends = [e for e in mine if e.scope_category == "end"]
    assert len(ends) == 1
    metadata = ends[0].metadata or {}
    if isinstance(result, BaseException):
        assert "exception.type" in metadata
    elif finalizer_fails:
        assert ends[0].data is None
        assert "exception.type" in metadata
    else:
        assert "exception.type" not in metadata


def _stream_intercept(kind: str) -> Any:
    async def intercept(req: LlmRequest, call_next: Any) -> AsyncIterator[Any]:
        if kind == "retry":
            produced = False
            try:
                async for chunk in call_next():
                    produced = True
                    yield chunk
            except ProviderError:
                if produced:
                    raise
                async for chunk in call_next():
                    yield chunk
            return
        async for chunk in call_next():
            yield {**chunk, "t": True} if kind == "transform" else chunk

    return intercept


@pytest.mark.parametrize("kind", ["none", "raise", "invalid"])
@SETTINGS
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=8,
    )
)
def test_omitting_sanitizers_never_leak_the_response(kind: str, payload: Any) -> None:
    """Sanitizer isolation: an omitting sanitizer never lets the payload reach an event."""

    def sanitizer(resp: Any, ctx: Any) -> Any:
        if kind == "raise":
            raise ProviderError("x")
        return None if kind == "none" else {"bad": {1}}

    marker = {"secret-marker": payload}
    with fresh_runtime() as rt:
        guardrails.register_llm_sanitize_response("s", 0, sanitizer)
        with testing.capture(runtime=rt) as events:
            got = llmflow.llm_call_execute_sync("chat", request(), lambda req: marker)
    assert got is marker
    assert b"secret-marker" not in b"".join(e.to_json() for e in events)
