"""The middleware families: one table, one named callable type per family.

A family is an extension point of the managed pipeline (SPEC §4.3, §10):
guardrails, sanitizers of the recorded copy, request and execution intercepts,
for LLM and tool calls. Everything that names a family — the pipeline, the
stream iterator, the public ``register_*``/``deregister_*`` functions of
:mod:`llmflow.guardrails` and :mod:`llmflow.intercepts`, the diagnostics keys —
reads it from :data:`FAMILIES`, so a misspelt family is an error, never a dead
registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, Protocol, TypeAlias, TypeVar

from . import _scope
from ._errors import InvalidParameterError, ParameterTypeError
from ._registry import Entry, Registry
from ._runtime import Runtime, get_runtime
from ._scope import Span, local_entries
from ._types import DataSchema, Json, LlmRequest

if TYPE_CHECKING:
    from .codecs import AnnotatedLlmRequest

__all__ = [
    "FAMILIES",
    "LLM_CONDITIONAL_EXECUTION",
    "LLM_EXECUTION",
    "LLM_REQUEST",
    "LLM_SANITIZE_REQUEST",
    "LLM_SANITIZE_RESPONSE",
    "LLM_STREAM_EXECUTION",
    "TOOL_CONDITIONAL_EXECUTION",
    "TOOL_EXECUTION",
    "TOOL_REQUEST",
    "TOOL_SANITIZE_REQUEST",
    "TOOL_SANITIZE_RESPONSE",
    "CallNext",
    "Deregister",
    "Family",
    "LlmExecutionIntercept",
    "LlmGuardrail",
    "LlmRequestIntercept",
    "LlmRequestSanitizer",
    "LlmResponseSanitizer",
    "LlmStreamExecutionIntercept",
    "Register",
    "RequestContext",
    "SanitizeContext",
    "StreamNext",
    "ToolArgsSanitizer",
    "ToolExecutionIntercept",
    "ToolGuardrail",
    "ToolRequestIntercept",
    "ToolResultSanitizer",
    "chain",
    "family_of",
    "family_registry",
    "registrars",
]

_UNSET: Final[Any] = object()


# -- what middleware receives -------------------------------------------------------


class SanitizeContext:
    """What a sanitizer knows about the call whose recorded copy it rewrites.

    ``name`` and ``category`` (``"llm"``/``"tool"``) of the call, ``phase``
    (``"request"``/``"response"``) and ``data_schema``, the identity of the
    call's codec (``None`` without one). ``codec`` is the former name of
    ``data_schema``, kept as an alias.
    """

    __slots__ = ("category", "data_schema", "name", "phase")

    def __init__(
        self,
        name: str,
        category: str,
        phase: Literal["request", "response"],
        data_schema: DataSchema | None,
    ) -> None:
        self.name = name
        self.category = category
        self.phase = phase
        self.data_schema = data_schema

    @property
    def codec(self) -> DataSchema | None:
        """Alias of :attr:`data_schema` (it never was the codec object)."""
        return self.data_schema

    def __repr__(self) -> str:
        return (
            f"SanitizeContext({self.name!r}, {self.category}, {self.phase}, "
            f"data_schema={self.data_schema})"
        )


class RequestContext:
    """Passed to request intercepts: the call ``name``, the ``codec`` object and ``annotated``.

    ``annotated`` decodes the current request on first access; it is ``None``
    without a codec or when the codec cannot decode the request (the failure is
    counted in diagnostics and the call goes on).
    """

    __slots__ = ("_annotated", "_decode", "codec", "name")

    def __init__(self, name: str, codec: Any, decode: Callable[[], Any] | None) -> None:
        self.name = name
        self.codec = codec
        self._decode = decode
        self._annotated: Any = _UNSET

    @property
    def annotated(self) -> Any:
        """The codec's normalized view of the request (``AnnotatedLlmRequest``) or ``None``."""
        if self._annotated is _UNSET:
            self._annotated = None if self._decode is None else self._decode()
        return self._annotated


# -- one callable type per family ---------------------------------------------------

Verdict: TypeAlias = "str | None"
CallNext: TypeAlias = Callable[..., Any]
"""``next(request=<same>)``: runs the rest of the execution chain (awaitable when async)."""
StreamNext: TypeAlias = Callable[..., AsyncIterator[Json]]
"""``next(request=<same>)``: the rest of the stream execution chain's chunk iterator."""

