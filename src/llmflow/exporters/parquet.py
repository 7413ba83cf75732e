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
import itertools
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat
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


_NULL = b"null"
_DAY_US = 86_400_000_000
_Start = tuple[int, "tuple[bytes, bytes] | dict[str, Any]"]
"""An open span: its start's epoch µs, and its line without ``data`` (or its wire fields)."""
_Piece = Any
"""Rows for the writer: a ``pyarrow.Table``, or a ``dict`` of column lists (per-line path)."""

# The layout of an llmflow JSONL line (llmflow._event.line) around ``data``: the head
# ends with ``"data":``, the tail starts with ``data_schema``. Only batches whose lines
# all have it take the columnar path, which keeps profile and metadata as their text.
_STRING = r'"(?:[^"\\]|\\.)*"'
_HEAD_RE = (
    rf'^\{{"kind":{_STRING},"atof_version":{_STRING},"uuid":{_STRING},'
    rf'"parent_uuid":(?:null|{_STRING}),"timestamp":(?:{_STRING}|-?[0-9]+),"name":{_STRING}'
    rf'(?:,"scope_category":(?:null|{_STRING}),'
    rf'"attributes":(?:null|\[(?:{_STRING}(?:,{_STRING})*)?\]))?'
    rf'(?:,"category":(?:null|{_STRING}))?(?:,"data":)?$'
)
"""A head up to ``category_profile`` (or, without one, up to ``data``)."""
_SCHEMA_RE = rf'^,"data_schema":(?:null|\{{"name":{_STRING},"version":{_STRING}\}})$'
_RFC3339_US = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$"
_NULLED_RE = r'"(?:exception\.type|http\.status_code|cost\.usd)":null'
"""An end's metadata setting one of these to null hides the start's value in span_facts."""


def _end_columns(start: _Start | None, end: Mapping[str, Any], end_us: int) -> tuple[Any, ...]:
    """The analysis columns of one end event by :func:`span_facts` (``start``: its open span)."""
    if start is None:
        facts = span_facts(end, None)
    else:
        start_us, source = start
        if isinstance(source, tuple):
            head, tail = source
            source = orjson.loads(head + _NULL + tail)
        facts = span_facts(source, end, duration_us=end_us - start_us)
    cost = facts.cost_usd
    return (
        facts.model,
        facts.provider,
        "ok" if facts.ok else "error",
        facts.error_type,
        facts.status_code,
        facts.duration_us,
        facts.input_tokens,
        facts.output_tokens,
        facts.cached_tokens,
        facts.reasoning_tokens,
        None if cost is None else float(cost),
        facts.tool_call_id,
    )


