"""Shared helpers of the LLM lifecycle tests: a tiny codec and event filters.

``TinyCodec`` implements the request and response codec protocols of
``llmflow.codecs._base`` for a toy provider whose request body is
``{"model": str, "messages": [str, ...], ...extras}``, whose response is
``{"id": str, "text": str}`` and whose stream chunks are ``{"delta": str}``.
It keeps the LLM tests independent of the built-in provider codecs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

import llmflow
import llmflow.atof
from llmflow import DataSchema, Event, LlmRequest

CREDENTIAL_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "anthropic-api-key",
    "x-goog-api-key",
)


class TinyRequest(BaseModel):
    """The toy annotated request: model plus messages; other body fields are extras."""

    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[str]


class TinyResponse(BaseModel):
    """The toy annotated response."""

    id: str
    text: str


class TinyAccumulator:
    """Folds ``{"delta": str}`` chunks into ``{"id": "stream", "text": ...}``."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def collect(self, chunk: Any) -> None:
        self.parts.append(chunk["delta"])

    def finalize(self) -> Any:
        return {"id": "stream", "text": "".join(self.parts)}


class TinyCodec:
    """Request and response codec of the toy provider (structural protocols only)."""

    data_schema = DataSchema("tiny/chat", "1")

    def __init__(self) -> None:
        self.decoded = 0

    def decode(self, request: LlmRequest) -> TinyRequest:
        self.decoded += 1
        body = request.content
        return TinyRequest(model=body["model"], messages=list(body["messages"]))

    def encode(self, annotated: TinyRequest, original: LlmRequest) -> LlmRequest:
        content = {**original.content, "model": annotated.model, "messages": annotated.messages}
        return LlmRequest(dict(original.headers), content)

    def annotate_request(self, request: LlmRequest) -> dict[str, Any]:
        return self.decode(request).model_dump(mode="json", exclude_none=True)

    def decode_response(self, response: Any) -> TinyResponse:
        return TinyResponse(id=response["id"], text=response["text"])

    def annotate_response(self, response: Any) -> dict[str, Any]:
        return self.decode_response(response).model_dump(mode="json", exclude_none=True)

    def stream_accumulator(self) -> TinyAccumulator:
        return TinyAccumulator()


class BrokenCodec(TinyCodec):
    """A codec whose every decode/annotate raises (it must never break a call)."""

    data_schema = DataSchema("tiny/broken", "1")

    def decode(self, request: LlmRequest) -> TinyRequest:
        raise llmflow.CodecError("cannot decode", field="messages")

    def decode_response(self, response: Any) -> TinyResponse:
        raise llmflow.CodecError("cannot decode response", field="text")


def request(**extra: Any) -> LlmRequest:
    """A toy request with one non-credential header."""
    return LlmRequest(
        {"content-type": "application/json"},
        {"model": "tiny-1", "messages": ["hello"], **extra},
    )


def response(text: str = "hi") -> dict[str, Any]:
    """A toy provider response."""
    return {"id": "r-1", "text": text}


def llm_events(events: Iterable[Event]) -> list[Event]:
    """The ``llm`` scope events among ``events``, in delivery order."""
    return [e for e in events if e.category == "llm" and e.kind == "scope"]


def phases(events: Iterable[Event]) -> list[tuple[str, str | None, str]]:
    """``(category, scope_category, name)`` of every event (marks: category ``mark``)."""
    return [
        ("mark" if e.kind == "mark" else str(e.category), e.scope_category, e.name) for e in events
    ]


def assert_valid_stream(events: Iterable[Event]) -> None:
    """The captured events form a valid ATOF stream (pairing, order, parents)."""
    violations = llmflow.atof.validate_stream([e.to_json() for e in events])
    assert violations == [], [str(v) for v in violations]
