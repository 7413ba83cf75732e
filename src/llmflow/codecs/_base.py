"""The codec interface shared by the LLM pipeline and the built-in provider codecs.

A *request codec* turns a provider request into the provider-neutral
:class:`~llmflow.codecs.AnnotatedLlmRequest` and back; a *response codec* turns a
provider response (or a folded stream) into an
:class:`~llmflow.codecs.AnnotatedLlmResponse`. The pipeline only needs the
structural protocols below, so user codecs need not subclass anything.

The ``annotate_*`` methods return the annotation in its JSON form (what is
written to ``category_profile``); they exist so the hot path never builds and
dumps a pydantic model. For every input, ``annotate_request(r)`` equals
``decode(r).model_dump(mode="json", exclude_none=True)`` and likewise for
responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from llmflow._types import DataSchema, Json, JsonObject, LlmRequest

if TYPE_CHECKING:
    from ._annotated import AnnotatedLlmRequest, AnnotatedLlmResponse

__all__ = ["RequestCodec", "ResponseCodec", "StreamAccumulator"]


@runtime_checkable
class StreamAccumulator(Protocol):
    """Folds provider stream chunks into the response the non-streaming API returns."""

    def collect(self, chunk: Json) -> None:
        """Take one stream chunk (a parsed SSE event / delta object)."""

    def finalize(self) -> Json:
        """Return the complete provider response built from every collected chunk."""


@runtime_checkable
class RequestCodec(Protocol):
    """Decodes a provider request to the annotated view and encodes it back."""

    @property
    def data_schema(self) -> DataSchema:
        """The ``data_schema`` of events whose payloads this codec annotates."""

    def decode(self, request: LlmRequest) -> AnnotatedLlmRequest:
        """Return the normalized view of ``request``; raise ``CodecError`` if malformed."""

    def encode(self, annotated: AnnotatedLlmRequest, original: LlmRequest) -> LlmRequest:
        """Return ``original`` rewritten to say what ``annotated`` says.

        Fields the annotated model does not cover are kept from ``original``;
        ``encode(decode(r), r) == r`` for every valid request ``r``.
        """

    def annotate_request(self, request: LlmRequest) -> JsonObject:
        """JSON form of ``decode(request)`` (``exclude_none``), built without pydantic."""


@runtime_checkable
class ResponseCodec(Protocol):
    """Decodes a provider response into the annotated view."""

    @property
    def data_schema(self) -> DataSchema:
        """The ``data_schema`` of events whose payloads this codec annotates."""

    def decode_response(self, response: Json) -> AnnotatedLlmResponse:
        """Return the normalized view of ``response``; raise ``CodecError`` if malformed."""

    def annotate_response(self, response: Json) -> JsonObject:
        """JSON form of ``decode_response(response)`` (``exclude_none``), without pydantic."""

    def stream_accumulator(self) -> StreamAccumulator:
        """A fresh accumulator that folds this provider's stream chunks."""