LlmGuardrail: TypeAlias = "Callable[[LlmRequest], Verdict | Awaitable[Verdict]]"
"""``(request) -> None | reason``: ``None`` allows the call, a string rejects it."""
LlmRequestSanitizer: TypeAlias = Callable[[LlmRequest, SanitizeContext], "LlmRequest | None"]
"""``(request, ctx) -> LlmRequest | None``: the recorded copy, or ``None`` to omit it."""
LlmResponseSanitizer: TypeAlias = Callable[[Json, SanitizeContext], Json]
"""``(response, ctx) -> Json | None``: the recorded copy, or ``None`` to omit it."""
LlmRequestIntercept: TypeAlias = (
    "Callable[[LlmRequest, RequestContext], LlmRequest | AnnotatedLlmRequest"
    " | Awaitable[LlmRequest | AnnotatedLlmRequest]]"
)
"""``(request, ctx) -> LlmRequest | AnnotatedLlmRequest``: the request the provider receives."""
LlmExecutionIntercept: TypeAlias = Callable[[LlmRequest, CallNext], Any]
"""``(request, next) -> response``: wraps or replaces the provider call."""
LlmStreamExecutionIntercept: TypeAlias = Callable[
    [LlmRequest, StreamNext], "AsyncIterator[Json] | AsyncIterable[Json]"
]
"""``(request, next) -> async iterator of chunks``: wraps or replaces the provider stream."""
ToolGuardrail: TypeAlias = "Callable[[Json], Verdict | Awaitable[Verdict]]"
"""``(args) -> None | reason``: ``None`` allows the call, a string rejects it."""
ToolArgsSanitizer: TypeAlias = Callable[[Json, SanitizeContext], Json]
"""``(args, ctx) -> Json | None``: the recorded copy of the arguments, or ``None``."""
ToolResultSanitizer: TypeAlias = Callable[[Json, SanitizeContext], Json]
"""``(result, ctx) -> Json | None``: the recorded copy of the result, or ``None``."""
ToolRequestIntercept: TypeAlias = Callable[[Json, RequestContext], Any]
"""``(args, ctx) -> args``: the arguments the tool receives (or an awaitable of them)."""
ToolExecutionIntercept: TypeAlias = Callable[[Json, CallNext], Any]
"""``(args, next) -> result``: wraps or replaces the tool call."""

F = TypeVar("F", bound=Callable[..., Any])
F_contra = TypeVar("F_contra", bound=Callable[..., Any], contravariant=True)


class Family(Generic[F]):
    """One middleware family: its registry key and what its public functions say.

    ``key`` (``"llm.sanitize_request"``) names the registries; ``public``
    (``"llm_sanitize_request"``) is the suffix of ``register_*``/``deregister_*``
    and the prefix of its diagnostics keys (``"llm_sanitize_request:pii"``).
    """

    __slots__ = ("key", "label", "public", "signature", "snapshot_failure", "summary")

    def __init__(self, key: str, summary: str, signature: str) -> None:
        self.key = key
        self.public = key.replace(".", "_")
        self.label = key.replace(".", " ")
        self.summary = summary
        self.signature = signature
        self.snapshot_failure = self.failure_source("snapshot")
        """Where a recorded payload that is not JSON is counted (``"<public>:snapshot"``)."""

    def failure_source(self, name: str) -> str:
        """The diagnostics key of a failure of entry ``name``: ``"llm_sanitize_request:pii"``."""
        return f"{self.public}:{name}"

    def __repr__(self) -> str:
        return f"Family({self.key!r})"


LLM_CONDITIONAL_EXECUTION: Final[Family[LlmGuardrail]] = Family(
    "llm.conditional_execution",
    "conditional-execution guardrail for LLM calls: return ``None`` to allow or a reason "
    "string to reject; an exception is an error, not a rejection",
    "(request) -> None | str",
)
LLM_REQUEST: Final[Family[LlmRequestIntercept]] = Family(
    "llm.request",
    "request intercept: returns the request the provider will receive; with a codec, "
    "``ctx.annotated`` is the normalized view and an annotated request may be returned",
    "(request, ctx) -> LlmRequest | AnnotatedLlmRequest",
)
LLM_EXECUTION: Final[Family[LlmExecutionIntercept]] = Family(
    "llm.execution",
    "execution intercept: wraps or replaces the provider call; ``await next(request)`` runs "
    "the rest of the chain and may be called several times while the intercept runs",
    "(request, next) -> Json",
)
LLM_STREAM_EXECUTION: Final[Family[LlmStreamExecutionIntercept]] = Family(
    "llm.stream_execution",
    "stream execution intercept: returns the chunk iterator; ``next(request)`` returns the "
    "rest of the chain's iterator",
    "(request, next) -> AsyncIterator[Json]",
)
LLM_SANITIZE_REQUEST: Final[Family[LlmRequestSanitizer]] = Family(
    "llm.sanitize_request",
    "sanitizer of the recorded copy of LLM requests: return the rewritten copy, or ``None`` "
    "to omit the payload; exceptions and invalid returns omit it too (fail closed)",
    "(request, ctx) -> LlmRequest | None",
)
LLM_SANITIZE_RESPONSE: Final[Family[LlmResponseSanitizer]] = Family(
    "llm.sanitize_response",
    "sanitizer of the recorded copy of LLM responses: return the rewritten copy, or ``None`` "
    "to omit the payload; exceptions and non-JSON returns omit it too (fail closed)",
    "(response, ctx) -> Json | None",
)
TOOL_CONDITIONAL_EXECUTION: Final[Family[ToolGuardrail]] = Family(
    "tool.conditional_execution",
    "conditional-execution guardrail for tool calls: return ``None`` to allow or a reason "
    "string to reject",
    "(args) -> None | str",
)
TOOL_REQUEST: Final[Family[ToolRequestIntercept]] = Family(
    "tool.request",
    "tool request intercept: returns the arguments the tool will receive",
    "(args, ctx) -> Json",
)
TOOL_EXECUTION: Final[Family[ToolExecutionIntercept]] = Family(
    "tool.execution",
    "tool execution intercept: wraps or replaces the tool call; ``next(args)`` runs the rest "
    "of the chain",
    "(args, next) -> Json",
)
TOOL_SANITIZE_REQUEST: Final[Family[ToolArgsSanitizer]] = Family(
    "tool.sanitize_request",
    "sanitizer of the recorded copy of tool arguments (``None`` omits them; failures fail closed)",
    "(args, ctx) -> Json | None",
)
TOOL_SANITIZE_RESPONSE: Final[Family[ToolResultSanitizer]] = Family(
    "tool.sanitize_response",
    "sanitizer of the recorded copy of tool results (``None`` omits them; failures fail closed)",
    "(result, ctx) -> Json | None",
)

