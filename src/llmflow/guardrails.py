"""Guardrails: conditional execution and sanitizers, for LLM and tool calls.

Every ``register_*`` takes ``(name, priority, fn, *, scope=None)``: entries run
in ascending priority (ties by name); a duplicate name in the same registry
raises :class:`~llmflow.DuplicateRegistrationError`. With ``scope=handle`` the
entry applies only to work under that scope (child tasks included) and
disappears when it closes. ``deregister_*(name, *, scope=None)`` returns whether
the entry existed. Guardrails may be sync or async; sanitizers are sync and
must be pure: they receive the event copy and must not mutate it.

The functions are generated from the family table of ``llmflow._families``;
each family's callable type (``LlmGuardrail``, ``LlmRequestSanitizer``, ...)
is exported here so a hook's signature can be read from its type.
"""

from __future__ import annotations

from ._families import (
    LLM_CONDITIONAL_EXECUTION,
    LLM_SANITIZE_REQUEST,
    LLM_SANITIZE_RESPONSE,
    TOOL_CONDITIONAL_EXECUTION,
    TOOL_SANITIZE_REQUEST,
    TOOL_SANITIZE_RESPONSE,
    LlmGuardrail,
    LlmRequestSanitizer,
    LlmResponseSanitizer,
    ToolArgsSanitizer,
    ToolGuardrail,
    ToolResultSanitizer,
    registrars,
)

__all__ = [
    "LlmGuardrail",
    "LlmRequestSanitizer",
    "LlmResponseSanitizer",
    "ToolArgsSanitizer",
    "ToolGuardrail",
    "ToolResultSanitizer",
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

register_llm_conditional_execution, deregister_llm_conditional_execution = registrars(
    LLM_CONDITIONAL_EXECUTION, __name__
)
register_llm_sanitize_request, deregister_llm_sanitize_request = registrars(
    LLM_SANITIZE_REQUEST, __name__
)
register_llm_sanitize_response, deregister_llm_sanitize_response = registrars(
    LLM_SANITIZE_RESPONSE, __name__
)
register_tool_conditional_execution, deregister_tool_conditional_execution = registrars(
    TOOL_CONDITIONAL_EXECUTION, __name__
)
register_tool_sanitize_request, deregister_tool_sanitize_request = registrars(
    TOOL_SANITIZE_REQUEST, __name__
)
register_tool_sanitize_response, deregister_tool_sanitize_response = registrars(
    TOOL_SANITIZE_RESPONSE, __name__
)
