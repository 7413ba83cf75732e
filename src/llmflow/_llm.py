"""The LLM lifecycle: manual spans (``llm_call``/``llm_call_end``) and managed calls.

Managed calls run the pipeline of :mod:`llmflow._chain`; this module adds
what is specific to LLM calls: the :class:`LlmRequest` event view without
credential headers, ``model_name``, request/response codecs and streaming.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ._call import Call, annotate, end_metadata, profile_bytes, record_call_event
from ._chain import execute_in_span, prepare_call, run_guardrails, run_request_intercepts
from ._clock import now_us, to_epoch_us
from ._credentials import CREDENTIAL_HEADERS, strip_credential_fields, strip_credentials
from ._drive import Step, drive_async, drive_sync
from ._errors import HandleError, ParameterTypeError
from ._families import (
    LLM_CONDITIONAL_EXECUTION,
    LLM_EXECUTION,
    LLM_REQUEST,
    LLM_SANITIZE_REQUEST,
    LLM_SANITIZE_RESPONSE,
    RequestContext,
    chain,
)
from ._json import dumps_payload, metadata_snapshot, snapshot
from ._runtime import Runtime, get_runtime
from ._scope import Span, resolve_parent
from ._stream import LlmStream, stream_callbacks
from ._types import Json, JsonObject, LlmRequest
from ._validate import (
    check_callable,
    check_error,
    check_model_name,
    check_name,
    from_params,
    normalize_attributes,
)

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

    A handle from :func:`llm_call` is a context manager: ``with llm_call(...) as
    h: ...; h.end(response)``. An exception leaving the block ends the call
    with it (recorded as by :func:`llm_call_end` with ``error=``) and
    propagates unchanged; leaving the block without ``end()`` records a
    ``llmflow.HandleError``. The block does not change the current scope.
    """

    # The response codec ``llm_call_end`` uses when given none: ``llm_call``'s
    # ``codec`` when it also reads responses.
    __slots__ = ("response_codec",)
    response_codec: ResponseCodec | None

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
        return _new_handle(get_runtime(), **from_params(params))

    def end(
        self,
        response: Json = None,
        *,
        data: Json = None,
        metadata: JsonObject | None = None,
        annotated_response: AnnotatedLlmResponse | JsonObject | None = None,
        response_codec: ResponseCodec | None = None,
        error: BaseException | None = None,
        timestamp: datetime | int | None = None,
    ) -> None:
        """``llm_call_end(self, ...)``: the same arguments, rules and errors."""
        llm_call_end(
            self,
            response,
            data=data,
            metadata=metadata,
            annotated_response=annotated_response,
            response_codec=response_codec,
            error=error,
            timestamp=timestamp,
        )

    def end_with_error(self, error: BaseException) -> None:
        _end(self, None, error=error)


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
    codec: RequestCodec | None = None


@dataclass(slots=True, kw_only=True)
class EndLlmHandleParams:
    """The fields that end an LLM handle (everything ``llm_call_end`` needs but the handle)."""

    response: Json = None
    data: Json = None
    metadata: JsonObject | None = None
    annotated_response: AnnotatedLlmResponse | JsonObject | None = None
    response_codec: ResponseCodec | None = None
    error: BaseException | None = None
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


# -- shared pieces ------------------------------------------------------------------