class _Rows:
    """Rows under construction, and the open spans whose start an end is joined to.

    :meth:`add_lines` builds a batch of llmflow lines column by column in
    pyarrow (:func:`_columnar`: JSON reading, text cutting and casts run in C++
    without the interpreter lock); Python only keeps the open spans. An end
    whose start is in the same batch gets its analysis columns from
    :func:`_joined_columns` (pyarrow compute), any other end from
    :func:`_end_columns` (:func:`llmflow.atof.span_facts`); both agree (tested).
    A batch pyarrow cannot read, or whose lines do not have llmflow's layout,
    goes through :meth:`add_line`, the per-line path: same rows, same errors.

    At most ``max_open_spans`` starts are kept (their line without ``data``);
    beyond that the oldest is forgotten and counted (``unjoined``): its end
    still gets the columns the end itself carries, but no ``duration_us``.
    """

    def __init__(self, max_open_spans: int) -> None:
        self.max_open_spans = max_open_spans
        self.open: OrderedDict[str, _Start] = OrderedDict()
        self.unjoined = 0
        self.pieces: list[_Piece] = []
        self.rows = 0
        self._columns: dict[str, list[Any]] | None = None  # the per-line piece being filled

    def __len__(self) -> int:
        return self.rows

    def add_lines(self, lines: Sequence[LineParts]) -> None:
        """Add one row per line: columnar when pyarrow reads the batch, else line by line."""
        if not lines:
            return
        read = _columnar(lines)
        if read is None:
            for parts in paced(lines):
                self.add_line(parts)
            return
        self._columns = None
        self.pieces.append(self._join(read[0], read[1], lines))
        self.rows += len(lines)

    def _join(self, table: pa.Table, parsed: pa.Table, lines: Sequence[LineParts]) -> _Piece:
        """``table`` plus the analysis columns, each end joined to its start."""
        pa, _ = _pyarrow()
        import pyarrow.compute as pc

        uuids = table.column("uuid").to_pylist()
        stamps = table.column("timestamp_us").to_pylist()
        matched = self._match_columnar(table, uuids, stamps, lines)
        if matched is None:
            matched = self._match(table.column("scope_category").to_pylist(), uuids, stamps, lines)
        joined, others = matched
        if joined:
            metadata = table.column("metadata").take(
                pa.array([row for _, row in joined], pa.int64())
            )
            nulled = pc.match_substring_regex(metadata, _NULLED_RE)
            if pc.any(nulled).as_py():
                flags = nulled.to_pylist()
                others += [
                    (row, (stamps[start], (lines[start][0], lines[start][2])))
                    for (start, row), flag in zip(joined, flags, strict=True)
                    if flag
                ]
                joined = [pair for pair, flag in zip(joined, flags, strict=True) if not flag]
        schema = parquet_schema()
        loads = orjson.loads
        computed = [
            _end_columns(start, loads(lines[row][0] + _NULL + lines[row][2]), stamps[row])
            for row, start in others
        ]
        try:
            parts = [_joined_columns(parsed, joined)] if joined else []
            if computed:
                values = zip(*computed, strict=True)
                parts.append(
                    pa.table(
                        [
                            pa.array(column, schema.field(name).type)
                            for name, column in zip(_ANALYSIS_COLUMNS, values, strict=True)
                        ],
                        names=list(_ANALYSIS_COLUMNS),
                    )
                )
            if not parts:
                return pa.Table.from_arrays(
                    table.columns
                    + [pa.nulls(len(lines), schema.field(n).type) for n in _ANALYSIS_COLUMNS],
                    schema=schema,
                )
            positions: list[int | None] = [None] * len(lines)
            for number, row in enumerate([row for _, row in joined] + [row for row, _ in others]):
                positions[row] = number
            analysis = pa.concat_tables(parts).take(pa.array(positions, pa.int64()))
            return pa.Table.from_arrays(table.columns + analysis.columns, schema=schema)
        except (pa.ArrowException, OverflowError):
            pass
        # a value the schema cannot hold (as the per-line path, the writer will refuse it)
        columns = table.to_pydict()
        for name in _ANALYSIS_COLUMNS:
            columns[name] = [None] * len(lines)
        every = others + [
            (row, (stamps[start], (lines[start][0], lines[start][2]))) for start, row in joined
        ]
        for row, start in every:
            end = loads(lines[row][0] + _NULL + lines[row][2])
            for name, value in zip(
                _ANALYSIS_COLUMNS, _end_columns(start, end, stamps[row]), strict=True
            ):
                columns[name][row] = value
        return columns

    def _match(
        self, phases: list[Any], uuids: list[Any], stamps: list[Any], lines: Sequence[LineParts]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, _Start | None]]]:
        """Keep the open spans line by line (as :meth:`add`); which end has which start.

        Returns ``(start row, end row)`` of the ends joined within the batch, and
        ``(end row, its open span or None)`` of every other end.
        """
        opened, limit = self.open, self.max_open_spans
        here: dict[str, tuple[_Start, int]] = {}  # this batch's starts: entry, row
        joined: list[tuple[int, int]] = []
        others: list[tuple[int, _Start | None]] = []
        for row in paced(range(len(lines))):
            phase = phases[row]
            if phase == "start":
                head, _, tail = lines[row]
                uuid = uuids[row]
                opened[uuid] = begun = (stamps[row], (head, tail))
                here[uuid] = (begun, row)
                if len(opened) > limit:
                    opened.popitem(last=False)
                    self.unjoined += 1
            elif phase == "end":
                uuid = uuids[row]
                entry = opened.pop(uuid, None)
                mine = here.get(uuid)
                if entry is not None and mine is not None and mine[0] is entry:
                    joined.append((mine[1], row))
                else:
                    others.append((row, entry))
        return joined, others

    def _match_columnar(
        self, table: pa.Table, uuids: list[Any], stamps: list[Any], lines: Sequence[LineParts]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, _Start | None]]] | None:
        """:meth:`_match` in pyarrow for the usual batch, ``None`` (nothing changed) otherwise.

        Usual: the batch's starts and its ends have distinct uuids, no start's
        uuid is already open, and no start has to be forgotten. Then an end
        joins the start of the batch with its uuid if that comes first, the
        starts left open are added in order, and only the other ends (and
        those starts) are handled in Python.
        """
        pa, _ = _pyarrow()
        import pyarrow.compute as pc

        opened, no = self.open, pa.scalar(False, pa.bool_())
        phase = table.column("scope_category")
        is_start = pc.fill_null(pc.equal(phase, pa.scalar("start", pa.string())), no)
        is_end = pc.fill_null(pc.equal(phase, pa.scalar("end", pa.string())), no)
        start_rows, end_rows = pc.indices_nonzero(is_start), pc.indices_nonzero(is_end)
        if len(opened) + len(start_rows) > self.max_open_spans:
            return None
        uuid = table.column("uuid")
        start_uuids, end_uuids = uuid.take(start_rows), uuid.take(end_rows)
        if (
            pc.count_distinct(start_uuids).as_py() != len(start_rows)
            or pc.count_distinct(end_uuids).as_py() != len(end_rows)
            or (opened and not opened.keys().isdisjoint(start_uuids.to_pylist()))
        ):
            return None
        start_of_end = start_rows.take(pc.index_in(end_uuids, value_set=start_uuids))
        first = pc.fill_null(pc.less(start_of_end, end_rows), no)
        joined = list(
            zip(
                pc.filter(start_of_end, first).to_pylist(),
                pc.filter(end_rows, first).to_pylist(),
                strict=True,
            )
        )
        others = [
            (row, opened.pop(uuids[row], None))
            for row in pc.filter(end_rows, pc.invert(first)).to_pylist()
        ]
        ended = pc.is_in(start_uuids, value_set=pc.filter(end_uuids, first))
        for row in pc.filter(start_rows, pc.invert(ended)).to_pylist():
            head, _, tail = lines[row]
            opened[uuids[row]] = (stamps[row], (head, tail))
        return joined, others

    def add_line(self, parts: LineParts) -> None:
        """Add one event from its JSONL line: ``data`` is copied as JSON text, never parsed."""
        head, data, tail = parts
        event = orjson.loads(head + _NULL + tail)
        self.add(event, None if data == _NULL else data.decode(), line=(head, tail))

    def add(
        self,
        event: Mapping[str, Any],
        data_text: str | object | None = _FROM_EVENT,
        timestamp_us: int | None = None,
        timestamp_text: str | None = None,
        line: tuple[bytes, bytes] | None = None,
    ) -> None:
        """Add one event in its wire form (a parsed line or ``Event.to_dict()``), line by line.

        ``line``: the event's head and tail, kept for its end when it is a start.
        """
        columns = self._columns
        if columns is None:
            columns = self._columns = {name: [] for name, _, _ in PARQUET_COLUMNS}
            self.pieces.append(columns)
        self.rows += 1
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
        uuid = str(event.get("uuid"))
        if phase == "start":
            source = line if line is not None else {key: event.get(key) for key in _START_KEYS}
            self.open[uuid] = (timestamp_us, source)
            if len(self.open) > self.max_open_spans:
                self.open.popitem(last=False)
                self.unjoined += 1
        if phase != "end":
            for name in _ANALYSIS_COLUMNS:
                columns[name].append(None)
            return
        row = _end_columns(self.open.pop(uuid, None), event, timestamp_us)
        for name, value in zip(_ANALYSIS_COLUMNS, row, strict=True):
            columns[name].append(value)

    def take(self) -> list[_Piece]:
        """Hand over the rows built so far (the open spans stay)."""
        taken = self.pieces
        self.pieces = []
        self._columns = None
        self.rows = 0
        return taken


