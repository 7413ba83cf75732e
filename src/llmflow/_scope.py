"""Scopes and marks: the contextvars scope stack and the events it produces.

The stack is an immutable linked list held in a ``ContextVar``: pushing makes a
new frame, so asyncio tasks and ``copy_context()`` inherit the caller's scope
while nothing a child does can change the parent's stack.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, ParamSpec, TypeVar, overload

from ._clock import new_uuid7, now_us, to_epoch_us
from ._errors import (
    FlowError,
    InvalidParameterError,
    ParameterTypeError,
    ScopeError,
    describe_exception,
)
from ._event import Origin
from ._json import dumps, metadata_snapshot, snapshot
from ._registry import Registry
from ._runtime import Runtime, get_runtime
from ._types import DataSchema, Json, JsonObject
from ._validate import (
    check_category,
    check_data_schema,
    check_name,
    check_profile,
    normalize_attributes,
)

__all__ = [
    "ScopeHandle",
    "Span",
    "current_scope",
    "current_span",
    "mark",
    "pop_scope",
    "push_scope",
    "scope",
]

P = ParamSpec("P")
R = TypeVar("R")
_EMPTY: Final[tuple[str, ...]] = ()


class Span(Origin):
    """Common state of everything that opens a start/end pair (scope, LLM, tool).

    The :class:`Origin` its start and end events share, plus the runtime, the
    start time, and scope-local middleware registries created on demand.
    """

    __slots__ = ("ended", "local", "runtime", "started_us")

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        category: str,
        parent_uuid: str | None,
        attributes: tuple[str, ...],
        started_us: int,
    ) -> None:
        # Origin's fields are set here directly: this runs for every span.
        self.uuid = new_uuid7(started_us)
        self.parent_uuid = parent_uuid
        self.name = name
        self.attributes = attributes
        self.category = category
        self.epoch_ts = runtime.epoch_timestamps
        self._wire = None
        self.runtime = runtime
        self.started_us = started_us
        self.ended = False
        self.local: dict[str, Registry[Callable[..., Any]]] | None = None

    @property
    def started_at(self) -> datetime:
        """Start time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.started_us / 1_000_000, UTC)

    def local_registry(self, family: str) -> Registry[Callable[..., Any]]:
        """The scope-local registry of ``family``, created on first use."""
        global live_local_registries
        with _LOCAL_LOCK:
            if self.ended:
                raise ScopeError(f"scope: {self.name!r} ({self.uuid}) has already ended")
            local = self.local
            if local is None:
                local = self.local = {}
                live_local_registries += 1
            registry = local.get(family)
            if registry is None:
                registry = local[family] = Registry(f"scope-local {family}")
            return registry

    def end_time(self, timestamp: object, param: str = "timestamp") -> int:
        """Validate or choose the end time: strictly later than the start."""
        if timestamp is None:
            us = now_us()
            return us if us > self.started_us else self.started_us + 1
        us = to_epoch_us(timestamp, param)
        if us <= self.started_us:
            raise InvalidParameterError(
                f"{param}: the end ({us} µs) must be later than the start "
                f"({self.started_us} µs) of {self.name!r}"
            )
        return us

    def mark_ended(self) -> None:
        """Flag the span ended and release its scope-local middleware."""
        global live_local_registries
        self.ended = True
        if self.local is not None:
            with _LOCAL_LOCK:
                if self.local is not None:
                    self.local = None
                    live_local_registries -= 1

    def __repr__(self) -> str:
        state = "ended" if self.ended else "open"
        return f"<{type(self).__name__} {self.category} {self.name!r} {self.uuid} {state}>"


