"""Exporter benchmark (SPEC §12): throughput, and the application thread's cost per call.

1. Throughput (events/s) of ``HttpExporter`` to a loopback receiver (a separate
   process that decompresses and counts every line) and of ``ParquetExporter``
   to local disk, next to ``AtofFileExporter`` as the reference, on the same
   events: the §8 workload's manual pairs (about 2 KB request and response).
2. The application thread's cost per manual pair (``llm_call`` + ``llm_call_end``)
   with the JSONL file only ("off"), with a background line exporter that does
   nothing ("queue_only": the queueing cost alone, lines mode), with a
   background exporter that does nothing and takes events ("queue_events":
   what events mode costs), and with each exporter added (``HttpExporter``,
   ``ParquetExporter``, ``OpenTelemetryExporter`` into an in-memory SDK
   provider), in the same run. ``emit`` is the wall time of the calling loop
   alone, ``cpu`` that loop's CPU time on the application thread
   (``time.thread_time``: what the application pays itself, whatever the other
   threads and processes of a loaded machine do), ``end to end`` includes
   ``runtime.flush()`` (every event delivered and exported).

Throughput feeds each exporter ``export_lines`` with ready lines, as the
runtime does, and also reports the CPU time the exporter spent on the calling
thread per event (``cpu_us_per_event``; pyarrow and zlib run there too).

3. The same application cost with each exporter out of process instead: the
   application writes only its JSONL file and ``llmflow.exporters.start_shipper``
   runs ``llmflow ship`` beside it (niced by 10) following that file into
   Parquet (``ship_parquet``) or OTLP/HTTP to a loopback receiver that decodes
   and counts the spans (``ship_otlp``). ``end to end`` is then the time until the
   shipper's checkpoint reaches the end of the file; ``shipper_lag_s`` how long
   that took after the application's own flush; ``shipped_lines`` what the
   checkpoint says (every line of the file: nothing is dropped, the file is the
   buffer). The shipper's own throughput is measured on a ready log of three
   times the events (``llmflow ship --once``, a child process: wall and CPU
   from its rusage, minus a 100-line run's start-up).

4. With ``--app-loop off|ship``, only the application's loop of ``--pairs``
   pairs (JSONL file; ``ship``: a Parquet shipper follows it), untimed: run it
   under ``valgrind --tool=callgrind`` (children not traced) with two pair
   counts to get the instructions per pair of the application's process.

5. With ``--lock-split``, only this: ``ParquetExporter``'s CPU per event split
   into the part that holds the interpreter lock and the part inside pyarrow
   calls that release it (``pyarrow.json.read_json``, ``pyarrow.compute``,
   ``ParquetWriter.write_table``, timed by wrapping them), on the same events.

    python benchmarks/bench_exporters.py [--pairs N] [--runs N] [--json PATH] [--lock-split]
        [--only NAME,NAME]   # app-cost rows to run (default: all)
        [--app-loop off|ship] # see 4

The report is printed as a table on stderr and one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workload as w
import llmflow
from llmflow import Event, LlmRequest
from llmflow._event import LineParts
from llmflow.exporters import (
    AtofFileExporter,
    BaseExporter,
    ExportResult,
    HttpExporter,
    ParquetExporter,
    start_shipper,
)
from llmflow.testing import capture

RECEIVER = r"""
import gzip, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lines = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.lines += gzip.decompress(body).count(b"\n")
        self.send_response(204)
        self.send_header("X-Lines", str(Handler.lines))
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


