"""The LLM lifecycle: manual spans (``llm_call``/``llm_call_end``) and managed calls.

Managed calls run the pipeline of :mod:`llmflow._pipeline`; this module adds
what is specific to LLM calls: the :class:`LlmRequest` event view without
credential headers, ``model_name``, request/response codecs and streaming.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, cast

from ._clock import now_us, to_epoch_us
from ._errors import HandleError, InvalidPayloadError
from ._families import (
    LLM_CONDITIONAL_EXECUTION,
    LLM_EXECUTION,
    LLM_REQUEST,
    LLM_SANITIZE_REQUEST,
    LLM_SANITIZE_RESPONSE,
    RequestContext,
    SanitizeContext,
)
from ._json import check_metadata, dumps, snapshot
from ._pipeline import (
    Call,
    Step,
    annotate,
    chain,
    check_callable,
    drive_async,
    drive_sync,
    end_metadata,
    event_snapshot,
    execute_in_span,
    prepare_call,
    profile_bytes,
    profile_with,
    run_guardrails,
    run_request_intercepts,
    sanitize,
    unpack_params,
)
from ._runtime import Runtime, get_runtime
from ._scope import (
    Span,
    check_name,
    normalize_attributes,
    resolve_parent,
)
from ._types import Json, JsonObject, LlmRequest

if TYPE_CHECKING:
    from .codecs import AnnotatedLlmRequest, AnnotatedLlmResponse, RequestCodec, ResponseCodec

__all__ = [
    "CREDENTIAL_HEADERS",
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
]

CREDENTIAL_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "api-key",
        "anthropic-api-key",
        "x-goog-api-key",
    }
)
"""Headers removed (case-insensitively) from every event copy of a request."""

_RESPONSE_SNAPSHOT = LLM_SANITIZE_RESPONSE.failure_source("snapshot")


class LlmAttributes(enum.Flag):
    """ATOF attribute flags as an enum; ``attributes=`` also accepts plain strings."""

    NONE = 0
    PARALLEL = enum.auto()
    RELOCATABLE = enum.auto()
    STATEFUL = enum.auto()
    STREAMING = enum.auto()
    REMOTE = enum.auto()

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The ATOF attribute names of the set flags, sorted."""
        return tuple(sorted(m.name.lower() for m in LlmAttributes if m.value and m in self))  # type: ignore[union-attr]


class LlmHandle(Call):
    """A started LLM call: ``uuid``, ``started_at``, ``name``, ``data``, ``metadata``,
    ``attributes``, ``parent_uuid`` and ``model_name``.

    ``data`` is kept on the handle (not emitted on the start event) and becomes
    the end event's ``data`` when the sanitized response is null.
    """

    __slots__ = ()

    @property
    def model_name(self) -> str | None:
        """The normalized model name recorded in ``category_profile``."""
        return None if self.profile is None else self.profile.get("model_name")

    @classmethod
    def create(cls, params: CreateLlmHandleParams) -> LlmHandle:
        """Build an open handle from ``params`` without emitting anything.

        For code that records the start itself; :func:`llm_call` is
        ``create`` plus the start event.
        """
        return _new_handle(get_runtime(), **_fields(params))


# -- params objects -----------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class CreateLlmHandleParams:
    """The fields that define an LLM handle (everything ``llm_call`` needs but the request)."""

    name: str
    parent: Span | str | None = None
    attributes: Iterable[object] = ()
    data: Json = None
    metadata: JsonObject | None = None
    model_name: str | None = None
    timestamp: datetime | int | None = None


@dataclass(slots=True, kw_only=True)
class LlmCallParams(CreateLlmHandleParams):
    """Arguments of :func:`llm_call`."""

    request: LlmRequest
    annotated_request: AnnotatedLlmRequest | JsonObject | None = None