class ScopeHandle(Span):
    """An open (or ended) scope created by :func:`push_scope` or :func:`scope`."""

    # Every ``custom`` event names its subtype, so the end repeats the start's.
    # ``output_raw`` is the snapshot of what ``set_output`` was given.
    __slots__ = ("end_profile_raw", "output_raw")
    end_profile_raw: bytes | None
    output_raw: bytes | None

    def set_output(self, data: Json) -> None:
        """Set the ``data`` the scope's end event records (the scope's output).

        Validated now: a value that is not JSON raises
        :class:`~llmflow.InvalidPayloadError` naming ``data`` and the output
        stays as it was. A later call replaces it; ``None`` clears it; an
        explicit ``pop_scope(data=...)`` wins over it. An output set before an
        exception left the block is still recorded. Raises
        :class:`~llmflow.ScopeError` once the scope has ended.
        """
        raw = snapshot(data, "data")
        if self.ended:
            raise ScopeError(f"handle: scope {self.name!r} ({self.uuid}) has already ended")
        self.output_raw = raw


class _Frame:
    __slots__ = ("parent", "span")

    def __init__(self, span: Span, parent: _Frame | None) -> None:
        self.span = span
        self.parent = parent


_STACK: ContextVar[_Frame | None] = ContextVar("llmflow_scope_stack", default=None)
live_local_registries = 0
"""How many open spans hold scope-local middleware, process-wide.

While it is 0, ``chain()`` skips walking the scope stack (the common case costs
one global read). ``+=`` on a global is a read-modify-write that threads can
interleave: a lost increment would hide a live scope-local guardrail from every
call (a security hook silently off), a lost decrement would only cost speed.
So every change happens under ``_LOCAL_LOCK``, together with the check that the
span is still open; the hot-path read needs no lock (a stale non-zero read only
costs one stack walk).
"""
_LOCAL_LOCK: Final = threading.Lock()


def current_span() -> Span | None:
    """The innermost open span of this context (scope, or LLM/tool call), or ``None``."""
    frame = _STACK.get()
    return None if frame is None else frame.span


def current_scope() -> Span | None:
    """The innermost open span of this context, or ``None`` outside any.

    Inside a managed call's ``func`` (and its execution intercepts) that is the
    call's :class:`~llmflow.LlmHandle` or :class:`~llmflow.ToolHandle`, not the
    enclosing scope: it is the parent that events emitted there get, and it
    accepts scope-local middleware (``scope=current_scope()``) like a scope.
    """
    return current_span()


def enter_span(span: Span) -> _Frame:
    """Push ``span`` onto this context's stack; return the new top frame."""
    frame = _Frame(span, _STACK.get())
    _STACK.set(frame)
    return frame


def leave_span(span: Span) -> None:
    """Pop ``span``; it must be the innermost open span of this context."""
    frame = _STACK.get()
    if frame is None or frame.span is not span:
        top = "no open scope" if frame is None else f"{frame.span.name!r} ({frame.span.uuid})"
        raise ScopeError(
            f"handle: cannot pop {span.name!r} ({span.uuid}): it is not the innermost open "
            f"scope of this context; the innermost is {top}"
        )
    _STACK.set(frame.parent)


def local_entries(family: str) -> list[Any]:
    """Scope-local entries of ``family`` visible from this context (innermost last)."""
    if not live_local_registries:
        return []
    found: list[Any] = []
    frame = _STACK.get()
    while frame is not None:
        local = frame.span.local
        if local is not None and not frame.span.ended:
            registry = local.get(family)
            if registry is not None:
                found.extend(registry.entries)
        frame = frame.parent
    return found


def resolve_parent(parent: object, param: str = "parent") -> str | None:
    """The parent uuid: explicit span or uuid string, else the innermost open span."""
    if parent is None:
        frame = _STACK.get()
        return None if frame is None else frame.span.uuid
    if isinstance(parent, Span):
        return parent.uuid
    if isinstance(parent, str):
        try:
            return str(uuid.UUID(parent))  # canonical: the writer splices it in verbatim
        except ValueError:
            pass
    raise ParameterTypeError(
        f"{param}: expected a scope/LLM/tool handle or a uuid string, got {parent!r}"
    )


