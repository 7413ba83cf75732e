"""The tool lifecycle: ``tool_call``/``tool_call_end`` spans and managed tool calls.

Tool calls run the pipeline of :mod:`llmflow._chain` and record their events
with :mod:`llmflow._call`, as LLM calls do, with the ``tool.*`` middleware
families. Events have category ``tool``;
``category_profile.tool_call_id`` (when given) links the tool scope to the
assistant message that requested it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ._call import Call, end_metadata, event_snapshot, profile_bytes, record_call_event
from ._chain import execute_in_span, prepare_call
from ._clock import now_us, to_epoch_us
from ._credentials import strip_credential_fields
from ._drive import Step, drive_async, drive_sync
from ._errors import HandleError, ParameterTypeError
from ._families import (
    TOOL_CONDITIONAL_EXECUTION,
    TOOL_EXECUTION,
    TOOL_REQUEST,
    TOOL_SANITIZE_REQUEST,
    TOOL_SANITIZE_RESPONSE,
    RequestContext,
)
from ._json import metadata_snapshot, snapshot
from ._runtime import Runtime, get_runtime
from ._scope import Span, resolve_parent
from ._types import Json, JsonObject, check_text
from ._validate import check_callable, check_error, check_name, normalize_attributes

__all__ = [
    "ToolExecutionResult",
    "ToolHandle",
    "tool_call",
    "tool_call_end",
    "tool_call_execute",
    "tool_call_execute_sync",
]

ANNOTATION: Final = "tool_result_annotation"


@dataclass(frozen=True, slots=True)
class ToolExecutionResult:
    """A tool result with an annotation for observers.

    Returned by a tool function (or passed to :func:`tool_call_end`), a
    non-null ``annotation`` is recorded in
    ``category_profile.tool_result_annotation`` of a successful end event;
    the caller of :func:`tool_call_execute` receives ``result`` alone.
    """

    result: Json
    annotation: Json = None


class ToolHandle(Call):
    """A started tool call: ``uuid``, ``started_at``, ``name``, ``data``, ``metadata``,
    ``attributes``, ``parent_uuid`` and ``tool_call_id``.

    A context manager like :class:`~llmflow.LlmHandle`: ``with tool_call(...)
    as t: ...; t.end(result)``; an exception leaving the block ends the call
    with it, leaving without ``end()`` records a ``llmflow.HandleError``.
    """

    __slots__ = ()

    @property
    def tool_call_id(self) -> str | None:
        """The provider's tool-call id this call answers, if given."""
        return None if self.profile is None else self.profile.get("tool_call_id")

    def end(
        self,
        result: Json | ToolExecutionResult = None,
        *,
        data: Json = None,
        metadata: JsonObject | None = None,
        error: BaseException | None = None,
        timestamp: datetime | int | None = None,
    ) -> None:
        """``tool_call_end(self, ...)``: the same arguments, rules and errors."""
        tool_call_end(self, result, data=data, metadata=metadata, error=error, timestamp=timestamp)

    def end_with_error(self, error: BaseException) -> None:
        _end(self, None, error=error)


def _check_call(
    runtime: Runtime,
    name: str,
    args: Json,
    tool_call_id: str | None,
    metadata: JsonObject | None,
) -> tuple[bytes | None, bytes | None]:
    """Validate what a tool call is started with; raises before anything runs or is emitted.

    Returns the snapshots validation made: ``(args, metadata)``.
    """
    runtime.check_open()
    check_name(name)
    if tool_call_id is not None:
        if not isinstance(tool_call_id, str) or not tool_call_id:
            raise ParameterTypeError(
                f"tool_call_id: expected a non-empty str or None, got {tool_call_id!r}"
            )
        if not tool_call_id.isascii():
            check_text(tool_call_id, "tool_call_id")
    metadata_raw = metadata_snapshot(metadata)
    # non-JSON arguments are the caller's error, raised before emitting
    return _args_snapshot(args), metadata_raw


def _args_snapshot(args: Json) -> bytes | None:
    """Snapshot tool arguments as recorded: top-level credential fields removed."""
    if type(args) is dict:
        args = strip_credential_fields(args)
    return snapshot(args, "args")


def _new_handle(
    runtime: Runtime,
    name: str,
    tool_call_id: str | None,
    parent: Span | str | None,
    attributes: Iterable[object],
    data: Json,
    metadata: JsonObject | None,
    metadata_raw: bytes | None,
    timestamp: datetime | int | None,
) -> ToolHandle:
    """Build the handle of a call whose inputs :func:`_check_call` accepted."""
    started = now_us() if timestamp is None else to_epoch_us(timestamp, "timestamp")
    if tool_call_id is None:
        profile = profile_raw = None
    else:
        profile = {"tool_call_id": tool_call_id}
        profile_raw = profile_bytes("tool_call_id", tool_call_id)
    return ToolHandle(
        runtime,
        name,
        "tool",
        resolve_parent(parent),
        normalize_attributes(attributes),
        started,
        data,
        metadata,
        metadata_raw,
        profile,
        profile_raw,
    )


def _start(handle: ToolHandle, args: Json, args_raw: bytes | None) -> None:
    record_call_event(
        handle,
        "start",
        TOOL_SANITIZE_REQUEST,
        args,
        args_raw,
        handle.started_us,
        handle.metadata_raw,
    )


