"""The facts every reader of a log wants from one span: model, provider, tokens, cost.

One definition, shared by ``stats``, ``show``, the report, the Parquet columns,
the OpenTelemetry mapping and the ATIF metrics, so that they never disagree.
Works on the wire form of events (``Event.to_dict()`` or a parsed JSONL line).
The metadata keys it reads are documented in ``docs/events.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from llmflow._clock import parse_timestamp

__all__ = ["SpanFacts", "provider_of", "span_facts"]

_PROVIDERS_BY_SCHEMA = {"openai": "openai", "anthropic": "anthropic"}


@dataclass(frozen=True, slots=True)
class SpanFacts:
    """What a start/end pair says, each ``None`` where the log does not say it.

    ``input_tokens`` counts every prompt token, cached ones included;
    ``cached_tokens`` is the cached part and ``reasoning_tokens`` the part of
    ``output_tokens`` spent on reasoning (see ``llmflow.codecs.Usage``).
    ``error_type`` is the recorded ``exception.type``; ``status_code`` the HTTP
    status when a transport or a provider error recorded one. ``attempt`` is
    the SDK's HTTP attempt number (``http.attempt``, 0 for the first) and
    ``retry_attempts`` the attempts ``middleware.retry`` made (``retry.attempts``,
    the successful one included).
    """

    name: str
    category: str | None
    duration_us: int | None
    model: str | None = None
    provider: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    status_code: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    tool_call_id: str | None = None
    cache_hit: bool | None = None
    attempt: int | None = None
    retry_attempts: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the span ended without a recorded error."""
        return self.error_type is None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def provider_of(event: Mapping[str, Any]) -> str | None:
    """The provider an LLM event names: ``metadata["provider.name"]``, else the codec's schema."""
    provider = _dict(event.get("metadata")).get("provider.name")
    if isinstance(provider, str):
        return provider
    schema = _dict(event.get("data_schema")).get("name")
    if isinstance(schema, str):
        return _PROVIDERS_BY_SCHEMA.get(schema.split("/", 1)[0])
    return None


def span_facts(start: Mapping[str, Any], end: Mapping[str, Any] | None) -> SpanFacts:
    """Join a start event and its end (``None`` while still open) into :class:`SpanFacts`."""
    closing = end if end is not None else {}
    start_profile = _dict(start.get("category_profile"))
    end_profile = _dict(closing.get("category_profile"))
    metadata = {**_dict(start.get("metadata")), **_dict(closing.get("metadata"))}
    response = _dict(end_profile.get("annotated_response"))
    request = _dict(start_profile.get("annotated_request"))
    usage = _dict(response.get("usage"))
    duration = None
    if end is not None:
        duration = parse_timestamp(end["timestamp"]) - parse_timestamp(start["timestamp"])
    model = response.get("model") or start_profile.get("model_name") or request.get("model")
    cost = metadata.get("cost.usd")
    error_type = metadata.get("exception.type")
    error_message = metadata.get("exception.message")
    cache_hit = metadata.get("cache.hit")
    tool_call_id = start_profile.get("tool_call_id")
    return SpanFacts(
        name=str(start.get("name")),
        category=start.get("category"),
        duration_us=duration,
        model=model if isinstance(model, str) else None,
        provider=provider_of(closing) or provider_of(start),
        error_type=error_type if isinstance(error_type, str) else None,
        error_message=error_message if isinstance(error_message, str) else None,
        status_code=_int(metadata.get("http.status_code")),
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(usage.get("cached_tokens")),
        reasoning_tokens=_int(usage.get("reasoning_tokens")),
        cost_usd=None if isinstance(cost, bool) or not isinstance(cost, (int, float)) else cost,
        tool_call_id=tool_call_id if isinstance(tool_call_id, str) else None,
        cache_hit=cache_hit if isinstance(cache_hit, bool) else None,
        attempt=_int(metadata.get("http.attempt")),
        retry_attempts=_int(metadata.get("retry.attempts")),
    )