def _columnar(lines: Sequence[LineParts]) -> tuple[Any, Any] | None:
    """The ATOF columns of a batch of llmflow lines, and its parsed payload objects.

    ``head + null + tail`` of every line are read as one JSON Lines buffer by
    pyarrow with a fixed schema (:func:`_read_schema`); ``category_profile``
    and ``metadata`` are the line's own text, cut out at the keys that the
    layout checks (regular expressions) place, and ``data`` is the payload as
    given. ``None`` when pyarrow refuses the batch (a field of another type,
    bad JSON or UTF-8) or a line is not in llmflow's layout: the caller then
    takes the per-line path. Returns the first 14 columns and the parsed
    ``category_profile``, ``metadata``, ``data_schema`` (what
    :func:`_joined_columns` reads).
    """
    pa, _ = _pyarrow()
    import pyarrow.compute as pc
    import pyarrow.json as pj

    text = pa.string()
    none, empty, null = (pa.scalar(v, text) for v in (None, "", "null"))
    zero, one = pa.scalar(0, pa.int32()), pa.scalar(1, pa.int32())
    try:
        heads, datas, tails = zip(*lines, strict=True)
        buffer = b"".join(chain.from_iterable(zip(heads, repeat(_NULL), tails, strict=False)))
        first = heads[0]
        at = first.find(b'"timestamp":') + 12
        epoch = first[at : at + 1] != b'"'
        parsed = pj.read_json(
            pa.BufferReader(buffer),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(buffer) + 1),
            parse_options=pj.ParseOptions(
                explicit_schema=_read_schema(epoch), unexpected_field_behavior="ignore"
            ),
        )
        if parsed.num_rows != len(lines):
            return None
        # head: the keys up to the profile, then the profile's text and ',"data":'
        split = pc.split_pattern(pa.array(heads, text), ',"category_profile":', max_splits=1)
        with_profile = pc.equal(pc.list_value_length(split), pa.scalar(2, pa.int32()))
        keys = pc.list_element(split, zero)
        rest = pc.list_element(
            pc.if_else(with_profile, split, pa.scalar(["", ',"data":'], split.type)), one
        )
        if not (
            pc.all(pc.match_substring_regex(keys, _HEAD_RE)).as_py()
            and pc.all(pc.ends_with(rest, ',"data":')).as_py()
        ):
            return None
        profile = pc.utf8_slice_codeunits(rest, 0, -8)
        # tail: ',"data_schema":' and its text, ',"metadata":', the metadata's text, '}\n'
        split = pc.split_pattern(pa.array(tails, text), ',"metadata":', max_splits=1)
        if not pc.all(pc.equal(pc.list_value_length(split), pa.scalar(2, pa.int32()))).as_py():
            return None
        head_of_tail, metadata = pc.list_element(split, zero), pc.list_element(split, one)
        if not (
            pc.all(pc.match_substring_regex(head_of_tail, _SCHEMA_RE)).as_py()
            and pc.all(pc.ends_with(metadata, "}\n")).as_py()
        ):
            return None
        texts = {
            "category_profile": profile,
            "metadata": pc.utf8_slice_codeunits(metadata, 0, -2),
            "data_schema": pc.utf8_slice_codeunits(head_of_tail, 15),
        }
        for name, cut in texts.items():
            value = pc.if_else(pc.or_(pc.equal(cut, empty), pc.equal(cut, null)), none, cut)
            # the text cut out is the value the JSON reader saw: an object, or null
            if not pc.all(pc.equal(pc.is_valid(value), pc.is_valid(parsed[name]))).as_py():
                return None
            texts[name] = value
        stamp = parsed.column("timestamp")
        if stamp.null_count:
            return None
        if epoch:
            stamp_us, stamp_text = stamp, pc.cast(stamp, text)
        else:
            if not pc.all(pc.match_substring_regex(stamp, _RFC3339_US)).as_py():
                return None  # not the form llmflow writes: the per-line path parses it
            stamp_us = pc.cast(pc.cast(stamp, pa.timestamp("us", tz="UTC")), pa.int64())
            stamp_text = stamp
        if pc.min(stamp_us).as_py() < 0:
            return None  # before 1970
        # copied in slices (the copy holds the interpreter lock), checked as UTF-8 without it
        data = pa.chunked_array(
            [
                pa.array(datas[at : at + 256], pa.binary())
                for at in paced(range(0, len(datas), 256))
            ],
            pa.binary(),
        ).cast(text)
        data = pc.if_else(pc.equal(data, null), none, data)
        attributes = pc.fill_null(parsed.column("attributes"), pa.scalar([], pa.list_(text)))
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return None
    columns = {
        "kind": parsed.column("kind"),
        "atof_version": parsed.column("atof_version"),
        "uuid": parsed.column("uuid"),
        "parent_uuid": parsed.column("parent_uuid"),
        "timestamp_us": stamp_us,
        "timestamp": stamp_text,
        "name": parsed.column("name"),
        "scope_category": parsed.column("scope_category"),
        "category": parsed.column("category"),
        "attributes": attributes,
        "data": data,
        **texts,
    }
    names = [name for name, _, _ in PARQUET_COLUMNS[:14]]
    payloads = parsed.select(["category_profile", "metadata", "data_schema"])
    payloads = payloads.append_column("timestamp_us", stamp_us)
    return pa.table([columns[name] for name in names], names=names), payloads


