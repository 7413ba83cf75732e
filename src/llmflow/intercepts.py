"""Intercepts: rewrite requests and wrap execution, for LLM and tool calls.

Every ``register_*`` takes ``(name, priority, fn, *, scope=None)`` with the
same ordering, duplicate and scope-local rules as :mod:`llmflow.guardrails`.
Request and execution intercepts may be sync or async.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _families
from ._scope import Span

__all__ = [
    "deregister_llm_execution",
    "deregister_llm_request",
    "deregister_llm_stream_execution",
    "deregister_tool_execution",
    "deregister_tool_request",
    "register_llm_execution",
    "register_llm_request",
    "register_llm_stream_execution",
    "register_tool_execution",
    "register_tool_request",
]


def register_llm_request(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a request intercept: returns the request the provider will receive; with a codec,
    ``ctx.annotated`` is the normalized view and an annotated request may be returned.

    Signature: ``(request, ctx) -> LlmRequest | AnnotatedLlmRequest``.
    """
    _families.register("llm.request", name, priority, fn, scope)


def deregister_llm_request(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_request`` entry; return whether it existed."""
    return _families.deregister("llm.request", name, scope)


def register_llm_execution(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register an execution intercept: wraps or replaces the provider call; ``await
    next(request)`` runs the rest of the chain and may be called several times while the
    intercept runs.

    Signature: ``(request, next) -> Json``.
    """
    _families.register("llm.execution", name, priority, fn, scope)


def deregister_llm_execution(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_execution`` entry; return whether it existed."""
    return _families.deregister("llm.execution", name, scope)


def register_llm_stream_execution(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a stream execution intercept: returns the chunk iterator; ``next(request)`` returns
    the rest of the chain's iterator.

    Signature: ``(request, next) -> AsyncIterator[Json]``.
    """
    _families.register("llm.stream_execution", name, priority, fn, scope)


def deregister_llm_stream_execution(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_stream_execution`` entry; return whether it existed."""
    return _families.deregister("llm.stream_execution", name, scope)


def register_tool_request(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a tool request intercept: returns the arguments the tool will receive.

    Signature: ``(args, ctx) -> Json``.
    """
    _families.register("tool.request", name, priority, fn, scope)


def deregister_tool_request(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``tool_request`` entry; return whether it existed."""
    return _families.deregister("tool.request", name, scope)


def register_tool_execution(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a tool execution intercept: wraps or replaces the tool call; ``next(args)`` runs
    the rest of the chain.

    Signature: ``(args, next) -> Json``.
    """
    _families.register("tool.execution", name, priority, fn, scope)


def deregister_tool_execution(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``tool_execution`` entry; return whether it existed."""
    return _families.deregister("tool.execution", name, scope)