def _check_request(request: object, param: str = "request") -> LlmRequest:
    if not isinstance(request, LlmRequest):
        raise ParameterTypeError(f"{param}: expected an LlmRequest, got {type(request).__name__}")
    return request


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
    response_codec: ResponseCodec | None = None,
) -> LlmHandle:
    """Validate the fields of a new LLM handle and build it; nothing is emitted.

    Raises ``TypeError``/``ValueError``/:class:`InvalidPayloadError` naming the
    bad argument, and :class:`RuntimeShutdownError` on a shut-down runtime.
    """
    if runtime.closed:
        runtime.check_open()
    if type(name) is not str or not name or not name.isascii():
        check_name(name)
    if model_name is None:
        profile = profile_raw = None
    else:
        if type(model_name) is not str or not model_name.isascii():
            check_model_name(model_name)
        profile, profile_raw = {"model_name": model_name}, profile_bytes("model_name", model_name)
    metadata_raw = None if metadata is None else metadata_snapshot(metadata)
    if data is not None:
        snapshot(data, "data")  # bad input fails here, not silently at the end
    attrs = normalize_attributes(attributes) if attributes else ()
    if extra_attribute is not None and extra_attribute not in attrs:
        attrs = tuple(sorted((*attrs, extra_attribute)))
    started = now_us() if timestamp is None else to_epoch_us(timestamp, "timestamp")
    handle = LlmHandle(
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
    handle.response_codec = response_codec
    return handle


def _request_snapshot(value: object) -> bytes:
    """Snapshot a sanitized request copy; anything but a JSON ``LlmRequest`` raises."""
    if not isinstance(value, LlmRequest):
        raise ParameterTypeError(f"expected an LlmRequest or None, got {type(value).__name__}")
    return dumps_payload({"headers": value.headers, "content": value.content}, "request")


RecordedRequest = tuple[dict[str, str], JsonObject, bytes | None]
"""What a request is recorded as: headers and content without credentials, and
their snapshot (``None`` when sanitizers will make the recorded one)."""


def recorded_request(request: LlmRequest, snapshot: bool = True) -> RecordedRequest:
    """The recorded copy of ``request``: credential headers and body fields removed.

    With ``snapshot``, also its JSON bytes: SDK objects in the content become
    their JSON form and the SDKs' "not given" sentinels are omitted. Raises
    :class:`InvalidPayloadError` naming the path of what is not JSON
    (``request.content.messages[3]``): a caller error, raised before anything
    is emitted.
    """
    headers = strip_credentials(request.headers)
    if not isinstance(request.content, dict):  # checked where used: fields are assignable
        raise ParameterTypeError(
            f"request.content: expected a dict (the JSON body), "
            f"got {type(request.content).__name__}"
        )
    content = strip_credential_fields(request.content)
    if not snapshot:
        return headers, content, None
    return headers, content, dumps_payload({"headers": headers, "content": content}, "request")


def _annotation_dict(value: Any, param: str) -> JsonObject | None:
    if value is None or isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None)
    if dump is None:
        raise ParameterTypeError(
            f"{param}: expected an annotated model or a dict, got {type(value).__name__}"
        )
    return dump(mode="json", exclude_none=True)  # type: ignore[no-any-return]


def _start(
    handle: LlmHandle,
    request: LlmRequest,
    recorded: RecordedRequest,
    codec: RequestCodec | None,
    annotated: JsonObject | None = None,
) -> None:
    """Emit the start event: the recorded copy of ``request`` (see :func:`recorded_request`)."""
    headers, content, raw = recorded
    sanitizers = chain(handle.runtime, LLM_SANITIZE_REQUEST)
    if sanitizers or codec is not None or content is not request.content:
        # Sanitizers and codecs get a copy without credentials, whose fields they
        # may assign without reaching the provider. Without them only ``raw``
        # (made from that copy) is recorded: no copy needed.
        request = LlmRequest(headers, content)
    record_call_event(
        handle,
        "start",
        LLM_SANITIZE_REQUEST,
        request,
        raw,
        handle.started_us,
        handle.metadata_raw,
        schema=None if codec is None else codec.data_schema,
        snapshot_of=_request_snapshot,
        profile_key="annotated_request",
        annotation=annotated,
        codec=codec,
        entries=sanitizers,
    )


