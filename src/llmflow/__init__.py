"""llmflow: LLM execution middleware that records every call as ATOF 0.1 events.

This module only re-exports; each idea lives in its own private module.
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from . import events, exporters, guardrails, intercepts, middleware, subscribers, testing
from ._errors import (
    AtofParseError,
    CodecError,
    DuplicateRegistrationError,
    FlowError,
    GuardrailRejected,
    HandleError,
    InvalidPayloadError,
    RuntimeShutdownError,
    ScopeError,
    SyncCallbackError,
)
from ._event import Event, LineParts
from ._llm import (
    CreateLlmHandleParams,
    EndLlmHandleParams,
    LlmAttributes,
    LlmCallEndParams,
    LlmCallExecuteParams,
    LlmCallParams,
    LlmHandle,
    LlmStreamCallExecuteParams,
    llm_call,
    llm_call_end,
    llm_call_execute,
    llm_call_execute_sync,
    llm_conditional_execution,
    llm_conditional_execution_sync,
    llm_request_intercepts,
    llm_request_intercepts_sync,
    llm_stream_call_execute,
)
from ._pipeline import RequestContext, SanitizeContext
from ._runtime import Diagnostics, Runtime, get_runtime
from ._scope import ScopeHandle, current_scope, mark, pop_scope, push_scope, scope
from ._stream import LlmStream, LlmStreamSync, llm_stream_call_execute_sync
from ._tool import (
    ToolExecutionResult,
    ToolHandle,
    tool_call,
    tool_call_end,
    tool_call_execute,
    tool_call_execute_sync,
)
from ._types import DataSchema, Json, LlmRequest
from .exporters._base import Exporter, LineExporter

__version__ = "0.1.0"

if _TYPE_CHECKING:
    from . import http
    from ._instrument import instrument


def __getattr__(name: str) -> _Any:
    # llmflow.http and llmflow.instrument load httpx2 and the codecs: only on first use.
    if name == "http":
        import importlib

        return importlib.import_module("llmflow.http")
    if name == "instrument":
        from ._instrument import instrument

        return instrument
    raise AttributeError(f"module 'llmflow' has no attribute {name!r}")


def flush(timeout: float | None = None) -> bool:
    """Wait until every event emitted so far is delivered and exported.

    Returns ``False`` if ``timeout`` seconds passed first.
    """
    return get_runtime().flush(timeout)


async def aflush() -> None:
    """Await the delivery and export of every event emitted so far."""
    await get_runtime().aflush()


def diagnostics() -> Diagnostics:
    """Counters of the default runtime: delivered, queued, dropped, isolated failures."""
    return get_runtime().diagnostics()


__all__ = [
    "AtofParseError",
    "CodecError",
    "CreateLlmHandleParams",
    "DataSchema",
    "Diagnostics",
    "DuplicateRegistrationError",
    "EndLlmHandleParams",
    "Event",
    "Exporter",
    "LineExporter",
    "LineParts",
    "FlowError",
    "GuardrailRejected",
    "HandleError",
    "InvalidPayloadError",
    "Json",
    "LlmAttributes",
    "LlmCallEndParams",
    "LlmCallExecuteParams",
    "LlmCallParams",
    "LlmHandle",
    "LlmRequest",
    "LlmStream",
    "LlmStreamSync",
    "LlmStreamCallExecuteParams",
    "RequestContext",
    "Runtime",
    "RuntimeShutdownError",
    "SanitizeContext",
    "ScopeError",
    "ScopeHandle",
    "SyncCallbackError",
    "ToolExecutionResult",
    "ToolHandle",
    "aflush",
    "current_scope",
    "diagnostics",
    "events",
    "exporters",
    "flush",
    "get_runtime",
    "guardrails",
    "http",
    "instrument",
    "intercepts",
    "llm_call",
    "llm_call_end",
    "llm_call_execute",
    "llm_call_execute_sync",
    "llm_conditional_execution",
    "llm_conditional_execution_sync",
    "llm_request_intercepts",
    "llm_request_intercepts_sync",
    "llm_stream_call_execute",
    "llm_stream_call_execute_sync",
    "mark",
    "middleware",
    "pop_scope",
    "push_scope",
    "scope",
    "subscribers",
    "testing",
    "tool_call",
    "tool_call_end",
    "tool_call_execute",
    "tool_call_execute_sync",
]

if _os.environ.get("LLMFLOW_ATOF_PATH") or _os.environ.get("LLMFLOW_EXPORTERS"):
    get_runtime()  # installs the LLMFLOW_ATOF_PATH / LLMFLOW_EXPORTERS exporters at import
