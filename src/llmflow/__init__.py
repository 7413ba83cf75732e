"""llmflow: LLM execution middleware that records every call as ATOF 0.1 events.

This module only re-exports; each idea lives in its own private module.
"""

from __future__ import annotations

import os as _os

from . import events, exporters, subscribers, testing
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
)
from ._event import Event
from ._runtime import Diagnostics, Exporter, Runtime, get_runtime
from ._scope import ScopeHandle, current_scope, mark, pop_scope, push_scope, scope
from ._types import DataSchema, Json, LlmRequest

__version__ = "0.1.0"


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
    "DataSchema",
    "Diagnostics",
    "DuplicateRegistrationError",
    "Event",
    "Exporter",
    "FlowError",
    "GuardrailRejected",
    "HandleError",
    "InvalidPayloadError",
    "Json",
    "LlmRequest",
    "Runtime",
    "RuntimeShutdownError",
    "ScopeError",
    "ScopeHandle",
    "aflush",
    "current_scope",
    "diagnostics",
    "events",
    "exporters",
    "flush",
    "get_runtime",
    "mark",
    "pop_scope",
    "push_scope",
    "scope",
    "subscribers",
    "testing",
]

if _os.environ.get("LLMFLOW_ATOF_PATH"):
    get_runtime()  # installs the LLMFLOW_ATOF_PATH exporter at import