def _read_schema(epoch: bool) -> pa.Schema:
    """What :func:`_columnar` reads: the flat fields, and of the payload objects what
    :func:`llmflow.atof.span_facts` reads (a field of another JSON type fails the batch)."""
    pa, _ = _pyarrow()
    text, number = pa.string(), pa.int64()
    usage = pa.struct([(name, number) for name in _TOKEN_KEYS])
    profile = pa.struct(
        [
            ("model_name", text),
            ("tool_call_id", text),
            ("annotated_request", pa.struct([("model", text)])),
            ("annotated_response", pa.struct([("model", text), ("usage", usage)])),
        ]
    )
    metadata = pa.struct(
        [
            ("provider.name", text),
            ("exception.type", text),
            ("http.status_code", number),
            ("cost.usd", pa.float64()),
        ]
    )
    return pa.schema(
        [
            ("kind", text),
            ("atof_version", text),
            ("uuid", text),
            ("parent_uuid", text),
            ("timestamp", number if epoch else text),
            ("name", text),
            ("scope_category", text),
            ("attributes", pa.list_(text)),
            ("category", text),
            ("category_profile", profile),
            ("metadata", metadata),
            ("data_schema", pa.struct([("name", text)])),
        ]
    )


_TOKEN_KEYS = ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
_HEAD_KEYS = (
    "kind",
    "atof_version",
    "uuid",
    "parent_uuid",
    "timestamp",
    "name",
    "scope_category",
    "attributes",
    "category",
    "category_profile",
)


