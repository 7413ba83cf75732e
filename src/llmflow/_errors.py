"""The llmflow exception hierarchy.

The rule: every error llmflow raises on purpose derives from :class:`FlowError`,
so an application can catch at the level it cares about. Where an error is also
plain misuse of a Python value it derives from the matching builtin too
(``TypeError``, ``ValueError``, ``RuntimeError``), so generic handlers keep
working: a wrong type is :class:`ParameterTypeError`, a wrong value
:class:`InvalidParameterError`, and each message starts with the parameter's
name. Exceptions raised by the application's own callbacks propagate unchanged.
One exception to the rule: a guardrail returning neither ``None`` nor a string
raises a plain ``TypeError``, because it is recorded on the guardrail's end
event and that ``exception.type`` is part of the existing log format.
"""

from __future__ import annotations

__all__ = [
    "describe_exception",
    "AtofParseError",
    "CodecError",
    "DuplicateRegistrationError",
    "FlowError",
    "GuardrailRejected",
    "HandleError",
    "InvalidParameterError",
    "InvalidPayloadError",
    "MiddlewareProtocolError",
    "ParameterTypeError",
    "RuntimeShutdownError",
    "ScopeError",
    "SyncCallbackError",
]


class FlowError(Exception):
    """Base class of every error raised by llmflow."""


class ParameterTypeError(FlowError, TypeError):
    """An argument (or a value a callback returned in its place) has the wrong type.

    The message starts with the parameter's name and says what was expected.
    """


class InvalidParameterError(FlowError, ValueError):
    """An argument has the right type but a value llmflow cannot accept.

    Examples: an unknown category or middleware family, a timestamp outside the
    years 0001-9999, a name with a lone surrogate. The message names the parameter.
    """


class MiddlewareProtocolError(FlowError, RuntimeError):
    """A middleware hook broke its family's protocol, e.g. called ``next()`` after it returned."""


class SyncCallbackError(FlowError, TypeError):
    """A ``_sync`` entry point met a callback that returned an awaitable."""


class InvalidPayloadError(FlowError, TypeError):
    """A value that must be JSON (event data, metadata, requests) is not.

    The message names the parameter and the offending type.
    """


class ScopeError(FlowError, ValueError):
    """A scope was closed out of order, twice, or from the wrong context."""


class HandleError(FlowError, ValueError):
    """An LLM or tool handle is unknown, foreign to this runtime, or already ended.

    Also what a handle's end records (never raises) when its ``with`` block was
    left without ``end()``.
    """


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

    def __reduce__(self) -> tuple[type[GuardrailRejected], tuple[str, str]]:
        return type(self), (self.guardrail, self.reason)


def _text(value: str) -> str:
    """``value`` as valid UTF-8 text: lone surrogates become ``\\udcxx`` escapes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """``(exception.type, exception.message)`` as recorded in event metadata; never raises.

    The type is the public class path (``TimeoutError``, ``llmflow.GuardrailRejected``,
    ``httpx.ReadTimeout``). The message is ``str(exc)`` with lone surrogates
    escaped and secret-shaped text scrubbed (see ``llmflow.credentials``); when
    ``str(exc)`` itself raises, it is ``<unprintable module.TypeName>``.
    """
    cls = type(exc)
    try:
        module = cls.__module__
        name = cls.__qualname__
        kind = name if module == "builtins" else f"{module}.{name}"
    except Exception:  # a class that lies about its names: still record something
        kind = "<unknown exception type>"
    try:
        message = str(exc)
        if type(message) is not str:
            raise TypeError("__str__ returned a non-str")
    except BaseException:  # a __str__ that raises must not take the caller down with it
        message = f"<unprintable {kind}>"
    from ._credentials import scrub_text  # _credentials imports this module

    return _text(kind), scrub_text(_text(message))
