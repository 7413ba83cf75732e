"""The llmflow exception hierarchy.

Every error llmflow raises on purpose derives from :class:`FlowError`, so an
application can catch at the level it cares about. Where an error is also plain
misuse of a Python value it derives from ``TypeError`` or ``ValueError`` too, so
generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "AtofParseError",
    "CodecError",
    "DuplicateRegistrationError",
    "FlowError",
    "GuardrailRejected",
    "HandleError",
    "InvalidPayloadError",
    "RuntimeShutdownError",
    "ScopeError",
    "SyncCallbackError",
]


class FlowError(Exception):
    """Base class of every error raised by llmflow."""


class SyncCallbackError(FlowError, TypeError):
    """A ``_sync`` entry point met a callback that returned an awaitable."""


class InvalidPayloadError(FlowError, TypeError):
    """A value that must be JSON (event data, metadata, requests) is not.

    The message names the parameter and the offending type.
    """


class ScopeError(FlowError, ValueError):
    """A scope was closed out of order, twice, or from the wrong context."""


class HandleError(FlowError, ValueError):
    """An LLM or tool handle is unknown, foreign to this runtime, or already ended."""


class DuplicateRegistrationError(FlowError, ValueError):
    """A name was registered twice in the same registry."""


class RuntimeShutdownError(FlowError, RuntimeError):
    """The runtime was shut down and refuses further use (the runtime owner check)."""


class AtofParseError(FlowError, ValueError):
    """An ATOF line is not valid JSON or not a valid ATOF 0.1 event.

    ``line`` is the 1-based line number when the input came from a stream.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class CodecError(FlowError, ValueError):
    """A codec could not decode or encode a payload.

    ``field`` is the dotted path of the offending field (``"messages[2].role"``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class GuardrailRejected(FlowError):
    """A conditional-execution guardrail refused the call.

    ``guardrail`` is the registered name of the guardrail that rejected, and
    ``reason`` the string it returned. No LLM or tool start/end events are emitted
    for a rejected call.
    """

    def __init__(self, guardrail: str, reason: str) -> None:
        self.guardrail = guardrail
        self.reason = reason
        super().__init__(f"guardrail {guardrail!r} rejected the call: {reason}")


# Report the public import path (``llmflow.GuardrailRejected``), not the private
# module, in tracebacks and in recorded ``exception.type`` metadata.
for _cls in (
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
):
    _cls.__module__ = "llmflow"
