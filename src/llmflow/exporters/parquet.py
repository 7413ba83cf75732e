"""ParquetExporter: rolling Parquet files with one fixed schema, for DuckDB, Polars and Spark.

Needs the ``parquet`` extra (pyarrow), imported when an exporter is created,
never by ``import llmflow``. Files are laid out Hive style,
``{directory}/date=YYYY-MM-DD/part-{start}-{pid}-{n}.parquet`` (the UTC date of
the events), written under a hidden ``.tmp`` name and renamed when complete,
so a reader never sees a partial file. Every row is one ATOF event; end events
also carry the span's analysis columns, read by :func:`llmflow.atof.span_facts`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from llmflow._event import Event, LineParts
from llmflow.atof import read_events, span_facts
from llmflow.atof._timestamps import timestamp_us as parse_wire_timestamp
from llmflow.exporters._base import BaseExporter, ExportResult
from llmflow.exporters._worker import paced

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["PARQUET_COLUMNS", "ParquetExporter", "write_parquet"]

PARQUET_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("kind", "string", '"scope" or "mark"'),
    ("atof_version", "string", '"0.1"'),
    ("uuid", "string", "event id; a span's start and end share it"),
    ("parent_uuid", "string", "enclosing span's uuid, null at the root"),
    ("timestamp_us", "int64", "epoch microseconds (UTC)"),
    ("timestamp", "string", "the timestamp as written in the log"),
    ("name", "string", "span or mark name"),
    ("scope_category", "string", '"start", "end", null for marks'),
    ("category", "string", "llm, tool, agent, ... (null for an uncategorized mark)"),
    ("attributes", "list<string>", "sorted attribute flags"),
    ("data", "string", "JSON text of `data`"),
    ("metadata", "string", "JSON text of `metadata`, null when absent"),
    ("category_profile", "string", "JSON text of `category_profile`, null when absent"),
    ("data_schema", "string", "JSON text of `data_schema`, null when absent"),
    ("model", "string", "end events: model (response, profile or request)"),
    ("provider", "string", "end events: provider name"),
    ("status", "string", 'end events: "ok" or "error"'),
    ("error_type", "string", "end events: recorded `exception.type`"),
    ("http_status", "int32", "end events: `http.status_code`"),
    ("duration_us", "int64", "end events: end minus start timestamp"),
    ("input_tokens", "int64", "end events: prompt tokens, cached ones included"),
    ("output_tokens", "int64", "end events: completion tokens, reasoning included"),
    ("cached_tokens", "int64", "end events: cached prompt tokens"),
    ("reasoning_tokens", "int64", "end events: reasoning tokens"),
    ("cost_usd", "float64", "end events: `cost.usd`"),
    ("tool_call_id", "string", "end events of tool spans: the call id"),
)
"""``(column, Arrow type, meaning)`` of every column, in file order (docs/exporters.md)."""

_ANALYSIS_COLUMNS = tuple(name for name, _, _ in PARQUET_COLUMNS[14:])
_FROM_EVENT = object()  # ``data_text`` not given: serialize ``event["data"]``
_START_KEYS = ("timestamp", "name", "category", "category_profile", "metadata", "data_schema")


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ImportError("ParquetExporter needs pyarrow: pip install 'llmflow[parquet]'") from None
    return pyarrow, pyarrow.parquet


def parquet_schema() -> pa.Schema:
    """The Arrow schema of every file (one fixed schema, see :data:`PARQUET_COLUMNS`)."""
    pa, _ = _pyarrow()
    types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "list<string>": pa.list_(pa.string()),
    }
    fields = [
        pa.field(name, types[kind], nullable=name != "timestamp_us")
        for name, kind, _ in PARQUET_COLUMNS
    ]
    return pa.schema(fields)


def _json_text(value: object) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


class _Rows:
    """Columns under construction, and the open spans whose start an end is joined to.

    At most ``max_open_spans`` starts are kept (without their ``data``); beyond
    that the oldest is forgotten and counted (``unjoined``): its end still gets
    the columns the end itself carries, but no ``duration_us``.
    """

    def __init__(self, max_open_spans: int) -> None:
        self.max_open_spans = max_open_spans
        self.open: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.unjoined = 0
        self.columns: dict[str, list[Any]] = {name: [] for name, _, _ in PARQUET_COLUMNS}
        self.dates: list[str] = []

    def __len__(self) -> int:
        return len(self.dates)

    def add_line(self, parts: LineParts) -> None:
        """Add one event from its JSONL line: ``data`` is copied as JSON text, never parsed."""
        head, data, tail = parts
        self.add(orjson.loads(head + b"null" + tail), None if data == b"null" else data.decode())

    def add(
        self,
        event: Mapping[str, Any],
        data_text: str | object | None = _FROM_EVENT,
        timestamp_us: int | None = None,
        timestamp_text: str | None = None,
    ) -> None:
        """Add one event in its wire form (a parsed line or ``Event.to_dict()``)."""
        columns = self.columns
        timestamp = event["timestamp"]
        if timestamp_us is None:
            timestamp_us = parse_wire_timestamp(timestamp)
        phase = event.get("scope_category")
        columns["kind"].append(event.get("kind"))
        columns["atof_version"].append(event.get("atof_version"))
        columns["uuid"].append(event.get("uuid"))
        columns["parent_uuid"].append(event.get("parent_uuid"))
        columns["timestamp_us"].append(timestamp_us)
        columns["timestamp"].append(str(timestamp) if timestamp_text is None else timestamp_text)
        columns["name"].append(event.get("name"))
        columns["scope_category"].append(phase)
        columns["category"].append(event.get("category"))
        columns["attributes"].append(list(event.get("attributes") or ()))
        columns["data"].append(
            _json_text(event.get("data")) if data_text is _FROM_EVENT else data_text
        )
        columns["metadata"].append(_json_text(event.get("metadata")))
        columns["category_profile"].append(_json_text(event.get("category_profile")))
        columns["data_schema"].append(_json_text(event.get("data_schema")))
        self.dates.append(str(timestamp_us // 86_400_000_000))
        uuid = str(event.get("uuid"))
        if phase == "start":
            opened = {key: event.get(key) for key in _START_KEYS}
            opened["timestamp"] = timestamp_us
            self.open[uuid] = opened
            if len(self.open) > self.max_open_spans:
                self.open.popitem(last=False)
                self.unjoined += 1
        if phase != "end":
            for name in _ANALYSIS_COLUMNS:
                columns[name].append(None)
            return
        start = self.open.pop(uuid, None)
        facts = span_facts(start, event) if start is not None else span_facts(event, None)
        columns["model"].append(facts.model)
        columns["provider"].append(facts.provider)
        columns["status"].append("ok" if facts.ok else "error")
        columns["error_type"].append(facts.error_type)
        columns["http_status"].append(facts.status_code)
        columns["duration_us"].append(facts.duration_us)
        columns["input_tokens"].append(facts.input_tokens)
        columns["output_tokens"].append(facts.output_tokens)
        columns["cached_tokens"].append(facts.cached_tokens)
        columns["reasoning_tokens"].append(facts.reasoning_tokens)
        columns["cost_usd"].append(None if facts.cost_usd is None else float(facts.cost_usd))
        columns["tool_call_id"].append(facts.tool_call_id)

    def take(self) -> tuple[dict[str, list[Any]], list[str]]:
        """Hand over the rows built so far (the open spans stay)."""
        taken = self.columns, self.dates
        self.columns = {name: [] for name in self.columns}
        self.dates = []
        return taken


def _day(days_since_epoch: str) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(int(days_since_epoch) * 86_400))


_FORK_ORPHANS: list[Any] = []  # parent writers a forked child must never finalize


class _RollingWriter:
    """Parquet files under ``directory``/date=.../, each finished by a rename."""

    def __init__(
        self,
        directory: Path,
        *,
        max_rows_per_file: int,
        roll_interval: float,
        compression: str,
        row_group_size: int,
    ) -> None:
        self.directory = directory
        self.max_rows_per_file = max_rows_per_file
        self.roll_interval = roll_interval
        self.compression = compression
        self.row_group_size = row_group_size
        self.files_written = 0
        self.rows_committed = 0  # rows in finished files
        self._pa, self._pq = _pyarrow()
        self._schema = parquet_schema()
        self._writer: pq.ParquetWriter | None = None
        self._day: str | None = None
        self._temporary: Path | None = None
        self._final: Path | None = None
        self._rows_in_file = 0
        self._opened_at = 0.0
        self._sequence = 0

    @property
    def rows_in_open_file(self) -> int:
        return self._rows_in_file

    def write(self, columns: dict[str, list[Any]], dates: list[str]) -> None:
        """Append rows (grouped by UTC day, rolling files as configured)."""
        start = 0
        total = len(dates)
        while start < total:
            day = dates[start]
            end = start + 1
            while end < total and dates[end] == day:
                end += 1
            if self._writer is not None and (
                self._day != day or time.monotonic() - self._opened_at >= self.roll_interval
            ):
                self.close_file()
            while start < end:
                if self._writer is None:
                    self._open(day)
                room = self.max_rows_per_file - self._rows_in_file
                stop = min(end, start + room)
                table = self._pa.Table.from_pydict(
                    {name: values[start:stop] for name, values in columns.items()},
                    schema=self._schema,
                )
                assert self._writer is not None
                self._writer.write_table(table, row_group_size=self.row_group_size)
                self._rows_in_file += stop - start
                start = stop
                if self._rows_in_file >= self.max_rows_per_file:
                    self.close_file()

    def roll_if_due(self) -> None:
        if self._writer is not None and time.monotonic() - self._opened_at >= self.roll_interval:
            self.close_file()

    def _open(self, day: str) -> None:
        folder = self.directory / f"date={_day(day)}"
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        stem = f"part-{time.time_ns() // 1000}-{os.getpid()}-{self._sequence:06d}"
        self._final = folder / f"{stem}.parquet"
        # hidden and not *.parquet: globs and pyarrow.dataset skip it until it is complete
        self._temporary = folder / f".{stem}.parquet.tmp"
        self._writer = self._pq.ParquetWriter(
            str(self._temporary), self._schema, compression=self.compression
        )
        self._day = day
        self._rows_in_file = 0
        self._opened_at = time.monotonic()

    def close_file(self) -> None:
        """Finish the open file: footer, fsync, rename to its final name."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        temporary, final = self._temporary, self._final
        assert temporary is not None and final is not None
        writer.close()
        fd = os.open(temporary, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        self.rows_committed += self._rows_in_file
        self._rows_in_file = 0
        dir_fd = os.open(final.parent, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self.files_written += 1

    def forget_after_fork(self) -> None:
        """In a forked child: let go of the parent's open file without touching it."""
        writer, self._writer = self._writer, None
        if writer is not None:
            # closing (or finalizing) it here would write a footer into the parent's file
            writer.is_open = False
            writer.file_handle = None
            _FORK_ORPHANS.append(writer)
        self._rows_in_file = 0
        self.rows_committed = self.files_written = 0

    def abandon_file(self) -> None:
        """Throw the open file away after a write error (its rows are lost)."""
        writer, self._writer = self._writer, None
        self._rows_in_file = 0
        if writer is not None:
            with contextlib.suppress(Exception):  # the file is being thrown away
                writer.close()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink(missing_ok=True)


class ParquetExporter(BaseExporter):
    """Writes every event as one row of rolling Parquet files under ``directory``.

    Runs on its own worker (``background = True``). A file is finished (and
    becomes visible) when it holds ``max_rows_per_file`` rows, when it has been
    open ``roll_interval`` seconds (checked at each export), when the UTC day
    changes, on :meth:`flush` and on :meth:`shutdown`; each ``flush`` that has
    rows therefore finishes a file, so flush sparingly. ``compression`` is any
    codec pyarrow knows (``"zstd"``, ``"snappy"``, ``"gzip"``, ``"none"``).
    Starts of open spans are kept in memory (at most ``max_open_spans``,
    without their ``data``) to fill the analysis columns of their end.

    A disk error (full, read-only) never raises into the application: the
    rows of the file being written are dropped and counted. A process killed
    mid-file leaves only a hidden ``.part-*.parquet.tmp`` that readers skip.
    :meth:`stats`: ``rows`` written to finished files, ``files``, ``lost``,
    ``unjoined`` (ends whose start was forgotten), ``open_spans``.
    """

    background: ClassVar[bool] = True
    buffer_capacity: ClassVar[int] = 16_384
    batch_size: ClassVar[int] = 4_096

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_rows_per_file: int = 1_000_000,
        roll_interval: float = 300.0,
        compression: str = "zstd",
        row_group_size: int = 65_536,
        max_open_spans: int = 100_000,
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory: expected a path, got {type(directory).__name__}")
        for param, value in (
            ("max_rows_per_file", max_rows_per_file),
            ("row_group_size", row_group_size),
            ("max_open_spans", max_open_spans),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{param}: expected an int >= 1, got {value!r}")
        if (
            not isinstance(roll_interval, (int, float))
            or isinstance(roll_interval, bool)
            or roll_interval <= 0
        ):
            raise ValueError(f"roll_interval: expected seconds > 0, got {roll_interval!r}")
        if not isinstance(compression, str):
            raise TypeError(f"compression: expected a codec name, got {compression!r}")
        pa, _ = _pyarrow()
        if compression != "none" and not pa.Codec.is_available(compression):
            raise ValueError(f"compression: {compression!r} is not a codec pyarrow supports")
        self.directory = Path(directory)
        self._rows = _Rows(max_open_spans)
        self._writer = _RollingWriter(
            self.directory,
            max_rows_per_file=max_rows_per_file,
            roll_interval=float(roll_interval),
            compression=compression,
            row_group_size=row_group_size,
        )
        self._lock = threading.Lock()
        self._closed = False
        self._handed = 0  # rows given to the writer: committed + in the open file + dropped
        self._lost = 0

    def export(self, events: Sequence[Event]) -> ExportResult:
        """Append ``events`` as rows (:meth:`export_lines`); ``FAILURE`` on a disk error."""
        lines = [event.line_parts() for event in events]
        return (
            ExportResult.SUCCESS if self.export_lines(lines) == len(lines) else ExportResult.FAILURE
        )

    def export_lines(self, lines: Sequence[LineParts]) -> int:
        """Append one row per line; return how many were written (0: dropped, counted).

        The runtime calls this on the exporter's worker with the lines it
        already built for a JSONL file. On a disk error the rows of the file
        being written are dropped and counted in ``lost``.
        """
        with self._lock:
            if self._closed:
                self._handed += len(lines)
                self._lost += len(lines)
                return 0
            rows = self._rows
            for parts in paced(lines):
                rows.add_line(parts)
            return len(lines) if self._write() is ExportResult.SUCCESS else 0

    def _write(self) -> ExportResult:
        columns, dates = self._rows.take()
        self._handed += len(dates)
        try:
            self._writer.write(columns, dates)
            self._writer.roll_if_due()
        except Exception:  # a full or read-only disk (OSError), or pyarrow refusing a value
            self._abandon()
            return ExportResult.FAILURE
        return ExportResult.SUCCESS

    def _abandon(self) -> None:
        # every row handed over and not in a finished file is lost with the open file
        self._writer.abandon_file()
        self._lost = self._handed - self._writer.rows_committed

    def flush(self, timeout: float | None = None) -> bool:
        """Finish the open file so readers see every row; whether that succeeded.

        Called by the user on a registered exporter, the runtime first hands
        over what is queued for it (and calls this back on its worker).
        """
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            return registration.flush(timeout)
        if not self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return False
        try:
            try:
                self._writer.close_file()
            except Exception:
                self._abandon()
                return False
            return True
        finally:
            self._lock.release()

    def shutdown(self, timeout: float | None = None) -> None:
        """Finish the open file and refuse further rows. Idempotent."""
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            registration.close(timeout)  # the runtime detaches us, then calls shutdown again
            return
        self.flush(timeout)
        with self._lock:
            self._closed = True

    def after_fork_in_child(self) -> None:
        """The child starts its own files (its pid is in their names); the parent's stay its own."""
        self._lock = threading.Lock()
        self._writer.forget_after_fork()
        self._rows.take()
        self._handed = self._lost = 0

    def stats(self) -> dict[str, int]:
        """``rows`` in finished files, ``files``, ``lost``, ``unjoined``, ``open_spans``."""
        return {
            "rows": self._writer.rows_committed,
            "files": self._writer.files_written,
            "lost": self._lost,
            "unjoined": self._rows.unjoined,
            "open_spans": len(self._rows.open),
        }

    def default_name(self) -> str:
        """``parquet:<directory>``, the name :meth:`register` uses by default."""
        return f"parquet:{self.directory}"

    def __repr__(self) -> str:
        return f"ParquetExporter({str(self.directory)!r})"


def write_parquet(
    source: str | os.PathLike[str] | Iterable[Event | Mapping[str, Any]],
    directory: str | os.PathLike[str],
    *,
    max_rows_per_file: int = 1_000_000,
    compression: str = "zstd",
) -> dict[str, int]:
    """Write an ATOF log (a file path, or events / parsed lines) as a Parquet dataset.

    Same layout and schema as :class:`ParquetExporter`. A malformed line of a
    file raises :class:`llmflow.AtofParseError` naming its line number. Returns
    the exporter's :meth:`~ParquetExporter.stats`.
    """
    exporter = ParquetExporter(
        directory,
        max_rows_per_file=max_rows_per_file,
        roll_interval=float("inf"),
        compression=compression,
    )
    items: Iterable[Event | Mapping[str, Any]]
    if isinstance(source, (str, os.PathLike)):
        items = (event.model_dump(mode="json") for event in read_events(source))
    else:
        items = source
    rows = exporter._rows
    for item in items:
        if isinstance(item, Event):
            rows.add_line(item.line_parts())
        else:
            rows.add(item)
        if len(rows) >= 10_000 and exporter._write() is ExportResult.FAILURE:
            raise OSError(f"directory: cannot write Parquet files under {directory}")
    if exporter._write() is ExportResult.FAILURE or not exporter.flush():
        raise OSError(f"directory: cannot write Parquet files under {directory}")
    exporter.shutdown()
    return exporter.stats()