def _end(
    handle: ToolHandle,
    result: Json,
    *,
    raw: bytes | None = None,
    data: Json = None,
    metadata: JsonObject | None = None,
    error: BaseException | None = None,
    ended_us: int | None = None,
) -> None:
    """Emit the end event of a claimed handle: the recorded copy of ``result``.

    ``raw`` is the snapshot of a result the caller passed (validated up front);
    a tool's non-JSON result or annotation is counted and omitted instead.
    """
    annotation = None
    if isinstance(result, ToolExecutionResult):
        result, annotation = result.result, result.annotation
    if error is not None:
        annotation = None  # only a successful end carries a result annotation
    elif annotation is not None and event_snapshot(handle.runtime, annotation, ANNOTATION) is None:
        annotation = None  # a non-JSON annotation from the tool is counted and omitted
    record_call_event(
        handle,
        "end",
        TOOL_SANITIZE_RESPONSE,
        result,
        raw,
        handle.end_time(None) if ended_us is None else ended_us,
        end_metadata(handle, metadata, error),
        profile_key=ANNOTATION,
        annotation=annotation,
        fallback=handle.data if data is None else data,
    )


def tool_call(
    name: str,
    args: Json,
    *,
    tool_call_id: str | None = None,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    timestamp: datetime | int | None = None,
) -> ToolHandle:
    """Start a manual tool span: emit the tool start event (sanitized ``args``).

    ``category_profile.tool_call_id`` is ``tool_call_id`` when given; ``data``
    stays on the handle and is the end's fallback output. Invalid arguments
    raise before anything is emitted.
    """
    runtime = get_runtime()
    args_raw, metadata_raw = _check_call(runtime, name, args, tool_call_id, metadata)
    handle = _new_handle(
        runtime, name, tool_call_id, parent, attributes, data, metadata, metadata_raw, timestamp
    )
    _start(handle, args, args_raw)
    return handle


def tool_call_end(
    handle: ToolHandle,
    result: Json | ToolExecutionResult = None,
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    error: BaseException | None = None,
    timestamp: datetime | int | None = None,
) -> None:
    """End a manual tool span: emit the tool end event (sanitized ``result``).

    A :class:`ToolExecutionResult` puts its non-null annotation in
    ``category_profile.tool_result_annotation`` (a non-JSON annotation raises
    ``InvalidPayloadError`` and the handle stays open). Timestamp,
    metadata-merge, ``error`` and double-end rules are those of
    :func:`llmflow.llm_call_end`; an end with ``error`` records no annotation.
    """
    if not isinstance(handle, ToolHandle):
        raise HandleError(
            f"handle: expected a ToolHandle from tool_call(), got {type(handle).__name__}"
        )
    if handle.ended:
        handle.claim_end()  # raises
    # Validate everything up front: a bad argument raises and the handle stays open.
    ended = handle.end_time(timestamp)
    if isinstance(result, ToolExecutionResult):
        snapshot(result.annotation, "result.annotation")
        raw = snapshot(result.result, "result.result")
    else:
        raw = snapshot(result, "result")
    if data is not None:
        snapshot(data, "data")
    if metadata is not None:
        end_metadata(handle, metadata, None)
    if error is not None:
        check_error(error)
    handle.claim_end()
    _end(handle, result, raw=raw, data=data, metadata=metadata, error=error, ended_us=ended)


def _accept_args(result: Any, current: Json) -> Json:
    snapshot(result, "args (returned by a tool request intercept)")
    return result


def _execute(
    name: str,
    args: Json,
    func: Callable[[Json], Any],
    tool_call_id: str | None,
    parent: Span | str | None,
    attributes: Iterable[object],
    data: Json,
    metadata: JsonObject | None,
    asynchronous: bool,
) -> Step[Json]:
    runtime = get_runtime()
    args_raw, metadata_raw = _check_call(runtime, name, args, tool_call_id, metadata)
    check_callable(func, "func")
    # Bad attributes or parent must fail before any guardrail runs or emits.
    attributes = normalize_attributes(attributes)
    parent = resolve_parent(parent)
    # Middleware may replace or edit the arguments in place: record what the tool receives.
    args, touched = yield from prepare_call(
        runtime,
        (TOOL_CONDITIONAL_EXECUTION, TOOL_REQUEST),
        name,
        args,
        lambda _: RequestContext(name, None, None),
        _accept_args,
    )
    handle = _new_handle(
        runtime, name, tool_call_id, parent, attributes, data, metadata, metadata_raw, None
    )
    _start(handle, args, _args_snapshot(args) if touched else args_raw)

    def end(result: Json, error: BaseException | None) -> None:
        _end(handle, result, error=error)

    result = yield from execute_in_span(handle, TOOL_EXECUTION, args, func, asynchronous, end)
    return result.result if isinstance(result, ToolExecutionResult) else result


async def tool_call_execute(
    name: str,
    args: Json,
    func: Callable[[Json], Any],
    *,
    tool_call_id: str | None = None,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
) -> Json:
    """Run ``func(args)`` through the managed tool pipeline; return its result.

    Same order, rejection, failure and cancellation rules as
    :func:`llmflow.llm_call_execute`, with the ``tool_*`` middleware families.
    If ``func`` returns a :class:`ToolExecutionResult`, its annotation is
    recorded and its ``result`` returned.
    """
    return await drive_async(
        _execute(name, args, func, tool_call_id, parent, attributes, data, metadata, True)
    )


def tool_call_execute_sync(
    name: str,
    args: Json,
    func: Callable[[Json], Any],
    *,
    tool_call_id: str | None = None,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
) -> Json:
    """Synchronous :func:`tool_call_execute`; an async callback raises a ``FlowError``."""
    return drive_sync(
        _execute(name, args, func, tool_call_id, parent, attributes, data, metadata, False)
    )
