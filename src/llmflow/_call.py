"""A started LLM or tool call, and the one recorder of its start and end events.

LLM and tool calls (manual or managed, streamed or not) record their payloads
the same way: the entry point validates what the caller passed and keeps the
snapshot it made; :func:`record_call_event` sanitizes the recorded copy with
the family's chain, annotates it, falls back to the handle's ``data`` on an
end without output, and emits. Payloads the application did not pass (a
provider response, a tool result) are not validated up front: when they are
not JSON they are counted in diagnostics and omitted, never raised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Literal, Self

from ._errors import FlowError, HandleError
from ._families import Family, SanitizeContext, chain
from ._json import dumps, json_form, metadata_snapshot, snapshot
from ._provider_error import provider_error_metadata
from ._registry import Entry
from ._runtime import Runtime
from ._scope import Span, exception_metadata
from ._types import DataSchema, Json, JsonObject, LlmRequest

__all__ = [
    "Call",
    "annotate",
    "end_metadata",
    "event_snapshot",
    "profile_bytes",
    "profile_with",
    "record_call_event",
    "sanitize",
]

# Claiming an end is check-then-set; two threads ending one handle at once must
# not both pass the check (one end event per span). Uncontended, this costs
# ~50 ns per end; a per-call lock would cost an allocation per call instead.
_CLAIM_LOCK: Final = threading.Lock()


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
        """Mark the call ended, atomically; a second end raises :class:`HandleError`."""
        with _CLAIM_LOCK:
            ended = self.ended
            if not ended:
                self.ended = True
        if ended:
            raise HandleError(
                f"{param}: {self.category} call {self.name!r} ({self.uuid}) has already ended"
            )
        self.mark_ended()

    # -- the ``with`` form of manual calls ----------------------------------------------

    def end_with_error(self, error: BaseException) -> None:
        """Emit the end of this (claimed) call recording ``error``; subclasses define it."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End a call its ``with`` block left open, recording the block's exception.

        Without one, the end records a :class:`HandleError` saying ``end()`` was
        not called. Never raises (the block's exception propagates unchanged);
        a failure to record is counted as ``<category>_call_end:record``.
        """
        if self.ended:
            return
        if exc is None:
            exc = HandleError(
                f"{self.category} call {self.name!r} left its with block without end()"
            )
        try:
            self.claim_end()
        except HandleError:  # another thread ended it meanwhile: its end stands
            return
        try:
            self.end_with_error(exc)
        except Exception as failure:
            self.runtime.count_failure(f"{self.category}_call_end:record", failure)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


_PROFILE_CACHE: dict[tuple[str, str], bytes] = {}


def profile_bytes(key: str, value: str) -> bytes:
    """The snapshot of ``{key: value}``, cached (model names and the like repeat)."""
    raw = _PROFILE_CACHE.get((key, value))
    if raw is None:
        if len(_PROFILE_CACHE) >= 1024:
            _PROFILE_CACHE.clear()
        raw = _PROFILE_CACHE[key, value] = dumps({key: value})
    return raw


def profile_with(call: Call, key: str, value: Json) -> bytes | None:
    """The call's profile snapshot, plus ``key`` when ``value`` is not ``None``."""
    if value is None:
        return call.profile_raw
    return dumps({**call.profile, key: value} if call.profile else {key: value})


def end_metadata(
    call: Call, metadata: JsonObject | None, error: BaseException | None
) -> bytes | None:
    """The end metadata: the call's, then the end's, then the exception's, merged.

    The exception's are ``exception.type``/``exception.message`` and, for an
    HTTP error from a provider, its status, error code, request id and
    Retry-After (see :func:`llmflow._provider_error.provider_error_metadata`).
    """
    if not metadata and error is None:
        return call.metadata_raw
    merged = call.metadata
    if metadata:
        merged = {**merged, **metadata} if merged else metadata
    if error is not None:
        merged = {**(merged or {}), **provider_error_metadata(error), **exception_metadata(error)}
    return metadata_snapshot(merged, "metadata")


def event_snapshot(runtime: Runtime, payload: Any, source: str) -> bytes | None:
    """Snapshot a payload the application did not pass; a non-JSON one is counted and omitted."""
    try:
        return snapshot(payload, "data")
    except FlowError as exc:
        runtime.count_failure(source, exc)
        return None


def annotate(runtime: Runtime, codec: Any, method: str, payload: Any) -> JsonObject | None:
    """Run a codec annotation; a codec failure is counted, never raised."""
    try:
        return getattr(codec, method)(payload)  # type: ignore[no-any-return]
    except Exception as exc:
        schema = getattr(codec, "data_schema", None)
        runtime.count_failure(f"codec:{getattr(schema, 'name', type(codec).__name__)}", exc)
        return None


def sanitize(
    runtime: Runtime,
    family: Family[Any],
    entries: tuple[Entry[Any], ...],
    payload: Any,
    ctx: SanitizeContext,
    snapshot_of: Callable[[Any], bytes],
) -> tuple[Any, bytes] | None:
    """Run a sanitizer chain (``entries`` of ``family``) on a recorded copy.

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
            runtime.count_failure(family.failure_source(entry.name), exc)
            return None
    return payload, raw


_PLAIN: Final = frozenset({dict, list, str, int, float, bool})
_NOT_SDK: Final = json_form(None)


_PHASE: Final[dict[str, Literal["request", "response"]]] = {
    "start": "request",
    "end": "response",
}
_ANNOTATE: Final = {"start": "annotate_request", "end": "annotate_response"}


def record_call_event(
    call: Call,
    phase: Literal["start", "end"],
    family: Family[Any],
    payload: Any,
    raw: bytes | None,
    timestamp_us: int,
    metadata_raw: bytes | None,
    *,
    schema: DataSchema | None = None,
    snapshot_of: Callable[[Any], bytes] | None = None,
    profile_key: str | None = None,
    annotation: Json = None,
    codec: Any = None,
    fallback: Json = None,
    entries: tuple[Entry[Any], ...] | None = None,
) -> None:
    """Emit the start or end event of ``call`` with ``payload``'s recorded copy as ``data``.

    ``family``'s sanitizers rewrite the copy (fail closed, see :func:`sanitize`);
    without any, ``raw`` — the snapshot the entry point made while validating a
    payload the caller passed — is used as is, and a payload the application
    did not pass is snapshotted here, counted as ``"<family>:snapshot"`` and
    omitted when it is not JSON. The annotation
    (``annotation``, else the ``codec``'s reading of the recorded copy) goes to
    ``category_profile[profile_key]``; it is dropped with an omitted payload
    (fail closed). An end without recorded output records ``fallback`` (the
    handle's ``data``) without ``schema``. ``entries`` is ``family``'s chain
    when the caller has already looked it up. The call must already be claimed
    for an end: this never raises for a payload the application did not pass.
    """
    runtime = call.runtime
    data_raw = data_schema = None
    if payload is not None:
        if entries is None:
            entries = chain(runtime, family)
        if entries:
            if type(payload) not in _PLAIN and not isinstance(payload, LlmRequest):
                form = json_form(payload)  # sanitizers are written against JSON, not SDK objects
                if form is not _NOT_SDK:
                    payload = form
            ctx = SanitizeContext(call.name, call.category or "", _PHASE[phase], schema)
            recorded = sanitize(runtime, family, entries, payload, ctx, snapshot_of or dumps)
            if recorded is not None:
                payload, data_raw = recorded
        elif raw is not None:
            data_raw = raw
        else:
            data_raw = event_snapshot(runtime, payload, family.snapshot_failure)
        if data_raw is None:
            annotation = None  # an omitted payload takes its annotation with it (fail closed)
        else:
            data_schema = schema
            if annotation is None and codec is not None:
                annotation = annotate(runtime, codec, _ANNOTATE[phase], payload)
    if data_raw is None and phase == "end" and fallback is not None:
        data_raw = event_snapshot(runtime, fallback, f"{call.category}_call_end:data")
    runtime.record(
        call,
        phase,
        timestamp_us,
        data_raw,
        data_schema,
        metadata_raw,
        call.profile_raw if profile_key is None else profile_with(call, profile_key, annotation),
    )
