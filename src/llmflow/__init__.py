"""llmflow: LLM execution middleware that records every call as ATOF 0.1 events.

This module only re-exports; each idea lives in its own private module, most
of them imported on first use.
"""

from __future__ import annotations

import os as _os
import types as _pytypes
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._context import propagate
from ._errors import (
    AtofParseError,
    CodecError,
    DuplicateRegistrationError,
    FlowError,
    GuardrailRejected,
    HandleError,
    InvalidParameterError,
    InvalidPayloadError,
    MiddlewareProtocolError,
    ParameterTypeError,
    RuntimeShutdownError,
    ScopeError,
    SyncCallbackError,
)
from ._event import Event
from ._exit import install as _install_exit_handlers
from ._lazy import lazy_getattr as _lazy_getattr
from ._types import DataSchema, Json, LlmRequest

if _TYPE_CHECKING:
    from . import (
        credentials,
        events,
        exporters,
        guardrails,
        http,
        intercepts,
        middleware,
        subscribers,
        testing,
    )
    from ._families import RequestContext, SanitizeContext
    from ._instrument import instrument
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

__version__ = "0.1.0"


# The errors, Event, DataSchema/Json/LlmRequest and propagate are light and loaded
# here (a recorded ``exception.type`` always shows ``llmflow.X``); every other name
# (the runtime with asyncio, the SDK instrumentation with httpx2 and the codecs, the
# submodules) on first use, so `import llmflow` and the command line stay cheap.
_MODULES = {
    "llmflow._families": ("RequestContext", "SanitizeContext"),
    "llmflow._instrument": ("instrument",),
    "llmflow._llm": (
        "CreateLlmHandleParams",
        "EndLlmHandleParams",
        "LlmAttributes",
        "LlmCallEndParams",
        "LlmCallExecuteParams",
        "LlmCallParams",
        "LlmHandle",
        "LlmStreamCallExecuteParams",
        "llm_call",
        "llm_call_end",
        "llm_call_execute",
        "llm_call_execute_sync",
        "llm_conditional_execution",
        "llm_conditional_execution_sync",
        "llm_request_intercepts",
        "llm_request_intercepts_sync",
        "llm_stream_call_execute",
    ),
    "llmflow._runtime": ("Diagnostics", "Runtime", "get_runtime"),
    "llmflow._scope": ("ScopeHandle", "current_scope", "mark", "pop_scope", "push_scope", "scope"),
    "llmflow._stream": ("LlmStream", "LlmStreamSync", "llm_stream_call_execute_sync"),
    "llmflow._tool": (
        "ToolExecutionResult",
        "ToolHandle",
        "tool_call",
        "tool_call_end",
        "tool_call_execute",
        "tool_call_execute_sync",
    ),
}
_SUBMODULES = (
    "credentials",
    "events",
    "exporters",
    "guardrails",
    "http",
    "intercepts",
    "middleware",
    "subscribers",
    "testing",
)
__getattr__ = _lazy_getattr(
    __name__,
    globals(),
    {
        **{name: f"{__name__}.{name}" for name in _SUBMODULES},
        **{name: module for module, names in _MODULES.items() for name in names},
    },
    public=True,
)


def __dir__() -> list[str]:
    """Every public name, loaded or not (``dir(llmflow)``)."""
    return sorted({*globals(), *__all__})


def flush(timeout: float | None = None) -> bool:
    """Wait until every event emitted so far is delivered and exported.

    Returns ``False`` if ``timeout`` seconds passed first. A timeout that is
    not ``None`` or a number of seconds >= 0 raises naming ``timeout``.
    """
    from ._runtime import get_runtime

    return get_runtime().flush(timeout)


async def aflush() -> None:
    """Await the delivery and export of every event emitted so far."""
    from ._runtime import get_runtime

    await get_runtime().aflush()


def diagnostics() -> Diagnostics:
    """Counters of the default runtime (see :class:`Diagnostics`); cheap to call.

    ``emitted == delivered + failed + queued + dropped``; ``exporters[name]``
    has ``received``/``exported``/``failed``/``dropped`` (``queued`` for a
    background exporter) plus its ``stats()``; ``failures`` counts isolated
    failures by ``kind:name`` source.
    """
    from ._runtime import get_runtime

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
    "FlowError",
    "GuardrailRejected",
    "HandleError",
    "InvalidParameterError",
    "InvalidPayloadError",
    "MiddlewareProtocolError",
    "ParameterTypeError",
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
    "credentials",
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
    "propagate",
    "push_scope",
    "scope",
    "subscribers",
    "testing",
    "tool_call",
    "tool_call_end",
    "tool_call_execute",
    "tool_call_execute_sync",
]

# Tracebacks, reprs and recorded ``exception.type`` show the public path
# (``llmflow.GuardrailRejected``), not the private module that defines a name.
for _name in __all__:
    _obj = globals().get(_name)  # lazy names get it when loaded (public=True above)
    if isinstance(_obj, (type, _pytypes.FunctionType)):
        _obj.__module__ = __name__
del _name, _obj

_install_exit_handlers()  # the exit flush and SIGTERM handler, as when the runtime loaded eagerly
if _os.environ.get("LLMFLOW_ATOF_PATH") or _os.environ.get("LLMFLOW_EXPORTERS"):
    from ._runtime import get_runtime as _get_runtime

    _get_runtime()  # installs the LLMFLOW_ATOF_PATH / LLMFLOW_EXPORTERS exporters at import
