"""Intercepts: rewrite requests and wrap execution, for LLM and tool calls.

Every ``register_*`` takes ``(name, priority, fn, *, scope=None)`` with the
same ordering, duplicate and scope-local rules as :mod:`llmflow.guardrails`.
Request and execution intercepts may be sync or async. The functions are
generated from the family table of ``llmflow._families``; each family's
callable type is exported here.
"""

from __future__ import annotations

from ._families import (
    LLM_EXECUTION,
    LLM_REQUEST,
    LLM_STREAM_EXECUTION,
    TOOL_EXECUTION,
    TOOL_REQUEST,
    CallNext,
    LlmExecutionIntercept,
    LlmRequestIntercept,
    LlmStreamExecutionIntercept,
    StreamNext,
    ToolExecutionIntercept,
    ToolRequestIntercept,
    registrars,
)

__all__ = [
    "CallNext",
    "LlmExecutionIntercept",
    "LlmRequestIntercept",
    "LlmStreamExecutionIntercept",
    "StreamNext",
    "ToolExecutionIntercept",
    "ToolRequestIntercept",
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

register_llm_request, deregister_llm_request = registrars(LLM_REQUEST, __name__)
register_llm_execution, deregister_llm_execution = registrars(LLM_EXECUTION, __name__)
register_llm_stream_execution, deregister_llm_stream_execution = registrars(
    LLM_STREAM_EXECUTION, __name__
)
register_tool_request, deregister_tool_request = registrars(TOOL_REQUEST, __name__)
register_tool_execution, deregister_tool_execution = registrars(TOOL_EXECUTION, __name__)
