"""OpenTelemetry exporter: every ATOF span as an OpenTelemetry span with GenAI attributes.

Needs the ``otel`` extra (``pip install 'llmflow[otel]'``). The mapping follows
the OpenTelemetry GenAI semantic conventions (``gen_ai.provider.name``, never
the deprecated ``gen_ai.system``); ``docs/exporters.md`` has the table.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from llmflow._clock import now_us
from llmflow._event import Event, LineParts
from llmflow.atof import SpanFacts, span_facts
from llmflow.atof._facts import request_facts
from llmflow.atof._timestamps import timestamp_us
from llmflow.atof._wire import EventSource, wire_events, with_annotations
from llmflow.exporters._base import BaseExporter, ExportResult
from llmflow.exporters._worker import paced

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "llmflow.exporters.OpenTelemetryExporter needs OpenTelemetry: pip install 'llmflow[otel]'"
    ) from exc

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer

__all__ = ["OpenTelemetryExporter", "export_log"]

_INSTRUMENTATION = "llmflow"
_ENDED_CONTEXTS = 4096  # parents remembered after they ended (late marks, explicit parents)
_ABANDONED = "llmflow.abandoned"
_EXIT_TIMEOUT = 5.0  # seconds each live exporter gets at interpreter exit
_TTFC = "stream.time_to_first_chunk_us"


# -- the mapping ------------------------------------------------------------------

_REQUEST_PARAMETERS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("seed", "gen_ai.request.seed"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("stream", "gen_ai.request.stream"),
)
# Normalized finish reasons -> the output-message schema's enum.
_OUTPUT_FINISH = {"tool_calls": "tool_call", "refusal": "content_filter"}


def _operation(category: str | None, name: str) -> str | None:
    """GenAI operation of an LLM-like span, from its category and call (route) name."""
    if category == "embedder":
        return "embeddings"
    if category != "llm":
        return None
    # Call names end in the route: openai.chat, openai.responses, anthropic.messages;
    # only the legacy completions route is not a chat.
    tail = name.rsplit(".", 1)[-1].rsplit("/", 1)[-1]
    return "text_completion" if tail == "completions" and "chat" not in name else "chat"


def _json(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def _text_parts(parts: object) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else ():
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            out.append({"type": "text", "content": part.get("text", "")})
        elif kind == "tool_call":
            arguments = part.get("arguments", part.get("raw_arguments"))
            out.append(
                {
                    "type": "tool_call",
                    "id": part.get("id"),
                    "name": part.get("name"),
                    "arguments": arguments,
                }
            )
        elif kind == "tool_result":
            out.append(
                {
                    "type": "tool_call_response",
                    "id": part.get("tool_call_id"),
                    "response": part.get("content"),
                }
            )
        elif kind == "reasoning":
            out.append({"type": "reasoning", "content": part.get("text", "")})
        elif kind == "refusal":
            out.append({"type": "refusal", "content": part.get("text", "")})
        elif kind == "image":
            out.append(_image_part(part))
        else:
            value = part.get("value", part)
            out.append({"type": str(value.get("type", "opaque")), "value": value})
    return out


def _image_part(part: Mapping[str, Any]) -> dict[str, Any]:
    if part.get("data") is not None:
        return {
            "type": "blob",
            "modality": "image",
            "mime_type": part.get("media_type"),
            "content": part["data"],
        }
    if part.get("file_id") is not None:
        return {"type": "file", "modality": "image", "file_id": part["file_id"]}
    return {"type": "uri", "modality": "image", "uri": part.get("url")}


def _input_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = []
    for message in request.get("messages") or ():
        parts = _text_parts(message.get("content"))
        role = message.get("role")
        if role == "user" and parts and all(p["type"] == "tool_call_response" for p in parts):
            role = "tool"  # Anthropic sends tool results in user messages
        messages.append({"role": role, "parts": parts})
    return messages


def _output_messages(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    reason = response.get("finish_reason")
    finish = _OUTPUT_FINISH.get(reason, reason) if isinstance(reason, str) else "stop"
    messages = [
        {
            "role": m.get("role", "assistant"),
            "parts": _text_parts(m.get("content")),
            "finish_reason": finish,
        }
        for m in response.get("messages") or ()
    ]
    calls = _text_parts(response.get("tool_calls"))
    if calls:
        if not messages:
            messages.append({"role": "assistant", "parts": [], "finish_reason": finish})
        messages[0]["parts"].extend(calls)
    return messages


def _seconds(event: Mapping[str, Any], key: str) -> float | None:
    value = (event.get("metadata") or {}).get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1_000_000
    return None


def _request_attributes(
    operation: str, request: Mapping[str, Any] | None, start: Mapping[str, Any], content: bool
) -> dict[str, Any]:
    model, provider = request_facts(start)
    attributes: dict[str, Any] = {"gen_ai.operation.name": operation}
    if provider:
        attributes["gen_ai.provider.name"] = provider
    if model:
        attributes["gen_ai.request.model"] = model
    if request is None:
        return attributes
    for key, name in _REQUEST_PARAMETERS:
        value = request.get(key)
        if value is not None:
            attributes[name] = value
    if request.get("stop"):
        attributes["gen_ai.request.stop_sequences"] = list(request["stop"])
    if content:
        system = _text_parts(request.get("system"))
        if system:
            attributes["gen_ai.system_instructions"] = _json(system)
        attributes["gen_ai.input.messages"] = _json(_input_messages(request))
        if request.get("tools"):
            attributes["gen_ai.tool.definitions"] = _json(request["tools"])
    return attributes


def _response_attributes(
    facts: SpanFacts,
    end: Mapping[str, Any],
    response: Mapping[str, Any] | None,
    content: bool,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    if facts.provider:  # a transport may name the provider on the end only
        attributes["gen_ai.provider.name"] = facts.provider
    if response is not None:
        if response.get("model"):
            attributes["gen_ai.response.model"] = response["model"]
        if response.get("id"):
            attributes["gen_ai.response.id"] = response["id"]
        reason = response.get("raw_finish_reason") or response.get("finish_reason")
        if isinstance(reason, str):
            attributes["gen_ai.response.finish_reasons"] = [reason]
        if content:
            attributes["gen_ai.output.messages"] = _json(_output_messages(response))
    for name, value in (
        ("gen_ai.usage.input_tokens", facts.input_tokens),
        ("gen_ai.usage.output_tokens", facts.output_tokens),
        ("gen_ai.usage.cache_read.input_tokens", facts.cached_tokens),
        ("gen_ai.usage.reasoning.output_tokens", facts.reasoning_tokens),
        ("llmflow.cost.usd", facts.cost_usd),
        ("http.response.status_code", facts.status_code),
        ("gen_ai.response.time_to_first_chunk", _seconds(end, _TTFC)),
    ):
        if value is not None:
            attributes[name] = value
    return attributes


# -- converting a stream of events into spans --------------------------------------


@dataclass(slots=True)
class _Open:
    span: Span
    start: Mapping[str, Any]


def _line_view(parts: LineParts, content: bool) -> dict[str, Any]:
    """The wire fields of one JSONL line; ``data`` parsed only where the mapping reads it."""
    head, data, tail = parts
    view: dict[str, Any] = orjson.loads(head + b"null" + tail)
    del view["data"]
    if content or view.get("category") in ("llm", "embedder"):
        profile = view.get("category_profile") or {}
        annotation = (
            "annotated_request" if view.get("scope_category") == "start" else "annotated_response"
        )
        if content or annotation not in profile:
            view["data"] = orjson.loads(data)
    return view


class _SpanBuilder:
    """Turns ATOF events, in emission order, into spans of one tracer. Not thread-safe."""

    def __init__(self, tracer: Tracer, capture_content: bool) -> None:
        self.tracer = tracer
        self.capture_content = capture_content
        self.open: dict[str, _Open] = {}
        self.ended: OrderedDict[str, SpanContext] = OrderedDict()
        self.spans = 0
        self.abandoned = 0
        self.last_us = 0

    def consume(self, event: Mapping[str, Any]) -> None:
        ts_us = timestamp_us(event["timestamp"])
        self.last_us = max(self.last_us, ts_us)
        phase = event.get("scope_category")
        if event.get("kind") == "mark" or phase is None:
            self._mark(event, ts_us)
        elif phase == "start":
            self._start(event, ts_us)
        else:
            self._end(event, ts_us)

    def _parent_context(self, parent_uuid: object) -> otel_context.Context:
        # An explicit empty context: a span is never parented by whatever span
        # happens to be current on the exporting thread.
        empty = otel_context.Context()
        if not isinstance(parent_uuid, str):
            return empty
        parent = self.open.get(parent_uuid)
        if parent is not None:
            return trace.set_span_in_context(parent.span, empty)
        ended = self.ended.get(parent_uuid)
        if ended is not None:
            return trace.set_span_in_context(trace.NonRecordingSpan(ended), empty)
        return empty  # unknown parent: a new trace, as for a top-level scope

    def _start(self, event: Mapping[str, Any], ts_us: int) -> None:
        category = event.get("category")
        name = str(event.get("name"))
        operation = _operation(category, name)
        attributes: dict[str, Any] = {"llmflow.uuid": event["uuid"]}
        flags = event.get("attributes")
        if flags:
            attributes["llmflow.attributes"] = list(flags)
        kind = SpanKind.INTERNAL
        if operation is not None:
            event, _ = with_annotations(event, None)
            annotated = (event.get("category_profile") or {}).get("annotated_request")
            attributes.update(
                _request_attributes(operation, annotated, event, self.capture_content)
            )
            model = attributes.get("gen_ai.request.model")
            span_name = f"{operation} {model}" if model else operation
            kind = SpanKind.CLIENT
        elif category == "tool":
            span_name = f"execute_tool {name}"
            attributes["gen_ai.operation.name"] = "execute_tool"
            attributes["gen_ai.tool.name"] = name
            attributes["gen_ai.tool.type"] = "function"
            if self.capture_content and event.get("data") is not None:
                attributes["gen_ai.tool.call.arguments"] = _json(event.get("data"))
        elif category == "agent":
            span_name = f"invoke_agent {name}"
            attributes["gen_ai.operation.name"] = "invoke_agent"
            attributes["gen_ai.agent.name"] = name
        else:
            span_name = name
            attributes["llmflow.category"] = str(category)
        span = self.tracer.start_span(
            span_name,
            context=self._parent_context(event.get("parent_uuid")),
            kind=kind,
            attributes=attributes,
            start_time=ts_us * 1000,
        )
        self.open[event["uuid"]] = _Open(span, event)

    def _end(self, event: Mapping[str, Any], ts_us: int) -> None:
        opened = self.open.pop(event["uuid"], None)
        if opened is None:
            return  # an end whose start was never seen (exporter added mid-span)
        span, start = opened.span, opened.start
        category = start.get("category")
        if category in ("llm", "embedder"):
            start, end = with_annotations(start, event)
            assert end is not None
            response = (end.get("category_profile") or {}).get("annotated_response")
            facts = span_facts(start, end)
            span.set_attributes(_response_attributes(facts, end, response, self.capture_content))
        else:
            end = event
            facts = span_facts(start, end)
        if category == "tool":
            if facts.tool_call_id:
                span.set_attribute("gen_ai.tool.call.id", facts.tool_call_id)
            if self.capture_content and event.get("data") is not None:
                span.set_attribute("gen_ai.tool.call.result", _json(event.get("data")))
        metadata = end.get("metadata") or {}
        if facts.error_type is not None or metadata.get(_ABANDONED) is True:
            span.set_attribute("error.type", facts.error_type or _ABANDONED)
            span.set_status(Status(StatusCode.ERROR, facts.error_message))
        self._finish(event["uuid"], span, ts_us)

    def _finish(self, uuid: str, span: Span, ts_us: int) -> None:
        span.end(end_time=ts_us * 1000)
        self.spans += 1
        self.ended[uuid] = span.get_span_context()
        if len(self.ended) > _ENDED_CONTEXTS:
            self.ended.popitem(last=False)

    def _mark(self, event: Mapping[str, Any], ts_us: int) -> None:
        attributes: dict[str, Any] = {"llmflow.uuid": event["uuid"]}
        if event.get("category"):
            attributes["llmflow.category"] = str(event["category"])
        if self.capture_content and event.get("data") is not None:
            attributes["llmflow.mark.data"] = _json(event.get("data"))
        name = str(event.get("name"))
        parent_uuid = event.get("parent_uuid")
        parent = self.open.get(parent_uuid) if isinstance(parent_uuid, str) else None
        if parent is not None:
            parent.span.add_event(name, attributes, timestamp=ts_us * 1000)
            return
        # A top-level mark (or one whose parent already ended): a zero-length span.
        attributes["llmflow.mark"] = True
        span = self.tracer.start_span(
            name,
            context=self._parent_context(parent_uuid),
            attributes=attributes,
            start_time=ts_us * 1000,
        )
        span.end(end_time=ts_us * 1000)
        self.spans += 1

    def end_open(self, ts_us: int) -> int:
        """End every open span as errored (its end never came); innermost first."""
        count = 0
        for uuid in reversed(list(self.open)):
            opened = self.open.pop(uuid)
            span = opened.span
            span.set_attribute("error.type", _ABANDONED)
            span.set_attribute(_ABANDONED, True)
            span.set_status(Status(StatusCode.ERROR, "the span never ended; exported at shutdown"))
            start_us = timestamp_us(opened.start["timestamp"])
            self._finish(uuid, span, max(ts_us, start_us + 1))
            count += 1
        self.abandoned += count
        return count


# -- delivery ------------------------------------------------------------------------


class _CountingSpanExporter(SpanExporter):
    """Wraps the OTLP exporter to count what the collector accepted and refused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0
        self.failed_since_flush = 0
        self.dropped = 0

    def export(self, spans: Sequence[Any]) -> Any:
        try:
            result = self.inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
                self.failed_since_flush += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _bounded(work: Callable[[], bool], timeout: float | None) -> bool:
    """Run ``work`` on a helper thread; ``False`` if it raised or outlived ``timeout``."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(bool(work()))
        except Exception:
            outcome.append(False)

    worker = threading.Thread(target=run, name="llmflow-otel-flush", daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(outcome) and outcome[0]


def _otlp_provider() -> tuple[Any, _CountingSpanExporter]:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ImportError(
            "OpenTelemetryExporter without a tracer_provider sends OTLP/HTTP and needs "
            "opentelemetry-exporter-otlp-proto-http: pip install 'llmflow[otel]'"
        ) from exc

    # OTLPSpanExporter, Resource and BatchSpanProcessor read the standard
    # OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME/OTEL_RESOURCE_ATTRIBUTES and OTEL_BSP_* variables.
    counting = _CountingSpanExporter(OTLPSpanExporter())
    provider = TracerProvider(resource=Resource.create(), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(counting))
    return provider, counting


class OpenTelemetryExporter(BaseExporter):
    """Sends every ATOF span to OpenTelemetry as a span with GenAI semantic-convention attributes.

    With ``tracer_provider`` (the application's, e.g. Logfire's or Phoenix's) the
    spans go wherever that provider sends them; without it the exporter builds
    its own provider with an OTLP/HTTP exporter configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables. Each start/end pair becomes one span with
    the ATOF start and end times; a scope without a parent starts a trace; marks
    become span events. Message content is recorded only with
    ``capture_content=True``.

    It is a background exporter: the runtime runs it on its own worker, so a slow
    or unreachable collector never stalls the application. :meth:`flush` and
    :meth:`shutdown` never wait longer than their ``timeout`` and never raise.
    Spans still open at shutdown are exported as errored spans
    (``error.type = "llmflow.abandoned"``), never dropped silently.
    """

    background: ClassVar[bool] = True
    buffer_capacity: ClassVar[int] = 4_096  # events: 2,048 spans, the SDK's batch queue size

    def __init__(self, tracer_provider: Any = None, *, capture_content: bool = False) -> None:
        if tracer_provider is not None and not callable(
            getattr(tracer_provider, "get_tracer", None)
        ):
            raise TypeError(
                "tracer_provider: expected an OpenTelemetry TracerProvider or None, "
                f"got {type(tracer_provider).__name__}"
            )
        if not isinstance(capture_content, bool):
            raise TypeError(f"capture_content: expected a bool, got {capture_content!r}")
        self._counting: _CountingSpanExporter | None = None
        self._owns_provider = tracer_provider is None
        if tracer_provider is None:
            tracer_provider, self._counting = _otlp_provider()
        self.tracer_provider = tracer_provider
        self.capture_content = capture_content
        self._lock = threading.Lock()
        self._builder = _SpanBuilder(tracer_provider.get_tracer(_INSTRUMENTATION), capture_content)
        self._closed = False
        _LIVE.add(self)

    def default_name(self) -> str:
        """``"otel"``: the name :meth:`register` uses when none is given."""
        return "otel"

    def export(self, events: Sequence[Event | Mapping[str, Any]]) -> ExportResult:
        """Turn one batch of events or parsed lines (emission order) into spans.

        Returns ``FAILURE`` when the exporter is shut down or an event is not
        ATOF; the other events of the batch are still converted.
        """
        content = self.capture_content

        def view(event: Event | Mapping[str, Any]) -> Mapping[str, Any]:
            return _line_view(event.line_parts(), content) if isinstance(event, Event) else event

        converted = self._consume(events, view)
        return ExportResult.SUCCESS if converted == len(events) else ExportResult.FAILURE

    def export_lines(self, lines: Sequence[LineParts]) -> int:
        """Turn one batch of JSONL lines (emission order) into spans; return how many converted.

        The runtime calls this on the exporter's worker with the lines it
        already built for a JSONL file; a line is parsed once, its ``data``
        only when the mapping needs it. ``0`` when the exporter is shut down.
        """
        content = self.capture_content
        return self._consume(lines, lambda parts: _line_view(parts, content))

    def _consume(self, items: Iterable[Any], view: Callable[[Any], Mapping[str, Any]]) -> int:
        """Convert ``items`` (seen through ``view``) in order; return how many converted."""
        converted = 0
        with self._lock:
            if self._closed:
                return 0
            consume = self._builder.consume
            for item in paced(items):
                try:
                    consume(view(item))
                except (KeyError, TypeError, ValueError):  # not ATOF; orjson's error included
                    continue
                converted += 1
        return converted

    def flush(self, timeout: float | None = None) -> bool:
        """Hand every finished span to the provider's exporters; ``True`` when all were accepted.

        With a provider built by this exporter, ``True`` means the collector
        accepted every span since the last flush. With the application's
        provider it is that provider's ``force_flush`` answer. Called by the
        user on a registered exporter, it first asks the runtime to deliver
        what is queued for it.
        """
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            return registration.flush(timeout)
        return _bounded(self._force_flush, timeout)

    def _force_flush(self) -> bool:
        ended = self._builder.spans  # every span ended before this is settled after force_flush
        flushed = bool(self.tracer_provider.force_flush())
        counting = self._counting
        if counting is None:
            return flushed
        with counting.lock:
            failed, counting.failed_since_flush = counting.failed_since_flush, 0
            # The batch processor drops spans (it only logs) when its queue is full:
            # what is neither exported nor refused after a flush was dropped.
            dropped = max(counting.dropped, ended - counting.exported - counting.failed)
            lost, counting.dropped = dropped - counting.dropped, dropped
        return flushed and not failed and not lost

    def shutdown(self, timeout: float | None = None) -> None:
        """End open spans as errored, deliver everything, release the provider it built.

        The application's provider is flushed, never shut down. Idempotent;
        returns after ``timeout`` seconds at most and never raises. Called by
        the user on a registered exporter, it detaches from the runtime first
        (which delivers what is queued, then shuts the exporter down).
        """
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            registration.close(timeout)
            return
        if self._closed:
            return
        self._closed = True

        def close() -> bool:
            with self._lock:  # waits for a batch being converted right now
                self._builder.end_open(now_us())
            delivered = self._force_flush()
            if self._owns_provider:
                self.tracer_provider.shutdown()
            return delivered

        _bounded(close, timeout)

    def stats(self) -> dict[str, int]:
        """Counters for ``llmflow.diagnostics().exporters[name]``.

        ``spans`` ended so far, ``open`` spans, ``abandoned`` (ended at shutdown),
        and with a provider built here ``spans_exported``/``spans_failed`` as the
        collector answered and ``spans_dropped`` (batch queue overflow, known at
        each flush).
        """
        builder = self._builder
        counters = {
            "spans": builder.spans,
            "open": len(builder.open),
            "abandoned": builder.abandoned,
        }
        if self._counting is not None:
            counters["spans_exported"] = self._counting.exported
            counters["spans_failed"] = self._counting.failed
            counters["spans_dropped"] = self._counting.dropped
        return counters

    def __repr__(self) -> str:
        return f"OpenTelemetryExporter(capture_content={self.capture_content})"


def export_log(
    events: EventSource,
    tracer_provider: Any = None,
    *,
    capture_content: bool = False,
    timeout: float | None = 30.0,
) -> int:
    """Send a recorded log (a JSONL path or events) to OpenTelemetry; return the span count.

    Spans whose end is missing from the log (the process died) are exported as
    errored spans ending at the last timestamp of the log. With no
    ``tracer_provider`` the spans go to OTLP/HTTP as configured by the
    ``OTEL_EXPORTER_OTLP_*`` variables. Raises :class:`~llmflow.AtofParseError`
    for an event that is not ATOF (with its line number, or its 1-based position
    in a list) before anything is sent, and ``RuntimeError`` when delivery did
    not finish within ``timeout``.
    """
    ordered = wire_events(events)  # parse everything before a provider is built
    exporter = OpenTelemetryExporter(tracer_provider, capture_content=capture_content)
    builder = exporter._builder
    for event in ordered:
        builder.consume(event)
    builder.end_open(builder.last_us)
    delivered = exporter.flush(timeout)
    exporter.shutdown(timeout)
    if not delivered:
        raise RuntimeError(
            f"export_log: the OpenTelemetry exporter did not deliver every span within {timeout} s"
        )
    return builder.spans


_LIVE: weakref.WeakSet[OpenTelemetryExporter] = weakref.WeakSet()


def _shutdown_at_exit() -> None:
    # Registered when this module is first imported, after llmflow's own exit
    # flush, so it runs first (atexit is LIFO): a registered exporter detaches
    # from its runtime (which delivers what is queued for it, the ends of
    # finished spans included), then ends what is still open as errored spans.
    for exporter in list(_LIVE):
        with contextlib.suppress(Exception):
            exporter.shutdown(_EXIT_TIMEOUT)


atexit.register(_shutdown_at_exit)
