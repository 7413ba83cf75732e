"""The managed call pipeline shared by LLM and tool calls.

The logic is written once, as generators that *yield* an awaitable whenever a
user callback returned one. :func:`drive_async` awaits what is yielded;
:func:`drive_sync` refuses it with a clear error. That keeps the async entry
points and their ``_sync`` twins identical except at that edge, and costs
nothing when every callback is synchronous.

Pipeline (SPEC §4.3): conditional guardrails → request intercepts →
sanitize-request (event copy) → start event → execution intercepts →
``func(request)`` → sanitize-response (event copy) → end event.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, Literal, TypeVar

from . import _scope
from ._clock import now_us
from ._errors import FlowError, GuardrailRejected, HandleError, ScopeError, SyncCallbackError
from ._families import Family, SanitizeContext
from ._json import check_metadata, dumps, snapshot
from ._registry import Entry
from ._runtime import Runtime
from ._scope import (
    Span,
    current_span,
    emit_span_event,
    enter_span,
    exception_metadata,
    leave_span,
    local_entries,
    mark,
    resolve_parent,
)
from ._types import Json, JsonObject, LlmRequest

__all__ = [
    "Call",
    "Step",
    "annotate",
    "chain",
    "check_callable",
    "drive_async",
    "drive_sync",
    "end_metadata",
    "event_snapshot",
    "execute_in_span",
    "prepare_call",
    "profile_bytes",
    "profile_with",
    "run_guardrails",
    "run_request_intercepts",
    "sanitize",
    "sanitized_json",
    "unpack_params",
]

T = TypeVar("T")
Step = Generator[tuple[Any, Awaitable[Any]], Any, T]
"""A pipeline step: yields ``(callback, awaitable)``, returns its result."""

_SAME: Final[Any] = object()


# -- drivers ------------------------------------------------------------------------


async def drive_async(step: Step[T]) -> T:
    """Run ``step`` to completion, awaiting every awaitable it yields."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            _fn, awaitable = step.send(send) if error is None else step.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            send = await awaitable
        except BaseException as exc:  # delivered back into the step
            send, error = None, exc


def drive_sync(step: Step[T]) -> T:
    """Run ``step``; an awaitable it yields is closed and refused with an error."""
    error: BaseException | None = None
    while True:
        try:
            fn, awaitable = step.send(None) if error is None else step.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        error = SyncCallbackError(
            f"{getattr(fn, '__qualname__', fn)!r} returned an awaitable, but this is a "
            f"synchronous entry point; use the async one (without _sync) instead"
        )


_NEVER_AWAITABLE: Final = frozenset(
    {type(None), bool, int, float, str, bytes, dict, list, tuple, LlmRequest}
)


def is_awaitable(value: object) -> bool:
    """``inspect.isawaitable`` with a fast answer for plain results (most callbacks)."""
    return type(value) not in _NEVER_AWAITABLE and inspect.isawaitable(value)


def call_user(fn: Callable[..., Any], *args: Any) -> Step[Any]:
    """Call a sync-or-async callback; yields its awaitable when there is one."""
    result = fn(*args)
    if is_awaitable(result):
        result = yield fn, result
    return result


# -- registries ---------------------------------------------------------------------


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


# -- the call span ------------------------------------------------------------------


class Call(Span):
    """A started LLM or tool call: the shared state of its start and end events.

    ``profile`` holds the profile keys repeated on start and end
    (``model_name``, ``tool_call_id``). Callers pass every field validated and
    ``metadata``/``profile`` snapshotted, so both events reuse the same bytes.
    """

    __slots__ = ("data", "metadata", "metadata_raw", "profile", "profile_raw")

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        category: str,
        parent_uuid: str | None,
        attributes: tuple[str, ...],
        started_us: int,
        data: Json = None,
        metadata: JsonObject | None = None,
        metadata_raw: bytes | None = None,
        profile: JsonObject | None = None,
        profile_raw: bytes | None = None,
    ) -> None:
        Span.__init__(self, runtime, name, category, parent_uuid, attributes, started_us)
        self.data = data
        self.metadata = metadata
        self.metadata_raw = metadata_raw
        self.profile = profile
        self.profile_raw = profile_raw

    def claim_end(self, param: str = "handle") -> None:
        """Mark the call ended; a second end raises :class:`HandleError`."""
        if self.ended:
            raise HandleError(
                f"{param}: {self.category} call {self.name!r} ({self.uuid}) has already ended"
            )
        self.mark_ended()


_PROFILE_CACHE: dict[tuple[str, str], bytes] = {}


def profile_bytes(key: str, value: str) -> bytes:
    """The snapshot of ``{key: value}``, cached (model names and the like repeat)."""
    raw = _PROFILE_CACHE.get((key, value))
    if raw is None:
        if len(_PROFILE_CACHE) >= 1024:
            _PROFILE_CACHE.clear()
        raw = _PROFILE_CACHE[key, value] = dumps({key: value})
    return raw


