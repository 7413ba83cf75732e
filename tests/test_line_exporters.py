"""Background exporters that consume lines (HttpExporter, ParquetExporter, OpenTelemetryExporter).

While every exporter is a line exporter and nothing else consumes events, the
runtime queues ready JSONL lines and a background line exporter takes them on
its worker. These tests prove that what leaves each exporter is exactly what
the event path produced before: the HTTP receiver gets the JSONL file's bytes,
the Parquet rows and the OpenTelemetry spans equal those of the former event
path (kept here, frozen, as the reference), in lines mode, in events mode and
across switches between them; and that the worker keeps its bound, counters
and flush semantics with lines.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmflow
from _collector import Collector
from llmflow import Event, LlmRequest, Runtime, mark, subscribers
from llmflow._event import LineParts
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import (
    AtofFileExporter,
    BaseExporter,
    ExportResult,
    HttpExporter,
    OpenTelemetryExporter,
    ParquetExporter,
)
from llmflow.exporters.otel import _SpanBuilder
from llmflow.exporters.parquet import PARQUET_COLUMNS, _piece_table, _Rows
from llmflow.middleware import CostRecorder
from llmflow.testing import capture

WAIT = 10.0
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _workload(tag: str, calls: int = 2) -> None:
    """Scopes, marks, annotated and raw LLM calls, a tool: every kind of line."""
    codec = OpenAIChatCodec()
    with llmflow.scope(f"agent-{tag}", "agent", data={"goal": tag}, metadata={"tenant": 7}):
        mark(f"tick-{tag}", data=[1, "two", None], category="function", metadata={"k": "v"})
        mark(f"bare-{tag}")
        for index in range(calls):
            request = LlmRequest(
                {"authorization": "Bearer x"},
                {
                    "model": "gpt-test",
                    "messages": [{"role": "user", "content": f"q{index} é\n"}],
                    "temperature": 0.5,
                },
            )
            response = {
                "id": f"r{index}",
                "model": "gpt-test-1",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            }
            llmflow.llm_call_execute_sync(
                "openai.chat", request, lambda r, a=response: a, codec=codec, response_codec=codec
            )
            handle = llmflow.llm_call("raw.chat", request, model_name="m-raw")
            llmflow.llm_call_end(handle, {"answer": index}, metadata={"cost.usd": 0.25})
        with llmflow.scope(
            "lookup", "tool", data={"q": 1}, category_profile={"tool_call_id": "c1"}
        ):
            mark("inside-tool", data={"n": 2})


def _in_lines_mode(runtime: Runtime) -> bool:
    return runtime.record == runtime._record_line


def _switching_workload(runtime: Runtime, expect_lines: bool = True) -> None:
    """The workload in lines mode, then with a subscriber (events mode), then lines again."""
    assert _in_lines_mode(runtime) is expect_lines
    _workload("a")
    seen: list[Event] = []
    subscribers.register("observer", seen.append, runtime=runtime)
    assert not _in_lines_mode(runtime)
    _workload("b")
    llmflow.flush()
    subscribers.deregister("observer", runtime=runtime)
    assert _in_lines_mode(runtime) is expect_lines
    _workload("c")
    assert seen  # the subscriber saw the middle part


# -- HttpExporter: the receiver gets the JSONL file's bytes ------------------------------


@pytest.mark.parametrize("timestamp_format", ["rfc3339", "epoch_us"])
def test_http_receiver_gets_the_bytes_of_the_jsonl_file_in_lines_and_events_mode(
    tmp_path: Path, collector: Collector, timestamp_format: str
) -> None:
    rt = Runtime(timestamp_format=timestamp_format)  # type: ignore[arg-type]
    previous = rt.install()
    try:
        path = tmp_path / "log.jsonl"
        AtofFileExporter(path).register("file", runtime=rt)
        assert _in_lines_mode(rt)
        HttpExporter(collector.url, batch_size=7).register("http", runtime=rt)
        _switching_workload(rt)
        assert rt.flush(WAIT)
        counters = rt.diagnostics().exporters["http"]
    finally:
        rt.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    written = path.read_bytes()
    assert written.count(b"\n") > 40
    # The former path sent b"".join(event.json_line() ...): the lines of the file.
    assert b"".join(collector.bodies) == written
    assert all(body.count(b"\n") <= 7 for body in collector.bodies)
    assert counters["received"] == counters["exported"] == written.count(b"\n")
    assert counters["failed"] == counters["dropped"] == counters["queued"] == 0


def test_a_declared_injector_keeps_lines_mode_and_both_exporters_get_its_keys(
    tmp_path: Path, collector: Collector, runtime: Runtime
) -> None:
    path = tmp_path / "log.jsonl"
    AtofFileExporter(path).register("file")
    HttpExporter(collector.url, batch_size=5).register("http")
    CostRecorder().register()
    assert runtime.record == runtime._record_selected  # LLM ends as events, the rest lines
    _workload("cost")
    assert llmflow.flush(WAIT)
    written = path.read_bytes()
    assert b"".join(collector.bodies) == written
    lines = [orjson.loads(line) for line in written.splitlines()]
    priced = [e["uuid"] for e in lines if e["metadata"] and "cost.usd" in e["metadata"]]
    llm_ends = [
        e["uuid"] for e in lines if (e.get("category"), e.get("scope_category")) == ("llm", "end")
    ]
    assert len(llm_ends) == 4 and priced == llm_ends


def test_http_export_of_events_sends_their_json_lines(collector: Collector) -> None:
    with capture() as events:
        _workload("x")
    exporter = HttpExporter(collector.url, batch_size=5)
    assert exporter.export(events) is ExportResult.SUCCESS
    exporter.shutdown()
    assert b"".join(collector.bodies) == b"".join(event.json_line() for event in events)


def test_http_export_lines_counts_a_rejected_batch_as_failed(
    tmp_path: Path, collector: Collector, runtime: Runtime
) -> None:
    HttpExporter(collector.url, batch_size=3).register("http")
    collector.script.append((400, {}))  # the first batch: refused for good
    for index in range(7):
        mark("m", data=index)
    assert llmflow.flush(WAIT)  # nothing is left to send: the refused batch is counted
    counters = runtime.diagnostics().exporters["http"]
    assert counters["received"] == 7
    assert counters["failed"] == 3 and counters["exported"] == 4
    assert counters["rejected"] == 3
    assert "exporter:http" in runtime.diagnostics().failures
    assert [line["data"] for line in collector.received] == [3, 4, 5, 6]


# -- ParquetExporter: rows equal those of the former event path ---------------------------


def _former_add_event(rows: _Rows, event: Event) -> None:
    """``_Rows.add_event`` as it was before lines: the reference the new path must match."""
    _, data, _ = event.line_parts()
    schema = event.data_schema
    wire = {
        "kind": event.kind,
        "atof_version": event.atof_version,
        "uuid": event.uuid,
        "parent_uuid": event.parent_uuid,
        "timestamp": event.timestamp_us,
        "name": event.name,
        "scope_category": event.scope_category,
        "category": event.category,
        "attributes": event.attributes,
        "metadata": event.metadata,
        "category_profile": event.category_profile,
        "data_schema": None if schema is None else schema.to_dict(),
    }
    data_text = None if data == b"null" else data.decode()
    rows.add(wire, data_text, event.timestamp_us, str(event.timestamp))


def _rows_both_ways(events: Sequence[Event]) -> tuple[_Rows, _Rows]:
    former, now = _Rows(max_open_spans=3), _Rows(max_open_spans=3)
    for event in events:
        _former_add_event(former, event)
    now.add_lines([event.line_parts() for event in events])
    return former, now


def _rows(rows: _Rows) -> list[dict[str, Any]]:
    return [row for piece in rows.take() for row in _piece_table(piece).to_pylist()]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
OBJECT = st.none() | st.dictionaries(st.text(min_size=1, max_size=6), JSON, max_size=3)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    epoch=st.booleans(),
    items=st.lists(
        st.tuples(st.sampled_from(["scope", "mark", "llm"]), JSON, OBJECT, st.integers(0, 10**12)),
        min_size=1,
        max_size=6,
    ),
)
def test_parquet_rows_from_lines_equal_the_former_event_rows(
    epoch: bool, items: list[tuple[str, Any, Any, int]]
) -> None:
    rt = Runtime(timestamp_format="epoch_us" if epoch else "rfc3339")
    previous = rt.install()
    try:
        with capture(runtime=rt) as events:
            for kind, data, metadata, offset in items:
                if kind == "mark":
                    mark("m", data=data, metadata=metadata, timestamp=T0 + offset)
                elif kind == "scope":
                    handle = llmflow.push_scope(
                        "s",
                        "custom",
                        data=data,
                        metadata=metadata,
                        category_profile={"subtype": "x"},
                        data_schema={"name": "acme.s", "version": "2"},
                        attributes=["parallel"],
                        timestamp=T0 + offset,
                    )
                    llmflow.pop_scope(handle, data=data, timestamp=T0 + 2 * offset + 1)
                else:
                    handle = llmflow.llm_call(
                        "c", LlmRequest({}, {"d": data}), model_name="m", metadata=metadata
                    )
                    llmflow.llm_call_end(handle, data, metadata={"cost.usd": 0.5})
    finally:
        rt.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    former, now = _rows_both_ways(events)
    assert now.unjoined == former.unjoined
    assert list(now.open) == list(former.open)
    assert _rows(now) == _rows(former)


def test_parquet_rows_through_the_runtime_equal_the_former_event_rows(
    tmp_path: Path, runtime: Runtime
) -> None:
    AtofFileExporter(tmp_path / "log.jsonl").register("file")
    ParquetExporter(tmp_path / "pq").register("parquet")
    seen: list[Event] = []
    _switching_workload(runtime)
    # the same workload once more with a subscriber throughout, for the reference events
    subscribers.register("all", seen.append)
    _workload("d")
    assert llmflow.flush(WAIT)
    counters = runtime.diagnostics().exporters["parquet"]
    table = ds.dataset(tmp_path / "pq", format="parquet", partitioning="hive").to_table()
    got = table.sort_by("timestamp_us").to_pylist()
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert counters["received"] == counters["exported"] == len(lines) == len(got)
    assert counters["rows"] == len(lines)
    # Every row is its line; the analysis columns of the rows seen as events match the former path.
    for row, raw in zip(
        got, sorted(lines, key=lambda r: orjson.loads(r)["timestamp"]), strict=True
    ):
        wire = orjson.loads(raw)
        assert row["uuid"] == wire["uuid"] and row["timestamp"] == str(wire["timestamp"])
        assert row["data"] == (
            None if wire["data"] is None else orjson.dumps(wire["data"]).decode()
        )
    former = _Rows(max_open_spans=100_000)
    for event in seen:
        _former_add_event(former, event)
    expected = _rows(former)
    assert len(expected) == len(seen) == 15
    by_uuid = {(r["uuid"], r["scope_category"]): r for r in got}
    columns = [name for name, _, _ in PARQUET_COLUMNS]
    for row in expected:
        stored = by_uuid[row["uuid"], row["scope_category"]]
        assert {name: stored[name] for name in columns} == row


# -- OpenTelemetryExporter: spans equal those of the former event path --------------------


def _former_view(event: Event, content: bool) -> Mapping[str, Any]:
    """``otel._view`` as it was before lines: the reference the new path must match."""
    view: dict[str, Any] = {
        "kind": event.kind,
        "uuid": event.uuid,
        "parent_uuid": event.parent_uuid,
        "timestamp": event.timestamp_us,
        "name": event.name,
        "scope_category": event.scope_category,
        "attributes": event.attributes,
        "category": event.category,
        "category_profile": event.category_profile,
        "metadata": event.metadata,
        "data_schema": None,
    }
    schema = event.data_schema
    if schema is not None:
        view["data_schema"] = {"name": schema.name, "version": schema.version}
    profile = view["category_profile"] or {}
    annotation = "annotated_request" if event.scope_category == "start" else "annotated_response"
    if content or (event.category in ("llm", "embedder") and annotation not in profile):
        view["data"] = event.data
    return view


def _span_shapes(memory: InMemorySpanExporter) -> list[tuple[Any, ...]]:
    spans = memory.get_finished_spans()
    uuid_of = {span.context.span_id: span.attributes["llmflow.uuid"] for span in spans}
    return [
        (
            span.name,
            span.kind,
            span.start_time,
            span.end_time,
            dict(span.attributes),
            span.status.status_code,
            span.status.description,
            None if span.parent is None else uuid_of.get(span.parent.span_id, "outside"),
            [(e.name, dict(e.attributes), e.timestamp) for e in span.events],
        )
        for span in spans
    ]


def _memory_tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


@pytest.mark.parametrize("content", [False, True])
def test_otel_spans_from_lines_equal_the_former_event_spans(content: bool) -> None:
    with capture() as events:
        _workload("x", calls=3)
    provider, former = _memory_tracer()
    builder = _SpanBuilder(provider.get_tracer("llmflow"), content)
    for event in events:
        builder.consume(_former_view(event, content))
    provider, now = _memory_tracer()
    exporter = OpenTelemetryExporter(provider, capture_content=content)
    lines: list[LineParts] = [event.line_parts() for event in events]
    assert exporter.export_lines(lines) == len(lines)
    assert _span_shapes(now) == _span_shapes(former)
    assert len(_span_shapes(now)) == 3 * 2 + 2  # llm spans, the tool and the agent
    exporter.shutdown()


def test_otel_exporter_through_the_runtime_gets_lines_and_makes_every_span(
    tmp_path: Path, runtime: Runtime
) -> None:
    AtofFileExporter(tmp_path / "log.jsonl").register("file")
    provider, memory = _memory_tracer()
    OpenTelemetryExporter(provider).register("otel")
    _switching_workload(runtime)
    assert llmflow.flush(WAIT)
    counters = runtime.diagnostics().exporters["otel"]
    lines = (tmp_path / "log.jsonl").read_bytes().splitlines()
    assert counters["received"] == counters["exported"] == len(lines)
    assert counters["spans"] == len(memory.get_finished_spans()) == 3 * (2 * 2 + 2)


def test_otel_export_lines_skips_a_line_that_is_not_atof_and_counts_it(runtime: Runtime) -> None:
    provider, memory = _memory_tracer()
    exporter = OpenTelemetryExporter(provider)
    with capture() as events:
        mark("ok")
    good = events[0].line_parts()
    assert exporter.export_lines([(b"{", b"null", b"}\n"), good]) == 1
    assert [span.name for span in memory.get_finished_spans()] == ["ok"]
    exporter.shutdown()
    assert exporter.export_lines([good]) == 0  # shut down


# -- the runtime: mode selection and the worker with lines --------------------------------


class LineSink(BaseExporter):
    """A background line exporter that records what it gets; ``gate`` holds its worker."""

    background: ClassVar[bool] = True
    buffer_capacity: ClassVar[int] = 10
    batch_size: ClassVar[int] = 4

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.lines: list[bytes] = []
        self.flushes = 0

    def export(self, events: Sequence[Event]) -> ExportResult:  # pragma: no cover - lines only
        raise AssertionError("a line exporter is given lines")

    def export_lines(self, lines: Sequence[LineParts]) -> int | None:
        self.entered.set()
        self.gate.wait(WAIT)
        self.lines += [b"".join(parts) for parts in lines]
        return None

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        return True


class EventsOnly(BaseExporter):
    background: ClassVar[bool] = True

    def __init__(self) -> None:
        self.names: list[str] = []

    def export(self, events: Sequence[Event]) -> ExportResult:
        self.names += [event.name for event in events]
        return ExportResult.SUCCESS


def test_background_line_exporters_keep_lines_mode_and_any_other_consumer_leaves_it(
    tmp_path: Path, runtime: Runtime
) -> None:
    assert not _in_lines_mode(runtime)  # nothing consumes events
    sink = LineSink()
    sink.register("lines")
    assert _in_lines_mode(runtime)  # a background line exporter alone
    AtofFileExporter(tmp_path / "a.jsonl").register("file")
    assert _in_lines_mode(runtime)
    mark("lines-1")
    other = EventsOnly()
    runtime.add_exporter("events", other)
    assert not _in_lines_mode(runtime)
    mark("events-1")
    llmflow.events.register_sanitizer("mark", "s", 0, lambda event: {"data": "clean"})
    mark("sanitized", data="secret")
    llmflow.flush()  # sanitizers run at delivery
    llmflow.events.deregister_sanitizer("mark", "s")
    runtime.remove_exporter("events")
    assert _in_lines_mode(runtime)
    mark("lines-2")
    runtime.remove_exporter("file")
    assert _in_lines_mode(runtime)
    mark("lines-3")
    runtime.remove_exporter("lines")
    assert not _in_lines_mode(runtime)
    names = [orjson.loads(line)["name"] for line in sink.lines]
    assert names == ["lines-1", "events-1", "sanitized", "lines-2", "lines-3"]
    assert orjson.loads(sink.lines[2])["data"] == "clean"  # the sanitized line, as in the file
    assert other.names == ["events-1", "sanitized"]
    file_lines = (tmp_path / "a.jsonl").read_bytes().splitlines(keepends=True)
    assert sink.lines[:4] == file_lines


def test_a_full_line_buffer_drops_and_counts_and_flush_settles_the_counters(
    runtime: Runtime,
) -> None:
    sink = LineSink()
    sink.gate.clear()
    sink.register("lines")
    mark("first")
    assert sink.entered.wait(WAIT)  # the worker holds one batch
    for index in range(25):
        mark("m", data=index)
    llmflow.flush(0)  # the queue is delivered to the buffer (bounded: 10)
    assert runtime._dispatcher.flush(WAIT)
    counters = runtime.diagnostics().exporters["lines"]
    assert counters["received"] == 26
    assert counters["queued"] == 10 and counters["dropped"] == 15
    sink.gate.set()
    assert llmflow.flush(WAIT)
    counters = runtime.diagnostics().exporters["lines"]
    assert counters["exported"] == 11 and counters["queued"] == 0
    assert counters["received"] == counters["exported"] + counters["failed"] + counters["dropped"]
    assert [orjson.loads(line)["data"] for line in sink.lines[1:]] == list(range(10))
    assert sink.flushes >= 1


def test_a_line_exporter_that_raises_is_counted_and_isolated(runtime: Runtime) -> None:
    class Broken(LineSink):
        def export_lines(self, lines: Sequence[LineParts]) -> int | None:
            raise OSError("disk gone")

    Broken().register("broken")
    for index in range(3):
        mark("m", data=index)
    assert llmflow.flush(WAIT)
    diagnostics = runtime.diagnostics()
    assert diagnostics.exporters["broken"]["failed"] == 3
    assert diagnostics.failures["exporter:broken"] >= 1
    assert diagnostics.last_errors["exporter:broken"] == "OSError: disk gone"


def test_paced_yields_every_item_in_order_and_pauses_after_each_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from llmflow.exporters import _worker

    pauses: list[float] = []
    monkeypatch.setattr(_worker, "_sleep", pauses.append)
    assert list(_worker.paced(range(5))) == [0, 1, 2, 3, 4]
    assert pauses == []  # five items take far less than a slice
    monkeypatch.setattr(_worker, "GIL_SLICE", 0.0)
    assert list(_worker.paced(iter("abc"))) == ["a", "b", "c"]
    assert pauses == [_worker.GIL_PAUSE] * 3