def _end(
    handle: LlmHandle,
    response: Json,
    *,
    raw: bytes | None = None,
    data: Json = None,
    metadata: JsonObject | None = None,
    annotated: JsonObject | None = None,
    response_codec: ResponseCodec | None = None,
    error: BaseException | None = None,
    ended_us: int | None = None,
) -> None:
    """Emit the end event of a claimed handle: the recorded copy of ``response``.

    ``raw`` is the snapshot of a response the caller passed (validated up
    front); a provider's non-JSON response is counted and omitted instead.
    Without recorded output, ``data`` (else the handle's ``data``) is recorded.
    """
    record_call_event(
        handle,
        "end",
        LLM_SANITIZE_RESPONSE,
        response,
        raw,
        handle.end_time(None) if ended_us is None else ended_us,
        end_metadata(handle, metadata, error),
        schema=None if response_codec is None else response_codec.data_schema,
        profile_key="annotated_response",
        annotation=annotated,
        codec=response_codec,
        fallback=handle.data if data is None else data,
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
    codec: RequestCodec | None = None,
    timestamp: datetime | int | None = None,
) -> LlmHandle:
    """Start a manual LLM span: emit the llm start event and return its handle.

    The event ``data`` is the sanitized request ``{"headers", "content"}``
    without credential headers; ``category_profile.model_name`` is
    ``model_name`` (with a ``codec``, by default the model the request names);
    ``data`` stays on the handle. With ``codec`` the start records its
    ``data_schema`` and its reading of the request (unless
    ``annotated_request`` is given), and the end uses the matching response
    codec unless ``llm_call_end`` gets one. No intercept runs. Invalid
    arguments raise before anything is emitted. The handle is a context
    manager (see :class:`LlmHandle`).
    """
    if isinstance(name, LlmCallParams):
        return llm_call(
            **from_params(
                name,
                request=request,
                parent=parent,
                attributes=attributes,
                data=data,
                metadata=metadata,
                model_name=model_name,
                annotated_request=annotated_request,
                codec=codec,
                timestamp=timestamp,
            )
        )
    handle = _new_handle(
        get_runtime(),
        name,
        parent,
        attributes,
        data,
        metadata,
        model_name,
        timestamp,
        None,
        None if codec is None else _response_codec(_check_codec(codec), None),
    )
    if type(request) is not LlmRequest:
        request = _check_request(request)
    recorded = recorded_request(request)
    annotated = (
        None
        if annotated_request is None
        else _annotation_dict(annotated_request, "annotated_request")
    )
    if codec is not None and handle.profile is None:
        _default_model_name(handle, codec, request)
    _start(handle, request, recorded, codec, annotated)
    return handle


