"""Guardrails: conditional execution and sanitizers, for LLM and tool calls.

Every ``register_*`` takes ``(name, priority, fn, *, scope=None)``: entries run
in ascending priority (ties by name); a duplicate name in the same registry
raises :class:`~llmflow.DuplicateRegistrationError`. With ``scope=handle`` the
entry applies only to work under that scope (child tasks included) and
disappears when it closes. ``deregister_*(name, *, scope=None)`` returns whether
the entry existed. Guardrails may be sync or async; sanitizers are sync and
must be pure: they receive the event copy and must not mutate it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _families
from ._scope import Span

__all__ = [
    "deregister_llm_conditional_execution",
    "deregister_llm_sanitize_request",
    "deregister_llm_sanitize_response",
    "deregister_tool_conditional_execution",
    "deregister_tool_sanitize_request",
    "deregister_tool_sanitize_response",
    "register_llm_conditional_execution",
    "register_llm_sanitize_request",
    "register_llm_sanitize_response",
    "register_tool_conditional_execution",
    "register_tool_sanitize_request",
    "register_tool_sanitize_response",
]


def register_llm_conditional_execution(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a conditional-execution guardrail for LLM calls: return ``None`` to allow or a
    reason string to reject; an exception is an error, not a rejection.

    Signature: ``(request) -> None | str``.
    """
    _families.register("llm.conditional_execution", name, priority, fn, scope)


def deregister_llm_conditional_execution(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_conditional_execution`` entry; return whether it existed."""
    return _families.deregister("llm.conditional_execution", name, scope)


def register_llm_sanitize_request(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a sanitizer of the recorded copy of LLM requests: return the rewritten copy, or
    ``None`` to omit the payload; exceptions and invalid returns omit it too (fail closed).

    Signature: ``(request, ctx) -> LlmRequest | None``.
    """
    _families.register("llm.sanitize_request", name, priority, fn, scope)


def deregister_llm_sanitize_request(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_sanitize_request`` entry; return whether it existed."""
    return _families.deregister("llm.sanitize_request", name, scope)


def register_llm_sanitize_response(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a sanitizer of the recorded copy of LLM responses: return the rewritten copy, or
    ``None`` to omit the payload; exceptions and non-JSON returns omit it too (fail closed).

    Signature: ``(response, ctx) -> Json | None``.
    """
    _families.register("llm.sanitize_response", name, priority, fn, scope)


def deregister_llm_sanitize_response(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``llm_sanitize_response`` entry; return whether it existed."""
    return _families.deregister("llm.sanitize_response", name, scope)


def register_tool_conditional_execution(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a conditional-execution guardrail for tool calls: return ``None`` to allow or a
    reason string to reject.

    Signature: ``(args) -> None | str``.
    """
    _families.register("tool.conditional_execution", name, priority, fn, scope)


def deregister_tool_conditional_execution(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``tool_conditional_execution`` entry; return whether it existed."""
    return _families.deregister("tool.conditional_execution", name, scope)


def register_tool_sanitize_request(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a sanitizer of the recorded copy of tool arguments (``None`` omits them; failures
    fail closed).

    Signature: ``(args, ctx) -> Json | None``.
    """
    _families.register("tool.sanitize_request", name, priority, fn, scope)


def deregister_tool_sanitize_request(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``tool_sanitize_request`` entry; return whether it existed."""
    return _families.deregister("tool.sanitize_request", name, scope)


def register_tool_sanitize_response(
    name: str, priority: int, fn: Callable[..., Any], *, scope: Span | None = None
) -> None:
    """Register a sanitizer of the recorded copy of tool results (``None`` omits them; failures
    fail closed).

    Signature: ``(result, ctx) -> Json | None``.
    """
    _families.register("tool.sanitize_response", name, priority, fn, scope)


def deregister_tool_sanitize_response(name: str, *, scope: Span | None = None) -> bool:
    """Remove a ``tool_sanitize_response`` entry; return whether it existed."""
    return _families.deregister("tool.sanitize_response", name, scope)