def sanitize(
    runtime: Runtime,
    family: Family[Any],
    entries: tuple[Entry[Any], ...],
    payload: Any,
    ctx: SanitizeContext,
    snapshot_of: Callable[[Any], bytes],
) -> tuple[Any, bytes] | None:
    """Run a sanitizer chain (``entries`` of ``family``) on an event copy.

    Returns the sanitized copy with its JSON snapshot, or ``None`` to omit the
    payload. A sanitizer returning ``None`` stops the chain; an exception, or a
    value ``snapshot_of`` cannot serialize, also omits the payload and stops
    the chain (fail closed) and is counted as ``"<family>:<name>"``.
    """
    raw = b""
    for entry in entries:
        try:
            payload = entry.fn(payload, ctx)
            if payload is None:
                return None
            raw = snapshot_of(payload)
        except Exception as exc:
            runtime.record_failure(family.failure_source(entry.name), exc)
            return None
    return payload, raw


def sanitized_json(
    runtime: Runtime,
    family: Family[Any],
    payload: Json,
    name: str,
    category: str,
    phase: Literal["request", "response"],
    raw: bytes | None = None,
) -> bytes | None:
    """Sanitize and snapshot a JSON event copy; ``None`` when it is omitted.

    ``raw`` is a snapshot of ``payload`` the caller already made (validation),
    used as is when no sanitizer is registered.
    """
    entries = chain(runtime, family)
    if not entries:
        if raw is not None:
            return raw
        return event_snapshot(runtime, payload, family.failure_source("snapshot"))
    ctx = SanitizeContext(name, category, phase, None)
    sanitized = sanitize(runtime, family, entries, payload, ctx, dumps)
    return None if sanitized is None else sanitized[1]


def event_snapshot(runtime: Runtime, payload: Any, source: str) -> bytes | None:
    """Snapshot a sanitized event copy; a non-JSON value is counted and omitted."""
    try:
        return snapshot(payload, "data")
    except FlowError as exc:
        runtime.record_failure(source, exc)
        return None


def annotate(runtime: Runtime, codec: Any, method: str, payload: Any) -> JsonObject | None:
    """Run a codec annotation; a codec failure is counted, never raised."""
    try:
        return getattr(codec, method)(payload)  # type: ignore[no-any-return]
    except Exception as exc:
        schema = getattr(codec, "data_schema", None)
        runtime.record_failure(f"codec:{getattr(schema, 'name', type(codec).__name__)}", exc)
        return None


def profile_with(call: Call, key: str, value: Json) -> bytes | None:
    """The call's profile snapshot, plus ``key`` when ``value`` is not ``None``."""
    if value is None:
        return call.profile_raw
    return dumps({**call.profile, key: value} if call.profile else {key: value})


def end_metadata(
    call: Call, metadata: JsonObject | None, error: BaseException | None
) -> bytes | None:
    """The end metadata: the call's, then the end's, then the exception's, merged."""
    if not metadata and error is None:
        return call.metadata_raw
    merged: JsonObject | None = call.metadata
    if metadata:
        merged = {**merged, **metadata} if merged else metadata
    if error is not None:
        merged = {**(merged or {}), **exception_metadata(error)}
    return check_metadata(merged, "metadata")


def exit_span(span: Span, error: BaseException | None) -> BaseException | None:
    """Pop ``span``, entered around user callbacks; return the error its end records.

    Scopes a callback pushed and never popped sit above ``span``; they are
    dropped from this context (they stay open) so the caller's stack is
    restored and the span can still end. That misuse is returned as a
    :class:`ScopeError` unless ``error`` is already propagating (it wins).
    """
    leaked: list[Span] = []
    while (top := current_span()) is not span and top is not None:
        leaked.append(top)
        leave_span(top)
    if top is span:
        leave_span(span)
    if leaked and error is None:
        names = ", ".join(repr(s.name) for s in leaked)
        return ScopeError(
            f"{span.category} {span.name!r}: a callback left scope(s) {names} open; pop every "
            f"scope you push before returning"
        )
    return error


def execute_in_span(
    call: Call,
    family: Family[Any],
    request: Any,
    func: Callable[[Any], Any],
    asynchronous: bool,
    end: Callable[[Any, BaseException | None], None],
) -> Step[Any]:
    """Run the execution chain with ``call`` as the current span, then end it once.

    ``end(result, error)`` emits the end event. A failure or cancellation is
    recorded and the original exception re-raised unchanged.
    """
    enter_span(call)
    error: BaseException | None = None
    result: Any = None
    try:
        result = yield from run_execution(call.runtime, family, request, func, asynchronous)
    except BaseException as exc:
        error = exc
    error = exit_span(call, error)
    call.claim_end()
    if error is not None:
        end(None, error)
        raise error
    end(result, None)
    return result


# -- middleware steps ---------------------------------------------------------------


