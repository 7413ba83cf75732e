"""OpenTelemetryExporter: per-span cost, and what it costs the application thread.

Two measurements, one run (median of ``--runs`` runs each):

1. **Per span.** The events of ``--spans`` LLM calls (the §8 workload: a 2 KB
   OpenAI chat request and response, annotated by the codec) are turned into
   spans by ``OpenTelemetryExporter.export_lines`` from their JSONL lines, as
   the runtime hands them to the exporter's worker (lines are bytes: nothing
   decoded in one run is cached for the next); next to it, the *same* spans
   (same names, kinds, times and GenAI attributes, computed beforehand) are
   created directly through the OpenTelemetry SDK tracer. Both use one
   ``TracerProvider`` with a ``SimpleSpanProcessor`` into an
   ``InMemorySpanExporter``, so the figures are span creation, not transport.
   Both are CPU time of the converting thread (``time.thread_time``), so the
   exporter's pauses for the application (``paced``) are not counted.
   ``direct`` is the floor: an instrumentation that already holds its
   attribute dict.
2. **Application thread.** ``--pairs`` manual pairs (``llm_call`` +
   ``llm_call_end``) into a JSONL file, with and without an
   ``OpenTelemetryExporter`` registered on the same runtime (its provider: a
   ``BatchSpanProcessor`` into memory). ``emit`` is the time of the loop on the
   application thread; ``end to end`` adds ``flush()`` (every event delivered and
   every span ended). The loop emits faster than spans are built, so the
   exporter's bounded buffer overflows: those events are dropped and counted
   (``diagnostics().exporters["otel"]["dropped"]``), and the figure is reported.

3. **Paced.** The same pairs with ``--pause-us`` (default 1 ms) of sleep
   between them, standing for the provider's latency: only the time inside
   the two calls is counted. This is the cost an agent actually pays.

Run: ``python benchmarks/bench_otel.py [--quick] [--json PATH]``. The report is
printed as a table and as one JSON object on the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import _workload as w
import llmflow
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter, OpenTelemetryExporter
from llmflow.testing import capture


def _memory_provider(*, batch: bool) -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    processor = BatchSpanProcessor(memory) if batch else SimpleSpanProcessor(memory)
    provider.add_span_processor(processor)
    return provider, memory


def _recorded_calls(count: int) -> list[llmflow.Event]:
    runtime = llmflow.Runtime()
    runtime.install()
    codec = OpenAIChatCodec()
    request, response = llmflow.LlmRequest(w.request_headers(), w.request_body()), w.response()
    with capture() as events:
        for _ in range(count):
            llmflow.llm_call_execute_sync(
                w.CALL_NAME, request, lambda r: response, codec=codec, response_codec=codec
            )
    runtime.shutdown()
    return list(events)


def _direct_plan(spans: list[Any]) -> list[tuple[str, int, int, dict[str, Any], dict[str, Any]]]:
    """What a hand-written instrumentation would pass to the SDK for the same spans."""
    plan = []
    for span in spans:
        attributes = dict(span.attributes)
        start_keys = [k for k in attributes if k.startswith(("gen_ai.request", "gen_ai.op"))]
        at_start = {k: attributes.pop(k) for k in start_keys}
        plan.append((span.name, span.start_time, span.end_time, at_start, attributes))
    return plan


def _per_span(spans: int, runs: int) -> dict[str, float]:
    lines = [event.line_parts() for event in _recorded_calls(spans)]
    results: dict[str, list[float]] = {"exporter": [], "exporter_content": [], "direct": []}
    plan: list[Any] = []
    for _ in range(runs):
        for label, content in (("exporter", False), ("exporter_content", True)):
            provider, memory = _memory_provider(batch=False)
            exporter = OpenTelemetryExporter(provider, capture_content=content)
            began = time.thread_time_ns()
            exporter.export_lines(lines)
            elapsed = time.thread_time_ns() - began
            finished = memory.get_finished_spans()
            assert len(finished) == spans, len(finished)
            results[label].append(elapsed / spans / 1000)
            if not plan and not content:
                plan = _direct_plan(list(finished))
        provider, memory = _memory_provider(batch=False)
        tracer = provider.get_tracer("direct")
        began = time.thread_time_ns()
        for name, start, end, at_start, at_end in plan:
            span = tracer.start_span(
                name, kind=SpanKind.CLIENT, attributes=at_start, start_time=start
            )
            span.set_attributes(at_end)
            span.end(end_time=end)
        elapsed = time.thread_time_ns() - began
        assert len(memory.get_finished_spans()) == spans
        results["direct"].append(elapsed / spans / 1000)
    return {label: statistics.median(values) for label, values in results.items()}


def _app_thread(pairs: int, runs: int, directory: Path) -> dict[str, dict[str, float]]:
    request = llmflow.LlmRequest(w.request_headers(), w.request_body())
    response = w.response()
    results: dict[str, dict[str, list[float]]] = {
        mode: {"emit": [], "end_to_end": []} for mode in ("off", "on")
    }
    dropped: list[int] = []
    spans: list[int] = []
    for run in range(runs):
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            runtime = llmflow.Runtime()
            runtime.install()
            AtofFileExporter(directory / f"{mode}.jsonl", mode="overwrite", fsync=False).register(
                runtime=runtime
            )
            provider = memory = None
            if mode == "on":
                provider, memory = _memory_provider(batch=True)
                OpenTelemetryExporter(provider).register("otel", runtime=runtime)
            llm_call, llm_call_end = llmflow.llm_call, llmflow.llm_call_end
            began = time.perf_counter_ns()
            for _ in range(pairs):
                handle = llm_call(w.CALL_NAME, request, model_name=w.MODEL)
                llm_call_end(handle, response)
            emitted = time.perf_counter_ns()
            runtime.flush()
            done = time.perf_counter_ns()
            if provider is not None and memory is not None:
                counters = runtime.diagnostics().exporters["otel"]
                provider.force_flush()
                # Events the exporter's buffer could not hold are dropped and counted.
                dropped.append(counters["dropped"])
                assert counters["received"] == counters["exported"] + counters["dropped"]
                spans.append(len(memory.get_finished_spans()))
            runtime.shutdown()
            results[mode]["emit"].append((emitted - began) / pairs / 1000)
            results[mode]["end_to_end"].append((done - began) / pairs / 1000)
    report: dict[str, dict[str, float]] = {
        mode: {key: statistics.median(values) for key, values in figures.items()}
        for mode, figures in results.items()
    }
    report["on"]["dropped_events"] = statistics.median(dropped)
    report["on"]["spans"] = statistics.median(spans)
    return report


def _paced(pairs: int, runs: int, pause_us: int, directory: Path) -> dict[str, float]:
    """Application-thread time inside ``llm_call`` + ``llm_call_end`` when calls are paced.

    A real agent waits for the provider between calls; ``pause_us`` of sleep
    between pairs stands for that wait. Only the two calls are timed.
    """
    request = llmflow.LlmRequest(w.request_headers(), w.request_body())
    response = w.response()
    results: dict[str, list[float]] = {"off": [], "on": []}
    for run in range(runs):
        for mode in ("off", "on") if run % 2 == 0 else ("on", "off"):
            runtime = llmflow.Runtime()
            runtime.install()
            AtofFileExporter(
                directory / f"paced-{mode}.jsonl", mode="overwrite", fsync=False
            ).register(runtime=runtime)
            if mode == "on":
                provider, _memory = _memory_provider(batch=True)
                OpenTelemetryExporter(provider).register("otel", runtime=runtime)
            llm_call, llm_call_end = llmflow.llm_call, llmflow.llm_call_end
            clock, pause = time.perf_counter_ns, pause_us / 1_000_000
            spent = 0
            for _ in range(pairs):
                began = clock()
                handle = llm_call(w.CALL_NAME, request, model_name=w.MODEL)
                llm_call_end(handle, response)
                spent += clock() - began
                time.sleep(pause)
            runtime.flush()
            if mode == "on":
                assert runtime.diagnostics().exporters["otel"]["dropped"] == 0
            runtime.shutdown()
            results[mode].append(spent / pairs / 1000)
    return {mode: statistics.median(values) for mode, values in results.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer spans, pairs and runs")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--spans", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--pause-us", type=int, default=1_000, help="wait between paced pairs")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    spans = args.spans or (1_000 if args.quick else 5_000)
    pairs = args.pairs or (2_000 if args.quick else 10_000)

    per_span = _per_span(spans, runs)
    with tempfile.TemporaryDirectory() as directory:
        app = _app_thread(pairs, runs, Path(directory))
        paced = _paced(pairs // 5, runs, args.pause_us, Path(directory))
    report = {
        "per_span_us": per_span,
        "exporter_vs_direct": per_span["exporter"] / per_span["direct"],
        "app_thread_us_per_pair": app,
        "paced_app_thread_us_per_pair": paced,
        "pause_us": args.pause_us,
        "spans": spans,
        "pairs": pairs,
        "runs": runs,
    }
    print(f"per span ({spans} spans, median of {runs} runs):")
    print(f"  OpenTelemetryExporter.export_lines {per_span['exporter']:8.2f} us")
    print(f"  ... with capture_content=True      {per_span['exporter_content']:8.2f} us")
    print(f"  same spans directly through the SDK {per_span['direct']:7.2f} us")
    print(f"  ratio exporter / direct            {report['exporter_vs_direct']:8.2f}")
    print(f"application thread per manual pair ({pairs} pairs, JSONL file on):")
    for mode in ("off", "on"):
        figures = app[mode]
        print(
            f"  exporter {mode:3}  emit {figures['emit']:7.2f} us"
            f"   end to end {figures['end_to_end']:7.2f} us"
        )
    print(
        f"  with the exporter on: {app['on']['spans']:.0f} spans of {pairs} pairs;"
        f" {app['on']['dropped_events']:.0f} events dropped by its buffer (median)"
    )
    print(f"paced: {args.pause_us} us of provider wait between pairs ({pairs // 5} pairs):")
    print(f"  exporter off {paced['off']:7.2f} us   exporter on {paced['on']:7.2f} us")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
