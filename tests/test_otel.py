"""OpenTelemetryExporter: ATOF spans as OpenTelemetry GenAI spans (SPEC §12).

Spans are checked with the SDK's in-memory exporter and, for the OTLP/HTTP
path, with a real loopback receiver that decodes the protobuf request.
"""

from __future__ import annotations

import gzip
import http.server
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import llmflow
from _agent_run import (
    FINAL_ANSWER,
    QUESTION,
    by_name,
    record_agent_run,
    record_sample_call,
    sample_calls,
)
from llmflow import Event, LlmRequest
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter, ExportResult, OpenTelemetryExporter
from llmflow.exporters.otel import export_log
from llmflow.testing import capture

# -- helpers ---------------------------------------------------------------------------


class Memory:
    """An SDK TracerProvider whose spans land in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def one(self, name: str) -> ReadableSpan:
        found = [span for span in self.spans() if span.name == name]
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]


def export(events: list[Event], *, capture_content: bool = False) -> Memory:
    memory = Memory()
    exporter = OpenTelemetryExporter(memory.provider, capture_content=capture_content)
    assert exporter.export(events) is ExportResult.SUCCESS
    assert exporter.flush(5.0)
    exporter.shutdown(5.0)
    return memory


@pytest.fixture(scope="module")
def agent_events() -> list[Event]:
    runtime = llmflow.Runtime()
    previous = runtime.install()
    try:
        return record_agent_run()
    finally:
        runtime.shutdown()
        if previous is not None and not previous.closed:
            previous.install()


# -- the mapping -----------------------------------------------------------------------


def test_llm_span_carries_genai_request_response_and_usage_attributes(agent_events):
    memory = export(agent_events)
    chat = memory.one("chat gpt-4o")
    assert chat.kind is SpanKind.CLIENT
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o"
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.top_p"] == 0.9
    assert attributes["gen_ai.request.max_tokens"] == 256
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attributes["gen_ai.response.id"] == "chatcmpl-1"
    assert attributes["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 15
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 80
    assert attributes["llmflow.cost.usd"] == 0.0012
    assert chat.status.status_code is StatusCode.UNSET


def test_no_span_uses_the_deprecated_gen_ai_system_attribute(agent_events):
    for span in export(agent_events).spans():
        assert "gen_ai.system" not in (span.attributes or {})


def test_responses_and_anthropic_calls_are_chat_spans_with_their_provider(agent_events):
    memory = export(agent_events)
    responses = dict(memory.one("chat o4-mini").attributes or {})
    assert responses["gen_ai.operation.name"] == "chat"
    assert responses["gen_ai.provider.name"] == "openai"
    assert responses["gen_ai.usage.reasoning.output_tokens"] == 7
    assert responses["gen_ai.response.id"] == "resp_1"
    claude = [s for s in memory.spans() if s.name == "chat claude-sonnet-4-5"]
    assert len(claude) == 2
    first = dict(claude[0].attributes or {})
    assert first["gen_ai.provider.name"] == "anthropic"
    assert first["gen_ai.usage.input_tokens"] == 40  # 30 + 10 cache reads: cached included
    assert first["gen_ai.usage.cache_read.input_tokens"] == 10
    assert first["gen_ai.response.finish_reasons"] == ("tool_use",)


def test_tool_and_agent_spans_follow_the_genai_names(agent_events):
    memory = export(agent_events)
    tool = dict(memory.one("execute_tool get_weather").attributes or {})
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "get_weather"
    assert tool["gen_ai.tool.call.id"] == "call_w1"
    agent = dict(memory.one("invoke_agent planner").attributes or {})
    assert agent["gen_ai.operation.name"] == "invoke_agent"
    assert agent["gen_ai.agent.name"] == "planner"
    assert dict(memory.one("invoke_agent researcher").attributes or {})["gen_ai.agent.name"] == (
        "researcher"
    )


def test_span_times_are_the_atof_start_and_end_times_in_nanoseconds(agent_events):
    memory = export(agent_events)
    spans = {dict(span.attributes or {})["llmflow.uuid"]: span for span in memory.spans()}
    starts = [e for e in agent_events if e.scope_category == "start"]
    assert len(spans) == len(starts)
    for start in starts:
        (end,) = [e for e in agent_events if e.uuid == start.uuid and e.scope_category == "end"]
        span = spans[start.uuid]
        assert span.start_time == start.timestamp_us * 1000
        assert span.end_time == end.timestamp_us * 1000


def test_parent_links_follow_parent_uuid_in_one_trace(agent_events):
    memory = export(agent_events)
    spans = {dict(span.attributes or {})["llmflow.uuid"]: span for span in memory.spans()}
    root = memory.one("invoke_agent planner")
    assert root.parent is None
    for event in agent_events:
        if event.scope_category != "start" or event.parent_uuid is None:
            continue
        span, parent = spans[event.uuid], spans[event.parent_uuid]
        assert span.parent is not None
        assert span.parent.span_id == parent.context.span_id
        assert span.context.trace_id == root.context.trace_id


def test_each_top_level_scope_starts_its_own_trace():
    with capture() as events:
        with llmflow.scope("first", "agent"):
            llmflow.mark("inside")
        with llmflow.scope("second", "function"):
            pass
    memory = export(list(events))
    first, second = memory.one("invoke_agent first"), memory.one("second")
    assert first.context.trace_id != second.context.trace_id
    assert second.kind is SpanKind.INTERNAL
    assert dict(second.attributes or {})["llmflow.category"] == "function"


def test_marks_become_events_of_their_parent_span(agent_events):
    memory = export(agent_events)
    planner = memory.one("invoke_agent planner")
    (event,) = planner.events
    (mark,) = by_name(agent_events, "plan.checkpoint")
    assert event.name == "plan.checkpoint"
    assert event.timestamp == mark.timestamp_us * 1000


def test_a_top_level_mark_becomes_a_zero_length_span():
    with capture() as events:
        llmflow.mark("boot", data={"version": 3})
    memory = export(list(events))
    span = memory.one("boot")
    assert span.start_time == span.end_time == events[0].timestamp_us * 1000
    assert dict(span.attributes or {})["llmflow.mark"] is True


def test_content_is_left_out_unless_capture_content(agent_events):
    content_keys = {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
    }
    for span in export(agent_events).spans():
        assert not content_keys & set(span.attributes or {}), span.name
        assert QUESTION not in json.dumps(dict(span.attributes or {}))


def test_capture_content_records_messages_in_the_genai_message_schema(agent_events):
    memory = export(agent_events, capture_content=True)
    chat = dict(memory.one("chat gpt-4o").attributes or {})
    assert json.loads(chat["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You plan outfits."}]},
        {"role": "user", "parts": [{"type": "text", "content": QUESTION}]},
    ]
    assert json.loads(chat["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_w1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    final = dict(memory.one("chat o4-mini").attributes or {})
    assert json.loads(final["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "Answer briefly."}
    ]
    (output,) = json.loads(final["gen_ai.output.messages"])
    assert output["parts"] == [{"type": "text", "content": FINAL_ANSWER}]
    tool = dict(memory.one("execute_tool get_weather").attributes or {})
    assert json.loads(tool["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
    assert json.loads(tool["gen_ai.tool.call.result"]) == {"temp_c": 14, "rain": True}


def test_credentials_never_reach_a_span_even_with_capture_content(agent_events):
    for span in export(agent_events, capture_content=True).spans():
        assert "sk-secret" not in json.dumps(dict(span.attributes or {}), default=str)


def test_usage_is_decoded_when_the_log_has_no_response_annotation():
    events = record_agent_run(annotate_responses=False)
    attributes = dict(export(events).one("chat gpt-4o").attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 80
    assert attributes["gen_ai.response.id"] == "chatcmpl-1"


def test_a_failed_call_sets_error_type_and_error_status():
    def provider(request: LlmRequest) -> Any:
        raise TimeoutError("provider timed out")

    with capture() as events, pytest.raises(TimeoutError):
        llmflow.llm_call_execute_sync(
            "openai.chat",
            LlmRequest(headers={}, content={"model": "gpt-4o", "messages": []}),
            provider,
            codec=OpenAIChatCodec(),
        )
    span = export(list(events)).one("chat gpt-4o")
    assert dict(span.attributes or {})["error.type"] == "TimeoutError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "provider timed out"


def test_embedder_scopes_are_embeddings_spans():
    with capture() as events:
        with llmflow.scope(
            "openai.embeddings",
            "embedder",
            data_schema={"name": "openai/embeddings", "version": "1"},
        ):
            pass
    span = export(list(events)).one("embeddings")
    assert dict(span.attributes or {})["gen_ai.operation.name"] == "embeddings"
    assert span.kind is SpanKind.CLIENT


# -- lifecycle ------------------------------------------------------------------------------


def test_a_span_still_open_at_shutdown_is_exported_as_an_errored_span():
    memory = Memory()
    exporter = OpenTelemetryExporter(memory.provider)
    with capture() as events:
        handle = llmflow.llm_call(
            "openai.chat",
            LlmRequest(headers={}, content={"model": "gpt-4o", "messages": []}),
            model_name="gpt-4o",
        )
    exporter.export(list(events))
    assert memory.spans() == []
    assert exporter.stats()["open"] == 1
    exporter.shutdown(5.0)
    span = memory.one("chat gpt-4o")
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == "llmflow.abandoned"
    assert attributes["llmflow.abandoned"] is True
    assert span.status.status_code is StatusCode.ERROR
    assert span.start_time == events[0].timestamp_us * 1000 < span.end_time
    assert handle.uuid == attributes["llmflow.uuid"]
    assert exporter.stats() == {"spans": 1, "open": 0, "abandoned": 1}
    assert exporter.export(list(events)) is ExportResult.FAILURE  # shut down


def test_export_log_ends_a_span_cut_off_by_a_crash_at_the_last_timestamp(tmp_path):
    path = tmp_path / "run.jsonl"
    with capture() as events:
        outer = llmflow.push_scope("crashed", "agent")
        llmflow.mark("last words")
    lines = [event.to_json().decode() for event in events]
    path.write_text("\n".join(lines) + "\n")
    del outer  # the process "died": no end event
    memory = Memory()
    assert export_log(path, memory.provider) == 1
    span = memory.one("invoke_agent crashed")
    assert span.status.status_code is StatusCode.ERROR
    last = max(events[1].timestamp_us, events[0].timestamp_us + 1)
    assert span.end_time == last * 1000
    assert [e.name for e in span.events] == ["last words"]


def test_export_log_reads_a_file_written_by_the_jsonl_exporter(tmp_path, runtime):
    path = tmp_path / "run.jsonl"
    AtofFileExporter(path).register(runtime=runtime)
    with capture() as events:
        with llmflow.scope("job", "function"):
            llmflow.tool_call_execute_sync("t", {}, lambda a: 1, tool_call_id="c1")
    runtime.flush()
    memory = Memory()
    assert export_log(path, memory.provider) == 2
    assert {span.name for span in memory.spans()} == {"job", "execute_tool t"}
    assert len(events) == 4


def test_exporter_registered_on_a_runtime_receives_the_live_events(runtime):
    memory = Memory()
    OpenTelemetryExporter(memory.provider).register("otel", runtime=runtime)
    with llmflow.scope("live", "agent"):
        llmflow.tool_call_execute_sync("t", {}, lambda a: 1)
    assert runtime.flush(5.0)
    assert {span.name for span in memory.spans()} == {"invoke_agent live", "execute_tool t"}


def test_tracer_provider_of_the_wrong_type_is_a_clear_error():
    with pytest.raises(TypeError, match="tracer_provider"):
        OpenTelemetryExporter(tracer_provider="http://collector:4318")
    with pytest.raises(TypeError, match="capture_content"):
        OpenTelemetryExporter(Memory().provider, capture_content="yes")  # type: ignore[arg-type]


def test_a_malformed_event_fails_its_batch_but_not_the_others():
    memory = Memory()
    exporter = OpenTelemetryExporter(memory.provider)
    with capture() as events:
        with llmflow.scope("fine", "function"):
            pass
    batch: list[Any] = [{"kind": "scope", "name": "broken"}, *events]
    assert exporter.export(batch) is ExportResult.FAILURE
    exporter.shutdown(5.0)
    assert [span.name for span in memory.spans()] == ["fine"]


def test_import_llmflow_does_not_import_opentelemetry():
    code = (
        "import sys, llmflow, llmflow.exporters\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'eager'\n"
        "from llmflow.exporters import OpenTelemetryExporter\n"
        "assert 'opentelemetry.sdk.trace' in sys.modules\n"
        "print(OpenTelemetryExporter.__name__)\n"
    )
    src = str(Path(llmflow.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OpenTelemetryExporter"


# -- invariant ---------------------------------------------------------------------------


@st.composite
def scope_trees(draw: st.DrawFn) -> list[tuple[int, str]]:
    """A random nesting of scopes as (depth, category) in visiting order."""
    count = draw(st.integers(1, 12))
    nodes, depth = [], 0
    for _ in range(count):
        depth = draw(st.integers(0, depth + 1)) if nodes else 0
        nodes.append((depth, draw(st.sampled_from(["agent", "function", "tool", "custom"]))))
    return nodes


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tree=scope_trees())
def test_every_start_end_pair_is_one_span_under_its_atof_parent(tree):
    with capture() as events:
        stack: list[llmflow.ScopeHandle] = []
        for index, (depth, category) in enumerate(tree):
            while len(stack) > depth:
                llmflow.pop_scope(stack.pop())
            profile = {"subtype": "x.y"} if category == "custom" else None
            stack.append(llmflow.push_scope(f"s{index}", category, category_profile=profile))
        while stack:
            llmflow.pop_scope(stack.pop())
    memory = export(list(events))
    spans = {dict(s.attributes or {})["llmflow.uuid"]: s for s in memory.spans()}
    starts = [e for e in events if e.scope_category == "start"]
    assert len(spans) == len(starts) == len(tree)
    for start in starts:
        span = spans[start.uuid]
        if start.parent_uuid is None:
            assert span.parent is None
        else:
            assert span.parent is not None
            assert span.parent.span_id == spans[start.parent_uuid].context.span_id


# -- OTLP/HTTP to a loopback receiver ------------------------------------------------------


class Receiver:
    """A loopback OTLP/HTTP receiver decoding ExportTraceServiceRequest (gzip or not)."""

    def __init__(self, *, hang: bool = False) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.encodings: list[str | None] = []
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hang:
                    receiver.release.wait(30)
                    return
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append(request)
                receiver.encodings.append(encoding)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as running:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", running.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "llmflow-test")
        yield running


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_otlp_http_round_trip_to_a_loopback_receiver(receiver, monkeypatch, compression):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", compression)
    events = record_agent_run()
    exporter = OpenTelemetryExporter()
    assert exporter.export(events) is ExportResult.SUCCESS
    assert exporter.flush(10.0) is True
    exporter.shutdown(10.0)
    spans = {span.name: span for span in receiver.spans()}
    assert len(receiver.spans()) == 8
    assert receiver.encodings[0] == ("gzip" if compression == "gzip" else None)
    chat = spans["chat gpt-4o"]
    attributes = {kv.key: kv.value for kv in chat.attributes}
    assert attributes["gen_ai.provider.name"].string_value == "openai"
    assert attributes["gen_ai.usage.cache_read.input_tokens"].int_value == 80
    (start,) = [e for e in events if e.name == "openai.chat" and e.scope_category == "start"]
    assert chat.start_time_unix_nano == start.timestamp_us * 1000
    assert chat.parent_span_id == spans["invoke_agent planner"].span_id
    resource = {
        kv.key: kv.value.string_value
        for kv in receiver.requests[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "llmflow-test"
    assert exporter.stats()["spans_exported"] == 8


def test_export_log_sends_a_file_to_the_otlp_endpoint(receiver, tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text("".join(e.to_json().decode() + "\n" for e in record_agent_run()))
    assert export_log(path) == 8
    assert len(receiver.spans()) == 8


def test_a_hanging_otlp_endpoint_never_holds_flush_or_shutdown_beyond_the_timeout(monkeypatch):
    with Receiver(hang=True) as hanging:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", hanging.endpoint)
        exporter = OpenTelemetryExporter()
        with capture() as events:
            with llmflow.scope("slow", "agent"):
                pass
        assert exporter.export(list(events)) is ExportResult.SUCCESS  # never waits for the network
        began = time.monotonic()
        assert exporter.flush(0.3) is False
        exporter.shutdown(0.3)
        assert time.monotonic() - began < 3.0


def test_an_unreachable_collector_makes_flush_report_false_and_counts_the_failed_spans(
    monkeypatch,
):
    with Receiver() as gone:
        endpoint = gone.endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint)  # nothing listens there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0.5")
    exporter = OpenTelemetryExporter()
    with capture() as events:
        with llmflow.scope("lost?", "function"):
            pass
    exporter.export(list(events))
    assert exporter.flush(10.0) is False
    assert exporter.stats()["spans_failed"] == 1
    exporter.shutdown(1.0)


def test_time_to_first_chunk_and_an_end_written_at_exit_are_mapped():
    with capture() as events:
        handle = llmflow.llm_call(
            "openai.chat",
            LlmRequest(headers={}, content={"model": "gpt-4o", "messages": [], "stream": True}),
            model_name="gpt-4o",
            attributes=llmflow.LlmAttributes.STREAMING,
        )
        llmflow.llm_call_end(
            handle,
            None,
            metadata={"stream.time_to_first_chunk_us": 1500, "llmflow.abandoned": True},
        )
    span = export(list(events)).one("chat gpt-4o")
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.response.time_to_first_chunk"] == 0.0015
    assert attributes["llmflow.attributes"] == ("streaming",)
    assert attributes["error.type"] == "llmflow.abandoned"
    assert span.status.status_code is StatusCode.ERROR


# -- through the runtime (background exporter) ------------------------------------------------


def test_the_exporter_runs_on_its_own_worker_and_reports_counters_in_diagnostics(runtime):
    memory = Memory()
    exporter = OpenTelemetryExporter(memory.provider)
    assert OpenTelemetryExporter.background is True
    assert exporter.register(runtime=runtime) == "otel"
    with llmflow.scope("counted", "agent"):
        llmflow.mark("m")
    assert runtime.flush(5.0) is True
    counters = runtime.diagnostics().exporters["otel"]
    assert counters["received"] == counters["exported"] == 3
    assert counters["failed"] == counters["dropped"] == 0
    assert (counters["spans"], counters["open"], counters["abandoned"]) == (1, 0, 0)


def test_a_user_shutdown_of_a_registered_exporter_detaches_it_and_ends_open_spans(runtime):
    memory = Memory()
    exporter = OpenTelemetryExporter(memory.provider)
    exporter.register(runtime=runtime)
    handle = llmflow.push_scope("left-open", "agent")
    exporter.shutdown(5.0)
    assert "otel" not in runtime.diagnostics().exporters
    span = memory.one("invoke_agent left-open")
    assert span.status.status_code is StatusCode.ERROR
    llmflow.pop_scope(handle)  # the application goes on; nothing is sent any more
    assert runtime.flush(5.0)
    assert len(memory.spans()) == 1


def test_a_hanging_collector_never_stalls_the_application_or_runtime_flush(runtime, monkeypatch):
    with Receiver(hang=True) as hanging:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", hanging.endpoint)
        OpenTelemetryExporter().register(runtime=runtime)
        path_events = 0
        began = time.monotonic()
        for index in range(200):
            with llmflow.scope(f"job{index}", "function"):
                path_events += 2
        emitted = time.monotonic() - began
        flush_began = time.monotonic()
        assert runtime.flush(0.5) is False  # the collector never answered
        assert time.monotonic() - flush_began < 3.0
        assert emitted < 5.0
        counters = runtime.diagnostics().exporters["otel"]
        assert counters["received"] == path_events
        runtime.shutdown(timeout=0.5)
    assert runtime.closed


# -- what the provider SDKs record, through llmflow.instrument ---------------------------------


def test_instrumented_sdk_calls_become_genai_spans():
    import openai

    from llmflow.testing import FakeProvider
    from llmflow.testing._fake_provider import ErrorReply, Reply, ToolCall

    memory = Memory()
    OpenTelemetryExporter(memory.provider).register()
    with FakeProvider() as fake:
        fake.script(
            Reply(
                text=None,
                tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")],
                usage={"input_tokens": 50, "output_tokens": 5, "cached_tokens": 20},
            ),
            Reply(text="Rainy.", usage={"input_tokens": 60, "output_tokens": 2}, chunks=3),
            ErrorReply(status=400, message="bad request"),
        )
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        messages: Any = [{"role": "user", "content": "weather?"}]
        with llmflow.scope("weather-agent", "agent"):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            stream = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            for _chunk in stream:
                pass
            with pytest.raises(openai.BadRequestError):
                client.chat.completions.create(model="gpt-4o-mini", messages=messages)
            client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert llmflow.flush(10.0)
    chats = [s for s in memory.spans() if s.name == "chat gpt-4o-mini"]
    assert len(chats) == 3
    first, streamed, failed = (dict(s.attributes or {}) for s in chats)
    assert first["gen_ai.provider.name"] == "openai"
    assert first["gen_ai.usage.cache_read.input_tokens"] == 20
    assert first["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert first["http.response.status_code"] == 200
    assert streamed["gen_ai.response.time_to_first_chunk"] > 0
    assert streamed["gen_ai.usage.output_tokens"] == 2
    assert failed["http.response.status_code"] == 400
    assert failed["error.type"] == "llmflow.http.ProviderHTTPError"
    assert chats[2].status.status_code is StatusCode.ERROR
    embeddings = [s for s in memory.spans() if s.name.startswith("embeddings")]
    assert dict(embeddings[0].attributes or {})["gen_ai.provider.name"] == "openai"
    agent = memory.one("invoke_agent weather-agent")
    assert all(s.context.trace_id == agent.context.trace_id for s in memory.spans())


@pytest.mark.parametrize(
    ("codec", "request_body", "response"),
    [pytest.param(*call[1:], id=call[0]) for call in sample_calls()],
)
def test_every_codec_sample_gives_messages_in_the_genai_schema(codec, request_body, response):
    span = export(record_sample_call(codec, request_body, response), capture_content=True).one(
        f"chat {request_body['model']}"
    )
    attributes = dict(span.attributes or {})
    for key in ("gen_ai.input.messages", "gen_ai.output.messages"):
        for message in json.loads(attributes[key]):
            assert message["role"] in ("system", "user", "assistant", "tool")
            assert all(isinstance(part.get("type"), str) for part in message["parts"])
    for message in json.loads(attributes["gen_ai.output.messages"]):
        assert message["finish_reason"] in (
            "stop",
            "length",
            "content_filter",
            "tool_call",
            "error",
        )


def test_without_opentelemetry_the_import_error_names_the_extra():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry':\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import llmflow, llmflow.atif\n"
        "try:\n"
        "    from llmflow.exporters import OpenTelemetryExporter\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    src = str(Path(llmflow.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'llmflow[otel]'" in result.stdout


def test_spans_still_open_at_interpreter_exit_are_exported_as_errored_spans():
    code = (
        "import atexit, json\n"
        "import llmflow\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "memory = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(SimpleSpanProcessor(memory))\n"
        "def report():  # registered first, so it runs after the exporter's exit hook\n"
        "    spans = memory.get_finished_spans()\n"
        "    print(json.dumps(sorted([s.name, s.status.status_code.name,\n"
        "                             s.attributes.get('error.type')] for s in spans)))\n"
        "atexit.register(report)\n"
        "from llmflow.exporters import OpenTelemetryExporter\n"
        "OpenTelemetryExporter(provider).register()\n"
        "llmflow.push_scope('never-closed', 'agent')\n"
        "with llmflow.scope('closed', 'function'):\n"
        "    pass\n"
    )
    src = str(Path(llmflow.__file__).parents[1])
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": src},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["closed", "UNSET", None],
        ["invoke_agent never-closed", "ERROR", "llmflow.abandoned"],
    ]


def test_export_log_rejects_a_malformed_event_before_sending_anything():
    memory = Memory()
    with capture() as events:
        with llmflow.scope("fine", "function"):
            pass
    broken = [event.to_dict() for event in events] + [{"kind": "scope", "name": "x"}]
    with pytest.raises(llmflow.AtofParseError) as caught:
        export_log(broken, memory.provider)
    assert caught.value.line == 3
    assert memory.spans() == []