def run_guardrails(runtime: Runtime, family: Family[Any], name: str, request: Any) -> Step[None]:
    """Conditional-execution guardrails: each runs inside a ``guardrail`` scope.

    A returned string rejects: a mark records guardrail and reason, the scope
    ends, and :class:`GuardrailRejected` is raised. An exception is an error:
    recorded on the guardrail's end event and re-raised unchanged.
    """
    for entry in chain(runtime, family):
        span = Call(runtime, entry.name, "guardrail", resolve_parent(None), (), now_us())
        emit_span_event(span, "start", span.started_us, None, None, None, None)
        enter_span(span)
        error: BaseException | None = None
        try:
            verdict = entry.fn(request)
            if is_awaitable(verdict):
                verdict = yield entry.fn, verdict
            if verdict is not None and not isinstance(verdict, str):
                raise TypeError(
                    f"guardrail {entry.name!r} must return None (allow) or a str (reject "
                    f"reason), got {type(verdict).__name__}"
                )
        except BaseException as exc:
            error = exc
        error = exit_span(span, error)
        if error is not None:
            span.claim_end()
            metadata_raw = end_metadata(span, None, error)
            emit_span_event(span, "end", span.end_time(None), None, None, metadata_raw, None)
            raise error
        if verdict is None:
            span.claim_end()
            emit_span_event(span, "end", span.end_time(None), None, None, None, None)
            continue
        mark(
            "llmflow.guardrail_rejected",
            data={"guardrail": entry.name, "reason": verdict, "call": name},
            category="guardrail",
            parent=span,
        )
        span.claim_end()
        rejection = dumps({"rejected": True, "reason": verdict})
        emit_span_event(span, "end", span.end_time(None), rejection, None, None, None)
        raise GuardrailRejected(entry.name, verdict)


def run_request_intercepts(
    runtime: Runtime,
    family: Family[Any],
    name: str,
    request: T,
    make_context: Callable[[T], Any],
    accept: Callable[[Any, T], T],
) -> Step[T]:
    """Request intercepts in order; ``accept(result, current)`` validates each result."""
    for entry in chain(runtime, family):
        result = entry.fn(request, make_context(request))
        if is_awaitable(result):
            result = yield entry.fn, result
        request = accept(result, request)
    return request


def prepare_call(
    runtime: Runtime,
    families: tuple[Family[Any], Family[Any]],
    name: str,
    request: T,
    make_context: Callable[[T], Any],
    accept: Callable[[Any, T], T],
) -> Step[T]:
    """Conditional guardrails, then request intercepts: all that precedes a start event.

    ``families`` names the guardrail and request-intercept registries; an
    empty chain costs one lookup.
    """
    if chain(runtime, families[0]):
        yield from run_guardrails(runtime, families[0], name, request)
    if chain(runtime, families[1]):
        request = yield from run_request_intercepts(
            runtime, families[1], name, request, make_context, accept
        )
    return request


def run_execution(
    runtime: Runtime,
    family: Family[Any],
    request: Any,
    func: Callable[[Any], Any],
    asynchronous: bool,
) -> Step[Any]:
    """Execution intercepts wrapped around ``func`` (Starlette-style ``next``).

    ``next(request=None)`` runs the rest of the chain (the same request when
    omitted) and may be called several times while the intercept runs; calling
    it after the intercept returned raises :class:`FlowError`.
    """
    entries = chain(runtime, family)
    if not entries:
        return call_user(func, request)

    def run(index: int, req: Any) -> Step[Any]:
        if index == len(entries):
            return (yield from call_user(func, req))
        entry = entries[index]
        active = True

        innermost = index + 1 == len(entries)

        def next_(new_request: Any = _SAME) -> Any:
            if not active:
                raise FlowError(
                    f"execution intercept {entry.name!r} called next() after it returned"
                )
            forwarded = req if new_request is _SAME else new_request
            if innermost and asynchronous:  # no driver needed around the provider itself
                result = func(forwarded)
                return result if is_awaitable(result) else _resolved(result)
            step = run(index + 1, forwarded)
            return drive_async(step) if asynchronous else drive_sync(step)

        try:
            return (yield from call_user(entry.fn, req, next_))
        finally:
            active = False

    return run(0, request)


async def _resolved(value: T) -> T:
    return value


def check_callable(value: object, param: str) -> None:
    """``TypeError`` naming ``param`` unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{param}: expected a callable, got {type(value).__name__}")


def unpack_params(params: object, given: dict[str, object]) -> dict[str, Any]:
    """The fields of a params object, checking no other argument was also passed.

    ``given`` is the entry point's ``locals()`` at entry; its first item is the
    params object itself and every other argument must still be at its default
    (``None`` or ``()``).
    """
    clashes = [key for key, value in list(given.items())[1:] if value is not None and value != ()]
    if clashes:
        raise TypeError(
            f"pass either a {type(params).__name__} or separate arguments, not both "
            f"(also got {', '.join(clashes)})"
        )
    return {name: getattr(params, name) for name in params.__dataclass_fields__}  # type: ignore[attr-defined]