def _wire_line(event: Mapping[str, Any]) -> LineParts:
    """A wire-form event (a parsed line, a dict) as a line in llmflow's layout.

    Every field is written, an absent one as ``null`` (rows read both alike),
    so that :func:`_columnar` reads it as it reads the runtime's lines.
    Raises ``TypeError`` for a value that is not JSON.
    """
    get, dumps = event.get, orjson.dumps
    head = b"".join(
        chain.from_iterable((b',"', key.encode(), b'":', dumps(get(key))) for key in _HEAD_KEYS)
    )
    tail = b',"data_schema":' + dumps(get("data_schema")) + b',"metadata":'
    return b"{" + head[1:] + b',"data":', dumps(get("data")), tail + dumps(get("metadata")) + b"}\n"


def _joined_columns(parsed: pa.Table, joined: Sequence[tuple[int, int]]) -> pa.Table:
    """The analysis columns of ends whose start is in the same batch, in pyarrow compute.

    The vectorized form of :func:`llmflow.atof.span_facts` for what
    :func:`_columnar` parsed: its strict types leave out the values span_facts
    would ignore, and ends whose metadata sets a merged key to null go to
    :func:`_end_columns` instead. A test compares both on generated logs.
    """
    pa, _ = _pyarrow()
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    text = pa.string()
    empty, no = pa.scalar("", text), pa.scalar(False, pa.bool_())
    start = parsed.take(pa.array([row for row, _ in joined], pa.int64()))
    end = parsed.take(pa.array([row for _, row in joined], pa.int64()))
    # one table of (start, end) pairs, projected in one call: one release of the lock
    pairs = pa.table(
        start.columns + end.columns,
        names=[f"start.{name}" for name in start.column_names]
        + [f"end.{name}" for name in end.column_names],
    )

    def field(side: str, column: str, *path: str) -> Any:
        return pc.field(f"{side}.{column}", *path)

    def truthy(value: Any) -> Any:
        return pc.coalesce(pc.not_equal(value, empty), no)

    def schema_provider(side: str) -> Any:
        name = field(side, "data_schema", "name")
        found: Any = pa.scalar(None, text)
        for provider in ("anthropic", "openai"):
            named = pc.or_kleene(
                pc.equal(name, pa.scalar(provider, text)), pc.starts_with(name, provider + "/")
            )
            found = pc.if_else(pc.coalesce(named, no), pa.scalar(provider, text), found)
        return found

    def merged(key: str) -> Any:
        return pc.coalesce(field("end", "metadata", key), field("start", "metadata", key))

    response_model = field("end", "category_profile", "annotated_response", "model")
    start_model = field("start", "category_profile", "model_name")
    request_model = field("start", "category_profile", "annotated_request", "model")
    error_type = merged("exception.type")
    usage = ("category_profile", "annotated_response", "usage")
    expressions = [
        pc.if_else(
            truthy(response_model),
            response_model,
            pc.if_else(truthy(start_model), start_model, request_model),
        ),
        pc.coalesce(
            field("end", "metadata", "provider.name"),
            schema_provider("end"),
            field("start", "metadata", "provider.name"),
            schema_provider("start"),
        ),
        pc.if_else(pc.is_null(error_type), pa.scalar("ok", text), pa.scalar("error", text)),
        error_type,
        merged("http.status_code").cast(pa.int32()),
        pc.subtract(field("end", "timestamp_us"), field("start", "timestamp_us")),
        *(field("end", *usage, key) for key in _TOKEN_KEYS),
        merged("cost.usd"),
        field("start", "category_profile", "tool_call_id"),
    ]
    return ds.dataset(pairs).to_table(
        columns=dict(zip(_ANALYSIS_COLUMNS, expressions, strict=True)), use_threads=False
    )