@dataclass(slots=True, kw_only=True)
class EndLlmHandleParams:
    """The fields that end an LLM handle (everything ``llm_call_end`` needs but the handle)."""

    response: Json = None
    data: Json = None
    metadata: JsonObject | None = None
    annotated_response: AnnotatedLlmResponse | JsonObject | None = None
    response_codec: ResponseCodec | None = None
    timestamp: datetime | int | None = None


@dataclass(slots=True, kw_only=True)
class LlmCallEndParams(EndLlmHandleParams):
    """Arguments of :func:`llm_call_end`."""

    handle: LlmHandle


@dataclass(slots=True, kw_only=True)
class LlmCallExecuteParams:
    """Arguments of :func:`llm_call_execute` and :func:`llm_call_execute_sync`."""

    name: str
    request: LlmRequest
    func: Callable[[LlmRequest], Any]
    parent: Span | str | None = None
    attributes: Iterable[object] = ()
    data: Json = None
    metadata: JsonObject | None = None
    model_name: str | None = None
    codec: RequestCodec | None = None
    response_codec: ResponseCodec | None = None


@dataclass(slots=True, kw_only=True)
class LlmStreamCallExecuteParams(LlmCallExecuteParams):
    """Arguments of :func:`llm_stream_call_execute`."""

    collector: Callable[[Json], object] | None = None
    finalizer: Callable[[], Json] | None = None


def _fields(params: object) -> dict[str, Any]:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}  # type: ignore[attr-defined]


# -- shared pieces ------------------------------------------------------------------


def _check_request(request: object, param: str = "request") -> LlmRequest:
    if not isinstance(request, LlmRequest):
        raise TypeError(f"{param}: expected an LlmRequest, got {type(request).__name__}")
    return request


_DROPPED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}