FAMILIES: Final[dict[str, Family[Any]]] = {
    family.key: family
    for family in (
        LLM_CONDITIONAL_EXECUTION,
        LLM_REQUEST,
        LLM_EXECUTION,
        LLM_STREAM_EXECUTION,
        LLM_SANITIZE_REQUEST,
        LLM_SANITIZE_RESPONSE,
        TOOL_CONDITIONAL_EXECUTION,
        TOOL_REQUEST,
        TOOL_EXECUTION,
        TOOL_SANITIZE_REQUEST,
        TOOL_SANITIZE_RESPONSE,
    )
}
"""Every middleware family by key; nothing else creates a family."""


def family_of(family: Family[F] | str) -> Family[F]:
    """The family itself, or the one named by its key; an unknown name raises.

    Raises :class:`InvalidParameterError` listing the known keys, so a typo
    never registers into a registry no pipeline reads.
    """
    if isinstance(family, Family):
        return family
    found = FAMILIES.get(family) if isinstance(family, str) else None
    if found is None:
        raise InvalidParameterError(f"family: expected one of {sorted(FAMILIES)}, got {family!r}")
    return found


def _order(entry: Entry[Any]) -> tuple[int, str]:
    return entry.priority, entry.name


def chain(runtime: Runtime, family: Family[Any]) -> tuple[Entry[Any], ...]:
    """Global plus visible scope-local entries of ``family``, in call order."""
    key = family.key
    registry = runtime.middleware.get(key)
    entries = () if registry is None else registry.entries
    if not _scope.live_local_registries:
        return entries
    local = local_entries(key)
    if local:
        return tuple(sorted((*entries, *local), key=_order))
    return entries


def family_registry(
    runtime: Runtime, family: Family[F], scope: Span | None
) -> Registry[Callable[..., Any]]:
    """The registry to (de)register into: the scope's own, or the runtime's."""
    if scope is not None:
        if not isinstance(scope, Span):
            raise ParameterTypeError(f"scope: expected a scope handle, got {type(scope).__name__}")
        return scope.local_registry(family.key)
    runtime.check_open()
    registry = runtime.middleware.get(family.key)
    if registry is None:
        registry = runtime.middleware.setdefault(family.key, Registry(family.label))
    return registry


# -- the public register_*/deregister_* functions -----------------------------------


class Register(Protocol[F_contra]):
    """``register_<family>(name, priority, fn, *, scope=None)``."""

    def __call__(
        self, name: str, priority: int, fn: F_contra, *, scope: Span | None = None
    ) -> None: ...


class Deregister(Protocol):
    """``deregister_<family>(name, *, scope=None) -> bool``."""

    def __call__(self, name: str, *, scope: Span | None = None) -> bool: ...


def registrars(family: Family[F], module: str) -> tuple[Register[F], Deregister]:
    """Build the public ``register_<family>`` and ``deregister_<family>`` of ``module``.

    Registration is global, or with ``scope=`` local to that scope (gone when it
    closes); see :class:`~llmflow._registry.Registry` for the ordering,
    duplicate and type rules.
    """

    def register(name: str, priority: int, fn: F, *, scope: Span | None = None) -> None:
        family_registry(get_runtime(), family, scope).register(name, priority, fn)

    def deregister(name: str, *, scope: Span | None = None) -> bool:
        if scope is not None and (
            isinstance(scope, Span) and (scope.local is None or family.key not in scope.local)
        ):
            return False
        return family_registry(get_runtime(), family, scope).deregister(name)

    register.__name__ = register.__qualname__ = f"register_{family.public}"
    register.__doc__ = f"Register a {family.summary}.\n\nSignature: ``{family.signature}``.\n"
    deregister.__name__ = deregister.__qualname__ = f"deregister_{family.public}"
    deregister.__doc__ = f"Remove a ``{family.public}`` entry; return whether it existed.\n"
    register.__module__ = deregister.__module__ = module
    return register, deregister
