"""``llmflow convert --to atif|otlp|parquet|jsonl``: one log format to another, offline.

* ``jsonl``: normalized ATOF lines (compact JSON, one event per line, bad
  lines dropped with a warning), several inputs merged in timestamp order,
  filtered by ``--category``, ``--name``, ``--since``/``--until``. Streaming,
  constant memory.
* ``atif``: one ATIF trajectory document through :func:`llmflow.atif.to_atif`.
* ``otlp``: OTLP/JSON (an ``ExportTraceServiceRequest``, as the OpenTelemetry
  Collector's file exporter writes it) through the OpenTelemetry exporter's
  offline export (:func:`llmflow.exporters.otel.export_log`); with ``--send`` the
  spans go to the OTLP/HTTP collector named by ``OTEL_EXPORTER_OTLP_*`` instead.
* ``parquet``: a Parquet dataset directory through
  :func:`llmflow.exporters.parquet.write_parquet`.

The exporters are imported when asked for; a missing module or extra is a
one-line error naming what to install (exit 2).
"""

from __future__ import annotations

import argparse
import fnmatch
import heapq
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import orjson

from llmflow.atof import Record

from ._input import EXIT_OK, EXIT_UNREADABLE, LogInput, UnreadableInput, check_readable
from .stats import parse_since

__all__ = ["FORMATS", "register", "run"]

FORMATS = ("jsonl", "atif", "otlp", "parquet")


class MissingConverter(Exception):
    """The module or extra that a target format needs is not installed."""


def _load(module: str, attribute: str, install: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise MissingConverter(
            f"{module}.{attribute} is not available ({exc}); install it with "
            f"pip install 'llmflow[{install}]'"
        ) from None
    except AttributeError:
        raise MissingConverter(
            f"{module}.{attribute} is not available in this llmflow version"
        ) from None


def _filtered(logs: LogInput, args: argparse.Namespace) -> Iterator[Record]:
    """Every kept record of every input, merged by timestamp (stable per file)."""
    since = parse_since(args.since) if args.since else None
    until = parse_since(args.until) if args.until else None
    categories = set(args.category.split(",")) if args.category else None

    def keep(record: Record) -> bool:
        _, timestamp_us, event = record
        if since is not None and timestamp_us < since:
            return False
        if until is not None and timestamp_us >= until:
            return False
        if categories is not None and event.get("category") not in categories:
            return False
        return args.name is None or fnmatch.fnmatchcase(event["name"], args.name)

    streams = [(r for r in logs.records(path) if keep(r)) for path in logs.paths]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda record: record[1])


@contextmanager
def _output(target: str | None) -> Iterator[IO[bytes]]:
    if target is None or target == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(target, "wb") as handle:
        yield handle


def _to_jsonl(records: Iterator[Record], args: argparse.Namespace) -> int:
    dumps = orjson.dumps
    count = 0
    with _output(args.output) as out:
        write = out.write
        for _, _, event in records:
            write(dumps(event) + b"\n")
            count += 1
    return count


def _to_atif(records: Iterator[Record], args: argparse.Namespace) -> int:
    to_atif: Callable[[list[dict[str, Any]]], Any] = _load("llmflow.atif", "to_atif", "atif")
    events = [event for _, _, event in records]
    document = to_atif(events)
    with _output(args.output) as out:
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return len(events)


def _otlp_json(events: list[dict[str, Any]]) -> Any:
    """Export through the OpenTelemetry exporter into memory, then encode as OTLP/JSON."""
    export_log = _load("llmflow.exporters.otel", "export_log", "otel")
    try:
        from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError as exc:
        raise MissingConverter(
            f"OTLP/JSON needs the OpenTelemetry SDK and OTLP exporter ({exc}); install it with "
            "pip install 'llmflow[otel]'"
        ) from None
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    export_log(events, provider)
    provider.shutdown()
    return MessageToDict(encode_spans(memory.get_finished_spans()))


def _to_otlp(records: Iterator[Record], args: argparse.Namespace) -> int:
    events = [event for _, _, event in records]
    if args.send:
        export_log = _load("llmflow.exporters.otel", "export_log", "otel")
        spans: int = export_log(events)
        print(f"llmflow convert: sent {spans:,} spans over OTLP/HTTP", file=sys.stderr)
        return len(events)
    document = _otlp_json(events)
    with _output(args.output) as out:
        out.write(orjson.dumps(document) + b"\n")
    return len(events)


def _to_parquet(records: Iterator[Record], args: argparse.Namespace) -> int:
    write_parquet: Callable[..., dict[str, int]] = _load(
        "llmflow.exporters.parquet", "write_parquet", "parquet"
    )
    if not args.output or args.output == "-":
        raise MissingConverter("--to parquet needs -o DIRECTORY (a dataset is a directory)")
    counted = 0

    def events() -> Iterator[dict[str, Any]]:
        nonlocal counted
        for _, _, event in records:
            counted += 1
            yield event

    write_parquet(events(), args.output)
    return counted


_CONVERTERS: dict[str, Callable[[Iterator[Record], argparse.Namespace], int]] = {
    "jsonl": _to_jsonl,
    "atif": _to_atif,
    "otlp": _to_otlp,
    "parquet": _to_parquet,
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow convert`` to its parser."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="ATOF JSONL file(s), .gz, or -")
    parser.add_argument("--to", required=True, choices=FORMATS, help="target format")
    parser.add_argument("-o", "--output", help="output file (directory for parquet); - stdout")
    parser.add_argument("--category", help="keep events of these categories (comma-separated)")
    parser.add_argument("--name", help="keep events whose name matches this glob")
    parser.add_argument("--since", help="keep events at/after: RFC 3339, epoch µs, or 2h")
    parser.add_argument("--until", help="keep events before: RFC 3339, epoch µs, or 2h")
    parser.add_argument(
        "--send",
        action="store_true",
        help="otlp: send to the collector set by OTEL_EXPORTER_OTLP_* instead of writing JSON",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``convert``; returns the exit code."""
    error = check_readable(args.paths, "convert")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    logs = LogInput(args.paths, command="convert")
    try:
        count = _CONVERTERS[args.to](_filtered(logs, args), args)
    except ValueError as exc:  # --since/--until
        print(f"llmflow convert: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except MissingConverter as exc:
        print(f"llmflow convert: --to {args.to}: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except UnreadableInput as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as exc:
        print(
            f"llmflow convert: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr
        )
        return EXIT_UNREADABLE
    logs.finish()
    if args.output and args.output != "-":
        print(f"llmflow convert: {count:,} events -> {args.output} ({args.to})", file=sys.stderr)
    return EXIT_OK