def emit_span_event(
    span: Span,
    phase: Literal["start", "end"],
    timestamp_us: int,
    data_raw: bytes | None,
    data_schema: DataSchema | None,
    metadata_raw: bytes | None,
    profile_raw: bytes | None,
) -> None:
    """Emit the start or end event of ``span`` with already-snapshotted payloads.

    ``data_schema`` is dropped when there is no ``data`` to describe.
    """
    span.runtime.record(
        span,
        phase,
        timestamp_us,
        data_raw,
        None if data_raw is None else data_schema,
        metadata_raw,
        profile_raw,
    )


def on_stack(span: Span) -> bool:
    """Whether ``span`` is on this context's stack."""
    frame = _STACK.get()
    while frame is not None:
        if frame.span is span:
            return True
        frame = frame.parent
    return False


def unwind_to(span: Span) -> list[Span]:
    """Pop ``span`` and every span above it from this context; return those above.

    The spans above stay open (a callback pushed them and never popped them);
    only this context stops seeing them. ``span`` must be on the stack.
    """
    leaked: list[Span] = []
    while (top := current_span()) is not span and top is not None:
        leaked.append(top)
        leave_span(top)
    if top is span:
        leave_span(span)
    return leaked


def exception_metadata(exc: BaseException) -> dict[str, str]:
    """The ``exception.type`` / ``exception.message`` metadata of a failure."""
    kind, message = describe_exception(exc)
    return {"exception.type": kind, "exception.message": message}


def push_scope(
    name: str,
    category: str = "function",
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    attributes: Iterable[object] = (),
    parent: Span | str | None = None,
    data_schema: DataSchema | Mapping[str, str] | None = None,
    category_profile: JsonObject | None = None,
    timestamp: datetime | int | None = None,
) -> ScopeHandle:
    """Open a scope in this context and emit its start event; return its handle.

    The caller must close it with :func:`pop_scope` in the same context.
    Invalid arguments raise before anything is emitted or pushed.
    """
    runtime = get_runtime()
    runtime.check_open()
    check_name(name)
    profile = check_profile(category_profile)
    check_category(category, profile)
    started = now_us() if timestamp is None else to_epoch_us(timestamp, "timestamp")
    schema = check_data_schema(data_schema)
    data_raw = snapshot(data, "data")
    metadata_raw = metadata_snapshot(metadata)
    profile_raw = snapshot(profile, "category_profile")
    handle = ScopeHandle(
        runtime, name, category, resolve_parent(parent), normalize_attributes(attributes), started
    )
    handle.end_profile_raw = (
        None if profile is None or category != "custom" else dumps({"subtype": profile["subtype"]})
    )
    handle.output_raw = None
    emit_span_event(handle, "start", started, data_raw, schema, metadata_raw, profile_raw)
    enter_span(handle)
    return handle


def pop_scope(
    handle: ScopeHandle,
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    timestamp: datetime | int | None = None,
) -> None:
    """Close ``handle`` (the innermost open scope) and emit its end event.

    ``data`` (else what :meth:`ScopeHandle.set_output` set) is the end's
    ``data``. Raises :class:`ScopeError` if the scope already ended or is not
    the innermost open scope of this context; nothing is emitted then.
    """
    if not isinstance(handle, ScopeHandle):
        raise ParameterTypeError(f"handle: expected a ScopeHandle, got {type(handle).__name__}")
    if handle.ended:
        raise ScopeError(f"handle: scope {handle.name!r} ({handle.uuid}) has already ended")
    ended = handle.end_time(timestamp)
    data_raw = handle.output_raw if data is None else snapshot(data, "data")
    metadata_raw = metadata_snapshot(metadata)
    leave_span(handle)
    handle.mark_ended()
    emit_span_event(handle, "end", ended, data_raw, None, metadata_raw, handle.end_profile_raw)