def strip_credentials(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` without the credential headers (the same dict when it has none).

    Which keys to drop is cached per key sequence: a client sends the same
    header names on every call.
    """
    keys = tuple(headers)
    drop = _DROPPED_KEYS.get(keys)
    if drop is None:
        if len(_DROPPED_KEYS) >= 256:
            _DROPPED_KEYS.clear()
        drop = _DROPPED_KEYS[keys] = tuple(
            k for k in keys if isinstance(k, str) and k.lower() in CREDENTIAL_HEADERS
        )
    if not drop:
        return headers
    kept = headers.copy()
    for key in drop:
        del kept[key]
    return kept


def _new_handle(
    runtime: Runtime,
    name: str,
    parent: Span | str | None,
    attributes: Iterable[object],
    data: Json,
    metadata: JsonObject | None,
    model_name: str | None,
    timestamp: datetime | int | None,
    extra_attribute: str | None = None,
) -> LlmHandle:
    """Validate the fields of a new LLM handle and build it; nothing is emitted.

    Raises ``TypeError``/``ValueError``/:class:`InvalidPayloadError` naming the
    bad argument, and :class:`RuntimeShutdownError` on a shut-down runtime.
    """
    if runtime.closed:
        runtime.check_open()
    if type(name) is not str or not name:
        check_name(name)
    if model_name is None:
        profile = profile_raw = None
    elif isinstance(model_name, str):
        profile, profile_raw = {"model_name": model_name}, profile_bytes("model_name", model_name)
    else:
        raise TypeError(f"model_name: expected a str or None, got {type(model_name).__name__}")
    metadata_raw = None if metadata is None else check_metadata(metadata)
    if data is not None:
        snapshot(data, "data")  # bad input fails here, not silently at the end
    attrs = normalize_attributes(attributes) if attributes else ()
    if extra_attribute is not None and extra_attribute not in attrs:
        attrs = tuple(sorted((*attrs, extra_attribute)))
    started = now_us() if timestamp is None else to_epoch_us(timestamp, "timestamp")
    return LlmHandle(
        runtime,
        name,
        "llm",
        resolve_parent(parent),
        attrs,
        started,
        data,
        metadata,
        metadata_raw,
        profile,
        profile_raw,
    )


def _request_snapshot(value: object) -> bytes:
    """Snapshot a sanitized request copy; anything but a JSON ``LlmRequest`` raises."""
    if not isinstance(value, LlmRequest):
        raise TypeError(f"expected an LlmRequest or None, got {type(value).__name__}")
    return dumps({"headers": value.headers, "content": value.content})


def _annotation_dict(value: Any, param: str) -> JsonObject | None:
    if value is None or isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise TypeError(
            f"{param}: expected an annotated model or a dict, got {type(value).__name__}"
        )
    return dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


def _start(
    handle: LlmHandle,
    request: LlmRequest,
    codec: RequestCodec | None,
    annotated: JsonObject | None = None,
) -> None:
    """Sanitize the event copy of ``request``, annotate it, emit the start event.

    The unsanitized copy must be JSON (a caller error otherwise); what a
    sanitizer returns is checked and omitted when it is not (fail closed).
    """
    runtime = handle.runtime
    headers = strip_credentials(request.headers)
    sanitizers = chain(runtime, LLM_SANITIZE_REQUEST)
    schema = None if codec is None else codec.data_schema
    view: LlmRequest | None = None
    if sanitizers:
        ctx = SanitizeContext(handle.name, "llm", "request", schema)
        sanitized = sanitize(
            runtime,
            LLM_SANITIZE_REQUEST,
            sanitizers,
            LlmRequest(headers, request.content),
            ctx,
            _request_snapshot,
        )
        view, data_raw = (None, None) if sanitized is None else sanitized
        if view is None:
            annotated = None
    else:
        data_raw = dumps_request(headers, request.content)
        if annotated is None and codec is not None:
            view = LlmRequest(headers, request.content)
    if annotated is None and codec is not None and view is not None:
        annotated = annotate(runtime, codec, "annotate_request", view)
    runtime.record(
        handle,
        "start",
        handle.started_us,
        data_raw,
        None if data_raw is None else schema,
        handle.metadata_raw,
        profile_with(handle, "annotated_request", annotated),
    )


def dumps_request(headers: dict[str, str], content: JsonObject) -> bytes:
    """Snapshot ``{"headers", "content"}``; non-JSON content is a caller error."""
    try:
        return dumps({"headers": headers, "content": content})
    except TypeError as exc:
        raise InvalidPayloadError(
            f"request: headers and content must be JSON-serializable ({exc})"
        ) from None


def _end(
    handle: LlmHandle,
    response: Json,
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    annotated: JsonObject | None = None,
    response_codec: ResponseCodec | None = None,
    error: BaseException | None = None,
    ended_us: int | None = None,
    strict: bool = False,
) -> None:
    """Sanitize the event copy of ``response``, annotate it, emit the end event.

    With ``strict`` (manual ``llm_call_end``) a non-JSON response or end
    ``data`` raises before anything is emitted and the handle is claimed here;
    otherwise the caller has claimed it and bad payloads are counted and
    omitted.
    """
    runtime = handle.runtime
    schema = None if response_codec is None else response_codec.data_schema
    data_raw = None
    if error is None and response is not None:
        sanitizers = chain(runtime, LLM_SANITIZE_RESPONSE)
        if not sanitizers:
            view = response
            data_raw = (
                snapshot(response, "response")
                if strict
                else event_snapshot(runtime, response, _RESPONSE_SNAPSHOT)
            )
        else:
            if strict:
                snapshot(response, "response")  # bad input is the caller's error
            ctx = SanitizeContext(handle.name, "llm", "response", schema)
            sanitized = sanitize(runtime, LLM_SANITIZE_RESPONSE, sanitizers, response, ctx, dumps)
            view, data_raw = (None, None) if sanitized is None else sanitized
        if data_raw is None:
            annotated = None
        elif annotated is None and response_codec is not None:
            annotated = annotate(runtime, response_codec, "annotate_response", view)
    if data_raw is None:
        fallback = handle.data if data is None else data
        data_raw = (
            snapshot(fallback, "data")
            if strict
            else event_snapshot(runtime, fallback, "llm_call_end:data")
        )
        schema = None
    metadata_raw = end_metadata(handle, metadata, error)
    if strict:
        handle.claim_end()
    runtime.record(
        handle,
        "end",
        handle.end_time(None) if ended_us is None else ended_us,
        data_raw,
        schema,
        metadata_raw,
        profile_with(handle, "annotated_response", annotated),
    )


# -- manual spans -------------------------------------------------------------------


def llm_call(
    name: str | LlmCallParams,
    request: LlmRequest | None = None,
    *,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    model_name: str | None = None,
    annotated_request: AnnotatedLlmRequest | JsonObject | None = None,
    timestamp: datetime | int | None = None,
) -> LlmHandle:
    """Start a manual LLM span: emit the llm start event and return its handle.

    The event ``data`` is the sanitized request ``{"headers", "content"}``
    without credential headers; ``category_profile.model_name`` is
    ``model_name``; ``data`` stays on the handle. No intercept runs. Invalid
    arguments raise before anything is emitted.
    """
    if isinstance(name, LlmCallParams):
        return llm_call(**unpack_params(name, locals()))
    handle = _new_handle(
        get_runtime(), name, parent, attributes, data, metadata, model_name, timestamp
    )
    if type(request) is not LlmRequest:
        request = _check_request(request)
    annotated = (
        None
        if annotated_request is None
        else _annotation_dict(annotated_request, "annotated_request")
    )
    _start(handle, request, None, annotated)
    return handle


def llm_call_end(
    handle: LlmHandle | LlmCallEndParams,
    response: Json | EndLlmHandleParams = None,
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    annotated_response: AnnotatedLlmResponse | JsonObject | None = None,
    response_codec: ResponseCodec | None = None,
    timestamp: datetime | int | None = None,
) -> None:
    """End a manual LLM span: emit the llm end event.

    ``data`` of the event is the sanitized response, or ``data`` (then the
    handle's ``data``) when that is null. End metadata is the handle's metadata
    with ``metadata`` merged over it. With ``response_codec`` and no
    ``annotated_response`` the annotation is decoded from the sanitized
    response. The end time is ``timestamp``, else now, else start + 1 µs; an
    explicit time not after the start raises ``ValueError``. Ending twice
    raises :class:`HandleError` and emits nothing.
    """
    if isinstance(handle, LlmCallEndParams):
        fields = unpack_params(handle, locals())
        return llm_call_end(fields.pop("handle"), **fields)
    if isinstance(response, EndLlmHandleParams):
        given = locals()
        del given["handle"]  # the params object stands in for everything after the handle
        fields = unpack_params(response, given)
        fields.pop("handle", None)  # an LlmCallEndParams passed as the second argument
        return llm_call_end(handle, **fields)
    if not isinstance(handle, LlmHandle):
        raise HandleError(
            f"handle: expected an LlmHandle from llm_call(), got {type(handle).__name__}"
        )
    if handle.ended:
        handle.claim_end()  # raises
    ended = handle.end_time(timestamp)
    _end(
        handle,
        response,
        data=data,
        metadata=metadata,
        annotated=None
        if annotated_response is None
        else _annotation_dict(annotated_response, "annotated_response"),
        response_codec=response_codec,
        ended_us=ended,
        strict=True,
    )
    return None


# -- managed calls ------------------------------------------------------------------


def _request_context(
    name: str, codec: RequestCodec | None, runtime: Runtime
) -> Callable[[LlmRequest], RequestContext]:
    def make(request: LlmRequest) -> RequestContext:
        if codec is None:
            return RequestContext(name, None, None)
        return RequestContext(name, codec, lambda: annotate(runtime, codec, "decode", request))

    return make


def _accept_request(codec: RequestCodec | None) -> Callable[[Any, LlmRequest], LlmRequest]:
    def accept(result: Any, current: LlmRequest) -> LlmRequest:
        if isinstance(result, LlmRequest):
            return result
        if codec is not None and hasattr(result, "model_dump") and not isinstance(result, dict):
            return codec.encode(result, current)
        raise TypeError(
            "a request intercept must return an LlmRequest"
            + (" or an annotated request" if codec is not None else "")
            + f", got {type(result).__name__}"
        )

    return accept


def _prepare(
    runtime: Runtime, name: str, request: LlmRequest, codec: RequestCodec | None
) -> Step[LlmRequest]:
    """Guardrails then request intercepts: everything before the start event."""
    return prepare_call(
        runtime,
        (LLM_CONDITIONAL_EXECUTION, LLM_REQUEST),
        name,
        request,
        _request_context(name, codec, runtime),
        _accept_request(codec),
    )


def _execute(
    name: str,
    request: LlmRequest,
    func: Callable[[LlmRequest], Any],
    parent: Span | str | None,
    attributes: Iterable[object],
    data: Json,
    metadata: JsonObject | None,
    model_name: str | None,
    codec: RequestCodec | None,
    response_codec: ResponseCodec | None,
    asynchronous: bool,
) -> Step[Json]:
    runtime = get_runtime()
    runtime.check_open()
    handle = _new_handle(runtime, name, parent, attributes, data, metadata, model_name, None)
    request = _check_request(request)
    dumps_request(request.headers, request.content)  # bad input fails before any middleware
    check_callable(func, "func")
    request = yield from _prepare(runtime, name, request, codec)
    handle.started_us = now_us()
    _start(handle, request, codec)

    def end(result: Json, error: BaseException | None) -> None:
        _end(handle, result, response_codec=response_codec, error=error)

    return (yield from execute_in_span(handle, LLM_EXECUTION, request, func, asynchronous, end))


async def llm_call_execute(
    name: str | LlmCallExecuteParams,
    request: LlmRequest | None = None,
    func: Callable[[LlmRequest], Any] | None = None,
    *,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    model_name: str | None = None,
    codec: RequestCodec | None = None,
    response_codec: ResponseCodec | None = None,
) -> Json:
    """Run ``func(request)`` through the managed pipeline and return its raw result.

    Order: conditional guardrails → request intercepts → sanitize-request
    (event copy) → start event → execution intercepts → ``func`` (sync or
    async) → sanitize-response (event copy) → end event. A rejection raises
    :class:`GuardrailRejected` with no llm events. A failure or cancellation
    after the start emits the end (null output or the handle ``data``, with
    ``exception.type``/``exception.message``) and re-raises the original.
    """
    if isinstance(name, LlmCallExecuteParams):
        return await llm_call_execute(**unpack_params(name, locals()))
    return await drive_async(
        _execute(
            name,
            cast(LlmRequest, request),
            cast("Callable[[LlmRequest], Any]", func),
            parent,
            attributes,
            data,
            metadata,
            model_name,
            codec,
            response_codec,
            True,
        )
    )


def llm_call_execute_sync(
    name: str | LlmCallExecuteParams,
    request: LlmRequest | None = None,
    func: Callable[[LlmRequest], Any] | None = None,
    *,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    model_name: str | None = None,
    codec: RequestCodec | None = None,
    response_codec: ResponseCodec | None = None,
) -> Json:
    """Synchronous :func:`llm_call_execute`; an async callback raises a ``FlowError``."""
    if isinstance(name, LlmCallExecuteParams):
        return llm_call_execute_sync(**unpack_params(name, locals()))
    return drive_sync(
        _execute(
            name,
            cast(LlmRequest, request),
            cast("Callable[[LlmRequest], Any]", func),
            parent,
            attributes,
            data,
            metadata,
            model_name,
            codec,
            response_codec,
            False,
        )
    )


async def llm_conditional_execution(request: LlmRequest, *, name: str = "llm") -> None:
    """Run only the conditional guardrails (with their guardrail scopes and marks).

    Raises :class:`GuardrailRejected` on the first rejection.
    """
    runtime = get_runtime()
    await drive_async(
        run_guardrails(runtime, LLM_CONDITIONAL_EXECUTION, name, _check_request(request))
    )


def llm_conditional_execution_sync(request: LlmRequest, *, name: str = "llm") -> None:
    """Synchronous :func:`llm_conditional_execution`."""
    runtime = get_runtime()
    drive_sync(run_guardrails(runtime, LLM_CONDITIONAL_EXECUTION, name, _check_request(request)))


async def llm_request_intercepts(
    name: str, request: LlmRequest, *, codec: RequestCodec | None = None
) -> LlmRequest:
    """Run only the request-intercept chain (global and scope-local); emits nothing."""
    runtime = get_runtime()
    check_name(name)
    return await drive_async(
        run_request_intercepts(
            runtime,
            LLM_REQUEST,
            name,
            _check_request(request),
            _request_context(name, codec, runtime),
            _accept_request(codec),
        )
    )


def llm_request_intercepts_sync(
    name: str, request: LlmRequest, *, codec: RequestCodec | None = None
) -> LlmRequest:
    """Synchronous :func:`llm_request_intercepts`."""
    runtime = get_runtime()
    check_name(name)
    return drive_sync(
        run_request_intercepts(
            runtime,
            LLM_REQUEST,
            name,
            _check_request(request),
            _request_context(name, codec, runtime),
            _accept_request(codec),
        )
    )


async def llm_stream_call_execute(
    name: str | LlmStreamCallExecuteParams,
    request: LlmRequest | None = None,
    func: Callable[[LlmRequest], Any] | None = None,
    collector: Callable[[Json], object] | None = None,
    finalizer: Callable[[], Json] | None = None,
    *,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    model_name: str | None = None,
    codec: RequestCodec | None = None,
    response_codec: ResponseCodec | None = None,
) -> AsyncIterator[Json]:
    """Run a streaming call; return an async iterator over the provider's chunks.

    Awaiting runs guardrails, request intercepts and sanitize-request and emits
    the start event (attributes include ``streaming``). Iterating runs ``func``
    wrapped by the stream execution intercepts, passes each chunk to
    ``collector`` and yields it. When the stream ends, ``finalizer()`` builds the
    complete response for exactly one end event; early ``aclose()``, a
    collector, provider or finalizer error each still produce exactly one end.
    Without ``collector``/``finalizer``, ``response_codec.stream_accumulator()``
    provides them.
    """
    if isinstance(name, LlmStreamCallExecuteParams):
        return await llm_stream_call_execute(**unpack_params(name, locals()))
    from ._stream import LlmStream  # after locals() above: a local would count as an argument

    runtime = get_runtime()
    runtime.check_open()
    handle = _new_handle(
        runtime, name, parent, attributes, data, metadata, model_name, None, "streaming"
    )
    request = _check_request(request)
    dumps_request(request.headers, request.content)  # bad input fails before any middleware
    check_callable(func, "func")
    func = cast("Callable[[LlmRequest], Any]", func)
    if collector is None and finalizer is None and response_codec is not None:
        accumulator = response_codec.stream_accumulator()
        collector, finalizer = accumulator.collect, accumulator.finalize
    check_callable(collector, "collector")
    check_callable(finalizer, "finalizer")
    collector = cast("Callable[[Json], object]", collector)
    finalizer = cast("Callable[[], Json]", finalizer)
    prepared = await drive_async(_prepare(runtime, name, request, codec))
    handle.started_us = now_us()
    _start(handle, prepared, codec)
    return LlmStream(
        handle,
        prepared,
        func,
        collector,
        finalizer,
        response_codec,
        _end,
    )