OTLP_RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
class Handler(BaseHTTPRequestHandler):
    spans = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        Handler.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        print(Handler.spans, file=sys.stderr, flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pairs_as_events(pairs: int) -> list[Event]:
    """The events of ``pairs`` manual pairs, recorded on a runtime of their own."""
    setup = llmflow.Runtime()
    previous = setup.install()
    request = LlmRequest(w.request_headers(), w.request_body())
    response = w.response()
    try:
        with capture() as events:
            for _ in range(pairs):
                handle = llmflow.llm_call(w.CALL_NAME, request, model_name=w.MODEL)
                llmflow.llm_call_end(handle, response, metadata={"cost.usd": 0.0123})
    finally:
        setup.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    return events


def _throughput(
    name: str, make: Callable[[], Any], events: list[Event], batch: int, finish: str
) -> dict[str, Any]:
    exporter = make()
    lines = [event.line_parts() for event in events]
    # as the runtime's worker does (an exporter without export_lines takes events)
    write = getattr(exporter, "export_lines", None)
    items: Sequence[Any] = lines if write is not None else events
    write = write or exporter.export
    cpu_started = time.thread_time()
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        write(items[start : start + batch])
    done = getattr(exporter, finish)(60.0) if finish == "flush" else exporter.flush()
    elapsed = time.perf_counter() - started
    cpu = time.thread_time() - cpu_started
    stats = exporter.stats() if hasattr(exporter, "stats") else {}
    exporter.shutdown()
    return {
        "exporter": name,
        "events": len(events),
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
        "cpu_us_per_event": cpu / len(events) * 1e6,
        "flushed": done,
        "stats": stats,
    }


class _QueueEvents(BaseExporter):
    """A background exporter that does nothing with events: what events mode costs."""

    background: ClassVar[bool] = True
    buffer_capacity: ClassVar[int] = 16_384

    def export(self, events: Sequence[Event]) -> ExportResult:
        return ExportResult.SUCCESS


class _QueueOnly(_QueueEvents):
    """A background line exporter that does nothing: what queueing alone costs."""

    def export_lines(self, lines: Sequence[LineParts]) -> int | None:
        return None


def _otel() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from llmflow.exporters import OpenTelemetryExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    return OpenTelemetryExporter(provider)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _app_cost(
    pairs: int, extra: Callable[[], Any] | None, jsonl: str, ship_to: str | None = None
) -> dict[str, float]:
    """The application thread's cost per pair; with ``ship_to``, a shipper follows the file."""
    runtime = llmflow.Runtime(queue_capacity=65_536)
    runtime.install()
    AtofFileExporter(jsonl, mode="overwrite", fsync=False).register("jsonl", runtime=runtime)
    exporter = None
    if extra is not None:
        exporter = extra()
        runtime.add_exporter("extra", exporter)
    shipper = None
    if ship_to is not None:
        state = f"{jsonl}.{time.perf_counter_ns()}.state"
        shipper = start_shipper(jsonl, [ship_to], state=state)
    request = LlmRequest(w.request_headers(), w.request_body())
    response = w.response()
    llm_call, llm_call_end = llmflow.llm_call, llmflow.llm_call_end
    for _ in range(200):  # warm-up
        llm_call_end(llm_call(w.CALL_NAME, request, model_name=w.MODEL), response)
    runtime.flush()
    if shipper is not None:  # started, exporters built, caught up: the steady state
        assert shipper.flush(120.0), "the shipper did not catch up with the warm-up"
    cpu_started = time.thread_time()
    started = time.perf_counter()
    for _ in range(pairs):
        llm_call_end(llm_call(w.CALL_NAME, request, model_name=w.MODEL), response)
    emitted = time.perf_counter()
    cpu = time.thread_time() - cpu_started
    runtime.flush()
    flushed = time.perf_counter()
    shipped: dict[str, float] = {}
    if shipper is not None:
        delivered = shipper.flush(300.0)
        caught_up = time.perf_counter()
        checkpoint = shipper.checkpoint()
        at_end = checkpoint is not None and checkpoint.offset == os.stat(jsonl).st_size
        cpu_before = _children_cpu()
        shipper.stop(60.0)
        shipped = {
            "shipper_delivered": float(delivered),
            "shipper_lag_s": caught_up - flushed,
            "shipped_lines": float(checkpoint.line if checkpoint and at_end else 0),
            "file_lines": float(2 * (pairs + 200)),  # every event emitted, warm-up included
            "shipper_cpu_s": _children_cpu() - cpu_before,  # start-up included
        }
        flushed = caught_up
    diagnostics = runtime.diagnostics()
    runtime.shutdown()
    counters = diagnostics.exporters.get("extra", {})
    return shipped | {
        "emit_us": (emitted - started) / pairs * 1e6,
        "cpu_us": cpu / pairs * 1e6,
        "end_to_end_us": (flushed - started) / pairs * 1e6,
        "queue_dropped": float(diagnostics.dropped),
        "exporter_dropped": float(counters.get("dropped", 0)),
        "exporter_failed": float(counters.get("failed", 0)),
        "failures": float(sum(diagnostics.failures.values())),
    }


def _ship_throughput(log: Path, target: str, scratch: Path) -> dict[str, float]:
    """``llmflow ship --once`` on a ready log in a child process: wall and CPU per event.

    Start-up and first use (imports, the exporter's first batch) are taken out
    by subtracting a run on the log's first 100 lines.
    """
    small = scratch / f"small{time.perf_counter_ns()}.jsonl"
    with open(log, "rb") as source:
        small.write_bytes(b"".join(line for line, _ in zip(source, range(100), strict=False)))
    measured = []
    for path in (small, log):
        command = [sys.executable, "-m", "llmflow", "ship", str(path), target, "--once"]
        command += ["--state", str(scratch / f"s{time.perf_counter_ns()}"), "--batch-lines", "4096"]
        cpu_before = _children_cpu()
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        measured.append((time.perf_counter() - started, _children_cpu() - cpu_before))
    events = sum(1 for _ in open(log, "rb")) - 100  # noqa: SIM115
    wall = measured[1][0] - measured[0][0]
    cpu = measured[1][1] - measured[0][1]
    return {
        "events": float(events),
        "events_per_s": events / wall,
        "cpu_us_per_event": cpu / events * 1e6,
        "startup_s": measured[0][0],  # the 100-line run
    }


def _lock_split(events: list[Event], runs: int, batch: int) -> dict[str, float]:
    """``ParquetExporter``'s thread CPU per event: total, holding the lock, inside pyarrow."""
    import functools

    import pyarrow.compute as pc
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    inside = [0.0, 0]  # seconds inside lock-releasing calls, nesting depth

    def timed(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if inside[1]:
                return function(*args, **kwargs)
            inside[1] += 1
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                inside[0] += time.thread_time() - started
                inside[1] -= 1

        return wrapper

    saved = {name: getattr(pc, name) for name in dir(pc) if not name.startswith("_")}
    saved_read, saved_write = pj.read_json, pq.ParquetWriter.write_table
    for name, value in saved.items():
        if callable(value) and not isinstance(value, type) and name not in ("field", "scalar"):
            setattr(pc, name, timed(value))
    pj.read_json = timed(saved_read)  # type: ignore[assignment]
    pq.ParquetWriter.write_table = timed(saved_write)  # type: ignore[method-assign]
    lines = [event.line_parts() for event in events]
    results: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for run in range(runs + 1):  # the first run warms up
                exporter = ParquetExporter(Path(scratch) / f"run{run}")
                inside[0] = 0.0
                started = time.thread_time()
                for start in range(0, len(lines), batch):
                    exporter.export_lines(lines[start : start + batch])
                exporter.flush()
                total = time.thread_time() - started
                exporter.shutdown()
                if run:
                    results.append((total, inside[0]))
    finally:
        for name, value in saved.items():
            setattr(pc, name, value)
        pj.read_json = saved_read  # type: ignore[assignment]
        pq.ParquetWriter.write_table = saved_write  # type: ignore[method-assign]
    per_event = 1e6 / len(lines)
    total = statistics.median(t for t, _ in results) * per_event
    released = statistics.median(r for _, r in results) * per_event
    return {
        "parquet_cpu_us_per_event": total,
        "parquet_lock_held_us_per_event": statistics.median(t - r for t, r in results) * per_event,
        "parquet_lock_released_us_per_event": released,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--lock-split", action="store_true")
    parser.add_argument("--only", help="comma-separated app-cost rows (default: all)")
    parser.add_argument("--app-loop", choices=("off", "ship"))
    options = parser.parse_args()
    if options.app_loop:
        with tempfile.TemporaryDirectory() as scratch:
            target = f"parquet:{Path(scratch) / 'lake'}" if options.app_loop == "ship" else None
            _app_cost(options.pairs, None, str(Path(scratch) / "app.jsonl"), target)
        return 0
    if options.lock_split:
        events = _pairs_as_events(options.pairs)
        split = _lock_split(events, options.runs, 4_096)
        for key, value in split.items():
            _log(f"  {key:36} {value:>8.2f}")
        print(json.dumps(split))
        return 0

    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    url = f"http://127.0.0.1:{receiver.stdout.readline().strip()}/v1/atof"
    otlp = subprocess.Popen(  # niced as the shipper: it stands for a collector elsewhere
        ["nice", "-n", "10", sys.executable, "-c", OTLP_RECEIVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert otlp.stdout is not None
    # the shipper's OpenTelemetryExporter reads the standard variables
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{otlp.stdout.readline().strip()}"
    report: dict[str, Any] = {"pairs": options.pairs, "runs": options.runs, "throughput": []}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            events = _pairs_as_events(options.pairs)
            line_bytes = sum(len(event.json_line()) for event in events) / len(events)
            report["bytes_per_event"] = line_bytes
            makers: dict[str, Callable[[], Any]] = {
                "jsonl": lambda: AtofFileExporter(
                    root / f"t{time.perf_counter_ns()}.jsonl", fsync=True
                ),
                "http": lambda: HttpExporter(url, batch_size=options.batch),
                "parquet": lambda: ParquetExporter(root / f"p{time.perf_counter_ns()}"),
            }
            ready = root / "ready.jsonl"  # three times the events: pyarrow's first use amortized
            ready.write_bytes(b"".join(event.json_line() for event in events) * 3)
            for run in range(options.runs):
                for name, make in makers.items():
                    finish = "plain" if name == "jsonl" else "flush"
                    result = _throughput(name, make, events, options.batch, finish)
                    result["run"] = run
                    report["throughput"].append(result)
                    _log(f"throughput {name:8} run {run}: {result['events_per_s']:>10,.0f} ev/s")
                for name, target in (
                    ("ship_parquet", f"parquet:{root / f'sp{run}'}"),
                    ("ship_otlp", "otlp"),
                ):
                    result = {"exporter": name, "run": run, **_ship_throughput(ready, target, root)}
                    report["throughput"].append(result)
                    _log(
                        f"throughput {name:8} run {run}: {result['events_per_s']:>10,.0f} ev/s, "
                        f"{result['cpu_us_per_event']:.1f} us cpu/event"
                    )

            extras: dict[str, tuple[Callable[[], Any] | None, str | None]] = {
                "off": (None, None),
                "queue_only": (_QueueOnly, None),
                "queue_events": (_QueueEvents, None),
                "http": (lambda: HttpExporter(url, batch_size=options.batch), None),
                "parquet": (lambda: ParquetExporter(root / f"a{time.perf_counter_ns()}"), None),
                "otel": (_otel, None),
                "ship_parquet": (None, "parquet"),
                "ship_otlp": (None, "otlp"),
            }
            if options.only:
                extras = {k: v for k, v in extras.items() if k in options.only.split(",")}
            app: dict[str, list[dict[str, float]]] = {name: [] for name in extras}
            for run in range(options.runs):
                # alternate the order, so that no configuration always runs first
                order = list(extras.items())
                for name, (extra, ship_to) in order if run % 2 == 0 else order[::-1]:
                    target = ship_to
                    if target == "parquet":
                        target = f"parquet:{root / f'b{time.perf_counter_ns()}'}"
                    cost = _app_cost(options.pairs, extra, str(root / "app.jsonl"), target)
                    app[name].append(cost)
                    shipped = (
                        f", shipped {cost['shipped_lines']:.0f}/{cost['file_lines']:.0f} lines, "
                        f"lag {cost['shipper_lag_s']:.2f} s"
                        if ship_to
                        else ""
                    )
                    _log(
                        f"app cost {name:12} run {run}: emit {cost['emit_us']:6.2f} us/pair, "
                        f"cpu {cost['cpu_us']:6.2f} us/pair, "
                        f"end to end {cost['end_to_end_us']:6.2f} us/pair, "
                        f"dropped {cost['queue_dropped'] + cost['exporter_dropped']:.0f}{shipped}"
                    )
            report["app_cost"] = app
    finally:
        for process in (receiver, otlp):
            process.terminate()
            process.wait(10)

    summary: dict[str, Any] = {}
    for name in ("jsonl", "http", "parquet", "ship_parquet", "ship_otlp"):
        rates = [r["events_per_s"] for r in report["throughput"] if r["exporter"] == name]
        summary[f"throughput_{name}_events_per_s"] = statistics.median(rates)
        cpus = [r["cpu_us_per_event"] for r in report["throughput"] if r["exporter"] == name]
        summary[f"throughput_{name}_cpu_us_per_event"] = statistics.median(cpus)
    for name, runs in report["app_cost"].items():
        summary[f"app_{name}_emit_us"] = statistics.median(r["emit_us"] for r in runs)
        summary[f"app_{name}_cpu_us"] = statistics.median(r["cpu_us"] for r in runs)
        summary[f"app_{name}_end_to_end_us"] = statistics.median(r["end_to_end_us"] for r in runs)
        summary[f"app_{name}_dropped_total"] = sum(
            r["queue_dropped"] + r["exporter_dropped"] + r["exporter_failed"] for r in runs
        )
        if runs and "shipped_lines" in runs[0]:
            summary[f"app_{name}_not_shipped_total"] = sum(
                r["file_lines"] - r["shipped_lines"] for r in runs
            )
            summary[f"app_{name}_shipper_lag_s"] = statistics.median(
                r["shipper_lag_s"] for r in runs
            )
    report["summary"] = summary
    _log("")
    _log(f"median of {options.runs} runs, {options.pairs:,} pairs ({2 * options.pairs:,} events)")
    for key, value in summary.items():
        _log(f"  {key:34} {value:>12,.2f}")
    if options.json is not None:
        options.json.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    os.environ.pop("LLMFLOW_EXPORTERS", None)
    sys.exit(main())