def _piece_table(piece: _Piece) -> pa.Table:
    """A piece of :meth:`_Rows.take` as a table of the file schema (lists are converted)."""
    pa, _ = _pyarrow()
    if isinstance(piece, dict):
        return pa.Table.from_pydict(piece, schema=parquet_schema())
    return piece


def _day(days_since_epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days_since_epoch * 86_400))


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
        import pyarrow.compute

        self._pc = pyarrow.compute
        self._schema = parquet_schema()
        self._writer: pq.ParquetWriter | None = None
        self._day: int | None = None
        self._temporary: Path | None = None
        self._final: Path | None = None
        self._rows_in_file = 0
        self._opened_at = 0.0
        self._sequence = 0

    @property
    def rows_in_open_file(self) -> int:
        return self._rows_in_file

    def write(self, piece: _Piece) -> None:
        """Append rows (grouped by UTC day, rolling files as configured)."""
        pc = self._pc
        piece = _piece_table(piece)
        total = piece.num_rows
        if not total:
            return
        stamps = piece.column("timestamp_us")
        days = pc.divide(stamps, _DAY_US)  # truncates: one less before 1970 (floor)
        days = pc.if_else(
            pc.greater(pc.multiply(days, _DAY_US), stamps), pc.subtract(days, 1), days
        )
        if pc.min(days).as_py() == pc.max(days).as_py():
            bounds = [0, total]
        else:
            changes = pc.indices_nonzero(pc.not_equal(days[1:], days[:-1])).to_pylist()
            bounds = [0, *(index + 1 for index in changes), total]
        for first, end in itertools.pairwise(bounds):
            start, day = first, days[first].as_py()
            if self._writer is not None and (
                self._day != day or time.monotonic() - self._opened_at >= self.roll_interval
            ):
                self.close_file()
            while start < end:
                if self._writer is None:
                    self._open(day)
                room = self.max_rows_per_file - self._rows_in_file
                stop = min(end, start + room)
                assert self._writer is not None
                self._writer.write_table(
                    piece.slice(start, stop - start), row_group_size=self.row_group_size
                )
                self._rows_in_file += stop - start
                start = stop
                if self._rows_in_file >= self.max_rows_per_file:
                    self.close_file()

    def roll_if_due(self) -> None:
        if self._writer is not None and time.monotonic() - self._opened_at >= self.roll_interval:
            self.close_file()

    def _open(self, day: int) -> None:
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
            self._rows.add_lines(lines)
            return len(lines) if self._write() is ExportResult.SUCCESS else 0

    def _write(self) -> ExportResult:
        handed = len(self._rows)
        pieces = self._rows.take()
        self._handed += handed
        try:
            for piece in pieces:
                self._writer.write(piece)
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
    batch: list[LineParts] = []
    for item in items:
        try:
            batch.append(item.line_parts() if isinstance(item, Event) else _wire_line(item))
        except (TypeError, orjson.JSONEncodeError):
            rows.add_lines(batch)  # a value that is not JSON: the per-line path says what it says
            batch = []
            rows.add(item)  # type: ignore[arg-type]
        if len(batch) + len(rows) >= 10_000:
            rows.add_lines(batch)
            batch = []
            if exporter._write() is ExportResult.FAILURE:
                raise OSError(f"directory: cannot write Parquet files under {directory}")
    rows.add_lines(batch)
    if exporter._write() is ExportResult.FAILURE or not exporter.flush():
        raise OSError(f"directory: cannot write Parquet files under {directory}")
    exporter.shutdown()
    return exporter.stats()