class scope:
    """Open a scope around a block or a function.

    As ``with``/``async with`` it yields the :class:`ScopeHandle`; as a
    decorator each call of the function runs in a fresh scope (coroutine
    functions are awaited inside it). An exception leaving the block is
    recorded on the end event as ``exception.type``/``exception.message``
    metadata and re-raised unchanged.
    """

    __slots__ = ("_handles", "_kwargs", "_name")

    def __init__(
        self,
        name: str,
        category: str = "function",
        *,
        data: Json = None,
        metadata: JsonObject | None = None,
        attributes: Iterable[object] = (),
        parent: Span | str | None = None,
        data_schema: DataSchema | Mapping[str, str] | None = None,
        category_profile: JsonObject | None = None,
    ) -> None:
        check_name(name)
        check_category(category, check_profile(category_profile))
        self._name = name
        self._kwargs: dict[str, Any] = {
            "category": category,
            "data": data,
            "metadata": metadata,
            "attributes": attributes,
            "parent": parent,
            "data_schema": data_schema,
            "category_profile": category_profile,
        }
        self._handles: list[ScopeHandle] = []

    def __enter__(self) -> ScopeHandle:
        handle = push_scope(self._name, **self._kwargs)
        self._handles.append(handle)
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._take_handle(exc is None)
        if handle is None or handle.ended:
            return
        metadata = None if exc is None else exception_metadata(exc)
        try:
            pop_scope(handle, metadata=metadata)
        except FlowError:
            if exc is None:
                raise
            # Never mask the application's exception with a bookkeeping error; the
            # block left scopes open above this one: drop them from this context
            # (they stay open) so the caller's stack is restored, and end this one.
            if not handle.ended and on_stack(handle):
                unwind_to(handle)
                handle.mark_ended()
                emit_span_event(
                    handle,
                    "end",
                    handle.end_time(None),
                    handle.output_raw,
                    None,
                    metadata_snapshot(metadata),
                    handle.end_profile_raw,
                )

    def _take_handle(self, strict: bool) -> ScopeHandle | None:
        """The handle this context opened with this object (innermost first), removed.

        One scope object may be entered by several tasks or threads at once;
        each closes its own. A context that never entered it gets
        :class:`ScopeError` (``None`` when ``strict`` is false, so an exception
        already propagating is never masked), and no other context's handle is
        touched.
        """
        handles = self._handles
        frame = _STACK.get()
        while frame is not None:
            span = frame.span
            if span in handles:  # identity: handles are never equal otherwise
                handles.remove(span)
                return span
            frame = frame.parent
        if not strict:
            return None
        raise ScopeError(
            f"scope: {self._name!r} was not entered in this context (or was already left); "
            f"leave a scope in the task or thread that entered it"
        )

    async def __aenter__(self) -> ScopeHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        name, kwargs = self._name, self._kwargs
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kw: P.kwargs) -> Any:
                async with scope(name, **kwargs):
                    return await fn(*args, **kw)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kw: P.kwargs) -> Any:
            with scope(name, **kwargs):
                return fn(*args, **kw)

        return wrapper


def mark(
    name: str,
    *,
    data: Json = None,
    category: str | None = None,
    category_profile: JsonObject | None = None,
    data_schema: DataSchema | Mapping[str, str] | None = None,
    metadata: JsonObject | None = None,
    parent: Span | str | None = None,
    timestamp: datetime | int | None = None,
) -> str:
    """Emit a point-in-time mark under the current scope; return its uuid."""
    runtime = get_runtime()
    runtime.check_open()
    check_name(name)
    profile = check_profile(category_profile)
    if category is not None:
        check_category(category, profile)
    us = now_us() if timestamp is None else to_epoch_us(timestamp, "timestamp")
    origin = Origin(
        new_uuid7(us), resolve_parent(parent), name, _EMPTY, category, runtime.epoch_timestamps
    )
    runtime.record(
        origin,
        None,
        us,
        snapshot(data, "data"),
        check_data_schema(data_schema),
        metadata_snapshot(metadata),
        snapshot(profile, "category_profile"),
    )
    return origin.uuid