def llm_call_end(
    handle: LlmHandle | LlmCallEndParams,
    response: Json | EndLlmHandleParams = None,
    *,
    data: Json = None,
    metadata: JsonObject | None = None,
    annotated_response: AnnotatedLlmResponse | JsonObject | None = None,
    response_codec: ResponseCodec | None = None,
    error: BaseException | None = None,
    timestamp: datetime | int | None = None,
) -> None:
    """End a manual LLM span: emit the llm end event.

    ``data`` of the event is the sanitized response, or ``data`` (then the
    handle's ``data``) when that is null. End metadata is the handle's metadata
    with ``metadata`` merged over it, then, with ``error`` (an exception), the
    ``exception.type``/``exception.message`` and provider HTTP facts a managed
    call records for it. With ``response_codec`` (default: the one
    :func:`llm_call`'s ``codec`` implies) and no ``annotated_response`` the
    annotation is decoded from the sanitized response. The end time is
    ``timestamp``, else now, else start + 1 µs; an explicit time not after the
    start raises ``ValueError``. Ending twice
    raises :class:`HandleError` and emits nothing.
    """
    if isinstance(handle, LlmCallEndParams) or isinstance(response, EndLlmHandleParams):
        params = handle if isinstance(handle, LlmCallEndParams) else response
        fields = from_params(
            params,
            response=None if params is response else response,
            data=data,
            metadata=metadata,
            annotated_response=annotated_response,
            response_codec=response_codec,
            error=error,
            timestamp=timestamp,
        )
        # An LlmCallEndParams carries the handle; as the second argument its handle is ignored.
        target = fields.pop("handle", None) if params is handle else handle
        fields.pop("handle", None)
        return llm_call_end(target, **fields)
    if not isinstance(handle, LlmHandle):
        raise HandleError(
            f"handle: expected an LlmHandle from llm_call(), got {type(handle).__name__}"
        )
    if handle.ended:
        handle.claim_end()  # raises
    # Validate everything up front: a bad argument raises and the handle stays open.
    ended = handle.end_time(timestamp)
    raw = snapshot(response, "response")
    if data is not None:
        snapshot(data, "data")
    if metadata is not None:
        end_metadata(handle, metadata, None)
    if error is not None:
        check_error(error)
    annotated = (
        None
        if annotated_response is None
        else _annotation_dict(annotated_response, "annotated_response")
    )
    handle.claim_end()
    _end(
        handle,
        response,
        raw=raw,
        data=data,
        metadata=metadata,
        annotated=annotated,
        response_codec=handle.response_codec if response_codec is None else response_codec,
        error=error,
        ended_us=ended,
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
        raise ParameterTypeError(
            "a request intercept must return an LlmRequest"
            + (" or an annotated request" if codec is not None else "")
            + f", got {type(result).__name__}"
        )

    return accept


def _open(
    runtime: Runtime,
    handle: LlmHandle,
    request: LlmRequest,
    recorded: RecordedRequest,
    codec: RequestCodec | None,
) -> Step[LlmRequest]:
    """Guardrails, request intercepts, then the start event; returns the request to send.

    ``recorded`` is the snapshot validation made of ``request``; when any
    middleware saw the request it may have replaced or edited it in place, so
    what is recorded is snapshotted again from the request the provider receives.
    """
    prepared, touched = yield from prepare_call(
        runtime,
        (LLM_CONDITIONAL_EXECUTION, LLM_REQUEST),
        handle.name,
        request,
        _request_context(handle.name, codec, runtime),
        _accept_request(codec),
    )
    if touched:  # with sanitizers, their output is snapshotted: no need to here
        recorded = recorded_request(prepared, not chain(runtime, LLM_SANITIZE_REQUEST))
    if handle.profile is None and codec is not None:
        _default_model_name(handle, codec, prepared)
    handle.started_us = now_us()
    _start(handle, prepared, recorded, codec)
    return prepared


def _default_model_name(handle: LlmHandle, codec: RequestCodec, request: LlmRequest) -> None:
    """Without ``model_name=``, record the model the (intercepted) request names.

    Read through the codec's ``request_model`` (for a codec without it, the
    body's ``model``); a codec failure is counted, never raised.
    """
    read = getattr(codec, "request_model", None)
    try:
        model = request.content.get("model") if read is None else read(request)
    except Exception as exc:
        handle.runtime.count_failure(f"codec:{codec.data_schema.name}", exc)
        return
    if isinstance(model, str) and model and (model.isascii() or _is_text(model)):
        handle.profile = {"model_name": model}
        handle.profile_raw = profile_bytes("model_name", model)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_codec(codec: object, param: str = "codec") -> RequestCodec:
    """``codec`` must be a request codec (it has ``annotate_request`` and ``data_schema``)."""
    if not callable(getattr(codec, "annotate_request", None)) or not hasattr(codec, "data_schema"):
        raise ParameterTypeError(
            f"{param}: expected a request codec (llmflow.codecs), got {type(codec).__name__}"
        )
    return cast("RequestCodec", codec)


def _response_codec(
    codec: RequestCodec | None, response_codec: ResponseCodec | None
) -> ResponseCodec | None:
    """``response_codec``, else ``codec`` itself when it also reads responses (same provider)."""
    if (
        response_codec is None
        and codec is not None
        and callable(getattr(codec, "annotate_response", None))
    ):
        return cast("ResponseCodec", codec)
    return response_codec


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
    recorded = recorded_request(request)  # bad input fails before any middleware
    check_callable(func, "func")
    response_codec = _response_codec(codec, response_codec)
    request = yield from _open(runtime, handle, request, recorded, codec)

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
        return await llm_call_execute(
            **from_params(
                name,
                request=request,
                func=func,
                parent=parent,
                attributes=attributes,
                data=data,
                metadata=metadata,
                model_name=model_name,
                codec=codec,
                response_codec=response_codec,
            )
        )
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
        return llm_call_execute_sync(
            **from_params(
                name,
                request=request,
                func=func,
                parent=parent,
                attributes=attributes,
                data=data,
                metadata=metadata,
                model_name=model_name,
                codec=codec,
                response_codec=response_codec,
            )
        )
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
        return await llm_stream_call_execute(
            **from_params(
                name,
                request=request,
                func=func,
                collector=collector,
                finalizer=finalizer,
                parent=parent,
                attributes=attributes,
                data=data,
                metadata=metadata,
                model_name=model_name,
                codec=codec,
                response_codec=response_codec,
            )
        )

    runtime = get_runtime()
    runtime.check_open()
    handle = _new_handle(
        runtime, name, parent, attributes, data, metadata, model_name, None, "streaming"
    )
    request = _check_request(request)
    recorded = recorded_request(request)  # bad input fails before any middleware
    check_callable(func, "func")
    func = cast("Callable[[LlmRequest], Any]", func)
    response_codec = _response_codec(codec, response_codec)
    collector, finalizer = stream_callbacks(runtime, collector, finalizer, response_codec)
    prepared = await drive_async(_open(runtime, handle, request, recorded, codec))
    return LlmStream(
        handle,
        prepared,
        func,
        collector,
        finalizer,
        response_codec,
        _end,
    )
