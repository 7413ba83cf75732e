"""The managed call pipeline shared by LLM and tool calls, as generator steps.

Pipeline (SPEC §4.3): conditional guardrails → request intercepts →
sanitize-request (recorded copy) → start event → execution intercepts →
``func(request)`` → sanitize-response (recorded copy) → end event. The steps
here run the middleware of one family each; :mod:`llmflow._call` records the
events and :mod:`llmflow._drive` runs the steps sync or async.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from ._call import Call, end_metadata
from ._clock import now_us
from ._drive import Step, call_user, drive_async, drive_sync, is_awaitable
from ._errors import GuardrailRejected, MiddlewareProtocolError, ScopeError
from ._families import Family, chain
from ._json import dumps
from ._registry import Entry
from ._runtime import Runtime
from ._scope import (
    Span,
    emit_span_event,
    enter_span,
    mark,
    resolve_parent,
    unwind_to,
)

__all__ = [
    "execute_in_span",
    "exit_span",
    "prepare_call",
    "run_execution",
    "run_guardrails",
    "run_request_intercepts",
]

T = TypeVar("T")
_SAME: Final[Any] = object()


def exit_span(span: Span, error: BaseException | None) -> BaseException | None:
    """Pop ``span``, entered around user callbacks; return the error its end records.

    Scopes a callback pushed and never popped sit above ``span``; they are
    dropped from this context (they stay open) so the caller's stack is
    restored and the span can still end. That misuse is returned as a
    :class:`ScopeError` unless ``error`` is already propagating (it wins).
    """
    leaked = unwind_to(span)
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
        try:
            end(None, error)
        except Exception as failure:  # never replace the application's exception
            call.runtime.count_failure(f"{call.category}_call_end:record", failure)
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
                # A plain TypeError: it is recorded on the guardrail's end event, where
                # ``exception.type`` is part of the log (bytes kept identical).
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
) -> Step[tuple[T, bool]]:
    """Conditional guardrails, then request intercepts: all that precedes a start event.

    ``families`` names the guardrail and request-intercept registries; an
    empty chain costs one lookup. Returns the request to send and whether any
    middleware saw it (then it may have been replaced or edited in place, and
    what the start records must be snapshotted again).
    """
    touched = False
    if chain(runtime, families[0]):
        touched = True
        yield from run_guardrails(runtime, families[0], name, request)
    if chain(runtime, families[1]):
        touched = True
        request = yield from run_request_intercepts(
            runtime, families[1], name, request, make_context, accept
        )
    return request, touched


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
    it after the intercept returned raises :class:`MiddlewareProtocolError`.
    """
    entries = chain(runtime, family)
    if not entries:
        return call_user(func, request)
    return _run_from(entries, 0, func, asynchronous, request)


def _run_from(
    entries: tuple[Entry[Any], ...],
    index: int,
    func: Callable[[Any], Any],
    asynchronous: bool,
    req: Any,
) -> Step[Any]:
    """Run ``entries[index:]`` around ``func`` (a module-level function: no closure cycle,
    so a call's pipeline objects are freed by reference counting, not by the collector)."""
    if index == len(entries):
        return (yield from call_user(func, req))
    entry = entries[index]
    active = True
    innermost = index + 1 == len(entries)

    def next_(new_request: Any = _SAME) -> Any:
        if not active:
            raise MiddlewareProtocolError(
                f"execution intercept {entry.name!r} called next() after it returned"
            )
        forwarded = req if new_request is _SAME else new_request
        if innermost and asynchronous:  # no driver needed around the provider itself
            result = func(forwarded)
            return result if is_awaitable(result) else _resolved(result)
        step = _run_from(entries, index + 1, func, asynchronous, forwarded)
        return drive_async(step) if asynchronous else drive_sync(step)

    try:
        return (yield from call_user(entry.fn, req, next_))
    finally:
        active = False


async def _resolved(value: T) -> T:
    return value
