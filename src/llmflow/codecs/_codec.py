"""What the three built-in codecs share: decoding through the annotation, encoding.

A built-in codec writes two hand-written traversals, ``annotate_request`` and
``annotate_response``, which produce the JSON form of the annotation directly
(the hot path). The pydantic views are *defined* as the validation of those
dicts, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from llmflow._errors import CodecError
from llmflow._types import DataSchema, Json, JsonObject, LlmRequest

from ._annotated import AnnotatedLlmRequest, AnnotatedLlmResponse
from ._base import StreamAccumulator
from ._encoding import annotation_of
from ._fields import as_object, request_body

__all__ = ["ProviderCodec"]

_M = TypeVar("_M", bound=BaseModel)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for item in loc:
        path = f"{path}[{item}]" if isinstance(item, int) else (f"{path}.{item}" if path else item)
    return path


def _validate(model: type[_M], annotation: JsonObject) -> _M:
    try:
        return model.model_validate(annotation)
    except ValidationError as exc:  # a bug in an annotate_* traversal, surfaced as data
        error = exc.errors()[0]
        raise CodecError(
            f"annotation does not fit {model.__name__}: {error['msg']}",
            field=_loc_path(error["loc"]),
        ) from exc


class ProviderCodec:
    """Base of the built-in codecs: implements the pydantic and encode entry points.

    Subclasses name their provider-specific functions: ``_annotate_body``,
    ``_annotate_result``, ``_accumulator`` and ``_encode_body``.
    """

    __slots__ = ()

    _DATA_SCHEMA: ClassVar[DataSchema]

    @property
    def data_schema(self) -> DataSchema:
        """The ``data_schema`` of events whose payloads this codec annotates."""
        return self._DATA_SCHEMA

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # -- provided by each codec: its provider-specific traversals -----------------

    _annotate_body: ClassVar[Callable[[JsonObject], JsonObject]]
    """Request body -> annotation JSON (raises ``CodecError``)."""
    _annotate_result: ClassVar[Callable[[JsonObject], JsonObject]]
    """Response object -> annotation JSON (raises ``CodecError``)."""
    _accumulator: ClassVar[Callable[[], StreamAccumulator]]
    """Makes the accumulator folding this provider's stream."""
    _encode_body: ClassVar[Callable[[JsonObject, JsonObject, JsonObject], JsonObject]]
    """``(original body, its annotation, edited annotation)`` -> new body."""

    def request_model(self, request: LlmRequest | JsonObject) -> str | None:
        """The ``model`` the request body names, or ``None`` (what ``model_name`` defaults to)."""
        body = request_body(request)
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) and model else None

    def annotate_request(self, request: LlmRequest | JsonObject) -> JsonObject:
        """JSON form of ``decode(request)``; raises ``CodecError`` on a malformed body."""
        return type(self)._annotate_body(request_body(request))

    def annotate_response(self, response: Json) -> JsonObject:
        """JSON form of ``decode_response(response)``; raises ``CodecError`` if malformed."""
        return type(self)._annotate_result(
            response if type(response) is dict else as_object(response, "")
        )

    def stream_accumulator(self) -> StreamAccumulator:
        """A fresh accumulator folding this provider's stream into its final response."""
        return type(self)._accumulator()

    # -- shared -------------------------------------------------------------------

    def decode(self, request: LlmRequest | JsonObject) -> AnnotatedLlmRequest:
        """Return the annotated view of ``request`` (an ``LlmRequest`` or a body dict).

        Raises ``CodecError`` naming the offending field when the body is malformed.
        """
        return _validate(AnnotatedLlmRequest, self.annotate_request(request))

    def decode_response(self, response: Json) -> AnnotatedLlmResponse:
        """Return the annotated view of a provider response (dict or SDK object).

        Raises ``CodecError`` naming the offending field when it is malformed.
        """
        return _validate(AnnotatedLlmResponse, self.annotate_response(response))

    def encode(
        self, annotated: AnnotatedLlmRequest, original: LlmRequest | JsonObject
    ) -> LlmRequest:
        """Return ``original`` rewritten to say what ``annotated`` says.

        Headers are copied from ``original`` (a plain body dict has none). Fields and
        elements the edit did not change are kept from ``original`` verbatim, so
        ``encode(decode(r), r) == r``. Raises ``CodecError`` when ``original`` is
        malformed or ``annotated`` holds something this provider cannot express.
        """
        after = annotation_of(annotated)
        before = self.annotate_request(original)
        content = type(self)._encode_body(request_body(original), before, after)
        headers: dict[str, Any] = original.headers if isinstance(original, LlmRequest) else {}
        return LlmRequest(headers=dict(headers), content=content)
