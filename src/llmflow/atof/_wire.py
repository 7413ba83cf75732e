"""Events in their wire form, and codec annotations filled in where a log lacks them.

Readers that turn a log into another format (OpenTelemetry, ATIF) take events
from a file, from ``llmflow.Event`` objects or from parsed lines; this module
gives them one shape, the dict of the JSONL line. A call recorded without a
response codec has no ``annotated_response``; :func:`call_annotations` decodes it
with the built-in codec that the start event's ``data_schema`` names, so every
reader sees the same normalized view.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from llmflow._clock import parse_timestamp
from llmflow._errors import CodecError
from llmflow._event import Event
from llmflow._types import LlmRequest
from llmflow.atof._models import MarkEvent, ScopeEvent, parse_event
from llmflow.atof._reader import read_events
from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec, OpenAIResponsesCodec
from llmflow.codecs._codec import ProviderCodec

__all__ = ["call_annotations", "codec_for", "wire_dict", "wire_events", "with_annotations"]

WireEvent = Mapping[str, Any]
EventSource = str | os.PathLike[str] | Iterable[Event | Mapping[str, Any] | ScopeEvent | MarkEvent]

_CODECS: dict[str, type[ProviderCodec]] = {
    "openai/chat-completions": OpenAIChatCodec,
    "openai/responses": OpenAIResponsesCodec,
    "anthropic/messages": AnthropicMessagesCodec,
}


def wire_dict(event: Event | Mapping[str, Any] | ScopeEvent | MarkEvent) -> dict[str, Any]:
    """The JSONL object of one event (a fresh dict for ``Event`` and pydantic events)."""
    if isinstance(event, Event):
        return event.to_dict()
    if isinstance(event, (ScopeEvent, MarkEvent)):
        return event.model_dump(mode="json")
    if isinstance(event, Mapping):
        return dict(event)
    raise TypeError(
        f"events: expected llmflow.Event objects, ATOF dicts or a path, got {type(event).__name__}"
    )


def wire_events(source: EventSource) -> list[dict[str, Any]]:
    """Every event of ``source`` (a JSONL path or an iterable of events) in timestamp order.

    The sort is stable, so events with equal timestamps keep their order in the
    source (emission order for an llmflow log). A malformed line or dict raises
    :class:`~llmflow.AtofParseError` with its line number (1-based position in
    an iterable); ``llmflow.Event`` objects are trusted as they are.
    """
    if isinstance(source, (str, os.PathLike)):
        events = [event.model_dump(mode="json") for event in read_events(source)]
    elif isinstance(source, (bytes, Mapping)) or not isinstance(source, Iterable):
        raise TypeError(
            "events: expected a path or an iterable of llmflow.Event / ATOF dicts, "
            f"got {type(source).__name__}"
        )
    else:
        events = []
        for position, event in enumerate(source, 1):
            if isinstance(event, Mapping):
                parse_event(dict(event), line_number=position)  # a clear error, not a KeyError
            events.append(wire_dict(event))
    events.sort(key=lambda event: parse_timestamp(event["timestamp"]))
    return events


def codec_for(data_schema: object) -> ProviderCodec | None:
    """The built-in codec of a ``data_schema`` (dict, ``DataSchema`` or ``None``)."""
    name = getattr(data_schema, "name", None)
    if isinstance(data_schema, Mapping):
        name = data_schema.get("name")
    codec = _CODECS.get(name) if isinstance(name, str) else None
    return codec() if codec is not None else None


def _profile(event: WireEvent | None) -> Mapping[str, Any]:
    profile = event.get("category_profile") if event is not None else None
    return profile if isinstance(profile, Mapping) else {}


def call_annotations(
    start: WireEvent, end: WireEvent | None
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
    """The annotated request and response of an LLM call, decoded when the log lacks them.

    A recorded annotation wins. Otherwise the codec named by the end's or the
    start's ``data_schema`` decodes the recorded payload; a payload the codec
    cannot read (sanitized away, not JSON of that API) gives ``None``. Never raises.
    """
    request = _profile(start).get("annotated_request")
    response = _profile(end).get("annotated_response")
    codec = None
    if not isinstance(request, Mapping):
        request = None
        codec = codec_for(start.get("data_schema"))
        data = start.get("data")
        if codec is not None and isinstance(data, Mapping):
            headers, content = data.get("headers"), data.get("content")
            if isinstance(content, dict):
                request = _decode(codec, LlmRequest(headers=dict(headers or {}), content=content))
    if end is not None and not isinstance(response, Mapping):
        response = None
        codec = codec_for(end.get("data_schema")) or codec or codec_for(start.get("data_schema"))
        data = end.get("data")
        if codec is not None and isinstance(data, dict):
            response = _decode(codec, data)
    return request, response if isinstance(response, Mapping) else None


def _decode(codec: ProviderCodec, payload: LlmRequest | dict[str, Any]) -> dict[str, Any] | None:
    try:
        if isinstance(payload, LlmRequest):
            return codec.annotate_request(payload)
        return codec.annotate_response(payload)
    except (CodecError, TypeError, ValueError):
        return None


def with_annotations(start: WireEvent, end: WireEvent | None) -> tuple[WireEvent, WireEvent | None]:
    """``start`` and ``end`` with :func:`call_annotations` written into their profiles.

    Returns the inputs unchanged when nothing was missing; otherwise shallow
    copies, so that :func:`llmflow.atof.span_facts` reads decoded usage too.
    """
    request, response = call_annotations(start, end)
    if request is not None and _profile(start).get("annotated_request") is not request:
        start = {**start, "category_profile": {**_profile(start), "annotated_request": request}}
    if (
        end is not None
        and response is not None
        and _profile(end).get("annotated_response") is not response
    ):
        end = {**end, "category_profile": {**_profile(end), "annotated_response": response}}
    return start, end
