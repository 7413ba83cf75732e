"""``llmflow stats``: calls, errors, latency, tokens, cost per model, name, provider, tool.

Streams every file once (memory holds the open spans and one latency per
ended call of each group, 8 bytes each), a large plain file split among
``--jobs`` processes by byte range; facts come from
:func:`llmflow.atof.span_facts`. Percentiles are exact, linearly interpolated
between ranks (DuckDB's ``quantile_cont``).

Lines are decoded, checked and joined in one loop (:meth:`_Counter.feed`)
rather than through the reader's generators: the same result as
:func:`~llmflow.atof.iter_records` and :class:`~llmflow.atof.SpanJoiner`
(``tests/cli/test_stats_fast_path.py`` proves it), at about half the CPU time.
With the ``fast`` extra (msgspec) installed, the loop of
:mod:`llmflow.cli._stats_lines` decodes only the fields ``span_facts`` reads
and sums LLM and tool calls without building their facts (proven equal);
without it every line is parsed whole with orjson (parsing around the
``data`` payload in Python was measured slower).
``USE_MSGSPEC = False`` (or ``LLMFLOW_STATS_MSGSPEC=0``) forces the orjson loop.
"""

from __future__ import annotations

import argparse
import gc
import io
import itertools
import math
import os
import re
import sys
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final
from zlib import crc32

import orjson

from llmflow._clock import parse_timestamp
from llmflow.atof import ProblemHandler, ReadProblem, Record, Span, SpanFacts, span_facts
from llmflow.atof._reader import decode_line, source_name
from llmflow.atof._spans import rejected_by_guardrail
from llmflow.atof._timestamps import SECONDS, second_us

from ._format import cost, duration, table, tokens
from ._input import EXIT_OK, EXIT_UNREADABLE, LogInput, UnreadableInput, check_readable

__all__ = ["DIMENSIONS", "Group", "StatsResult", "compute_stats", "percentile", "register", "run"]

DIMENSIONS: Final = ("model", "provider", "name", "tool", "category")
"""``model``/``provider``/``name`` group LLM calls, ``tool`` tool calls, ``category`` all spans."""
_DEFAULT_BY: Final = ("model", "provider", "name", "tool")
_PARALLEL_MIN_BYTES: Final = 16 << 20
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}

USE_MSGSPEC = os.environ.get("LLMFLOW_STATS_MSGSPEC", "1") != "0"
"""Decode lines with msgspec when it is installed (the ``fast`` extra); False: orjson only.

``LLMFLOW_STATS_MSGSPEC=0`` in the environment sets it false (tests and benchmarks).
"""


def _msgspec_lines() -> ModuleType | None:
    """:mod:`llmflow.cli._stats_lines`, or ``None`` (msgspec missing, or ``USE_MSGSPEC`` false)."""
    if not USE_MSGSPEC:
        return None
    try:
        from llmflow.cli import _stats_lines
    except ImportError:
        return None
    return _stats_lines


def _facts(start: dict[str, Any], end: dict[str, Any], duration_us: int) -> SpanFacts:
    return span_facts(start, end, duration_us=duration_us)


def percentile(ordered: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of sorted values, linear between ranks; None if empty."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(slots=True)
class Group:
    """Running sums for one key of one dimension (e.g. model ``gpt-4o``)."""

    key: str
    calls: int = 0
    errors: int = 0
    latencies: array[int] = field(default_factory=lambda: array("q"))
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    cache_hits: int = 0
    retries: int = 0

    def add(self, span: Span) -> None:
        """Count one ended span."""
        facts = span.facts
        assert facts is not None
        self.count(facts, span.rejected)

    def count(self, facts: SpanFacts, rejected: bool = False) -> None:
        """Count the facts of one ended span (``rejected``: a refusing guardrail)."""
        assert facts.duration_us is not None
        retries = facts.retry_attempts
        attempt = facts.attempt
        self.add_call(
            facts.duration_us,
            facts.error_type is not None or rejected,
            facts.input_tokens,
            facts.output_tokens,
            facts.cached_tokens,
            facts.reasoning_tokens,
            facts.cost_usd,
            facts.cache_hit is True,
            (retries - 1 if retries is not None and retries > 1 else 0)
            + (1 if attempt is not None and attempt > 0 else 0),
        )

    def add_call(
        self,
        duration_us: int,
        failed: bool,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_tokens: int | None,
        reasoning_tokens: int | None,
        cost_usd: float | None,
        cache_hit: bool,
        retries: int,
    ) -> None:
        """Count one ended span from its facts (``None``: not recorded); :meth:`count`'s core."""
        self.calls += 1
        if failed:
            self.errors += 1
        self.latencies.append(duration_us)
        if input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + input_tokens
        if output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + output_tokens
        if cached_tokens is not None:
            self.cached_tokens = (self.cached_tokens or 0) + cached_tokens
        if reasoning_tokens is not None:
            self.reasoning_tokens = (self.reasoning_tokens or 0) + reasoning_tokens
        if cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost_usd
        if cache_hit:
            self.cache_hits += 1
        if retries:
            self.retries += retries

    def merge(self, other: Group) -> None:
        """Add the counts of the same key from another part of a log."""
        self.calls += other.calls
        self.errors += other.errors
        self.latencies.extend(other.latencies)
        self.input_tokens = _sum(self.input_tokens, other.input_tokens)
        self.output_tokens = _sum(self.output_tokens, other.output_tokens)
        self.cached_tokens = _sum(self.cached_tokens, other.cached_tokens)
        self.reasoning_tokens = _sum(self.reasoning_tokens, other.reasoning_tokens)
        if other.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + other.cost_usd
        self.cache_hits += other.cache_hits
        self.retries += other.retries

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``--json`` (latencies in µs)."""
        ordered = sorted(self.latencies)
        return {
            "key": self.key,
            "calls": self.calls,
            "errors": self.errors,
            "latency_us": {
                "p50": _round(percentile(ordered, 0.50)),
                "p95": _round(percentile(ordered, 0.95)),
                "p99": _round(percentile(ordered, 0.99)),
                "mean": _round(sum(ordered) / len(ordered)) if ordered else None,
                "max": ordered[-1] if ordered else None,
            },
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cached": self.cached_tokens,
                "reasoning": self.reasoning_tokens,
            },
            # Rounded to a nano-dollar: float sums differ in the last bits with
            # the order of addition (one process or several).
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 9),
            "cache_hits": self.cache_hits,
            "retries": self.retries,
        }


def _round(value: float | None) -> float | None:
    """Interpolated latencies to a thousandth of a µs (no float noise in the JSON)."""
    return None if value is None else round(value, 3)


def _sum(a: int | None, b: int | None) -> int | None:
    return a if b is None else (b if a is None else a + b)


@dataclass(slots=True)
class StatsResult:
    """Everything ``stats`` computed: groups per dimension plus counts of the input."""

    groups: dict[str, dict[str, Group]]
    spans: int = 0
    open_spans: int = 0
    marks: int = 0
    lines: int = 0
    skipped_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The document ``stats --json`` prints."""
        return {
            "spans": self.spans,
            "open_spans": self.open_spans,
            "marks": self.marks,
            "lines": self.lines,
            "skipped_lines": self.skipped_lines,
            "groups": {
                dimension: [g.to_dict() for g in _ordered(groups)]
                for dimension, groups in self.groups.items()
            },
        }


def _ordered(groups: dict[str, Group]) -> list[Group]:
    return sorted(groups.values(), key=lambda g: (-g.calls, g.key))


class _Counter:
    """Joins starts with ends and counts each ended span into the chosen groups.

    The streaming core of ``stats``: memory holds the spans still open (start
    time, line, start dict) and the groups. :meth:`feed` reads raw lines;
    :meth:`add` takes one decoded record. A second start of an open span, or an
    end without an open start, is reported as :class:`~llmflow.atof.SpanJoiner`
    reports it (or, with ``orphan_ends``, kept for the reader of the whole file).
    """

    def __init__(
        self,
        by: Sequence[str],
        since_us: int | None,
        report: ProblemHandler,
        source: str,
        *,
        orphan_ends: list[Record] | None = None,
        record_starts: bool = False,
    ) -> None:
        self.result = StatsResult({dimension: {} for dimension in by})
        self.since_us = since_us
        self.report = report
        self.source = source
        self.orphan_ends = orphan_ends
        self.blank_tail = 0
        """How many blank lines ended what :meth:`feed` read last."""
        self.open: dict[str, tuple[int, int, Any]] = {}
        """uuid to (start µs, line, start event: a dict, or a msgspec ``Line``)."""
        self.counted_categories: frozenset[str] | None = None
        """The categories :meth:`ended` counts facts of (``None``: all, with ``--by category``)."""
        if "category" not in by:
            self.counted_categories = frozenset(
                (["llm"] if {"model", "provider", "name"}.intersection(by) else [])
                + (["tool"] if "tool" in by else [])
            )
        self._lines = _msgspec_lines()
        self._span_facts: Callable[[Any, Any, int], SpanFacts] = _facts
        self._rejected: Callable[[Any], bool] = rejected_by_guardrail
        if self._lines is not None:
            self._span_facts, self._rejected = self._lines.facts, self._lines.rejected
        self.started: array[int] | None = None
        """With ``record_starts``: the CRC-32 of each uuid started (``_count_in_parallel``)."""
        if record_starts:
            self.started = array("I")
        groups = self.result.groups
        self._model, self._provider = groups.get("model"), groups.get("provider")
        self._name, self._tool = groups.get("name"), groups.get("tool")
        self._category = groups.get("category")

    def add(self, record: Record) -> None:
        """Count one record (one decoded line)."""
        line, when, event = record
        uuid = event["uuid"]
        if event["kind"] == "mark":
            self.result.marks += 1
        elif event["scope_category"] == "end":
            opened = self.open.pop(uuid, None)
            if opened is not None:
                self.ended(opened[2], event, opened[0], when)
            elif self.orphan_ends is not None:
                self.orphan_ends.append(record)
            else:
                self._problem(line, f"end without an open start for uuid {uuid}; ignored")
        elif uuid in self.open:
            self._problem(line, f"second start for uuid {uuid}; ignored")
        else:
            self.open[uuid] = (when, line, event)
            if self.started is not None:
                self.started.append(crc32(uuid.encode()))

    def _problem(self, line: int, message: str) -> None:
        self.report(ReadProblem(self.source, line, message))

    def feed(self, lines: Iterable[bytes], number: int = 0) -> int:
        """Count every line of ``lines`` (numbered from ``number + 1``); return the last number.

        The same as :func:`~llmflow.atof._reader.decode_line` then :meth:`add`
        for each line, with the common case (a line as llmflow writes it:
        an object with the usual field types and a ``...Z`` timestamp) decoded
        and joined inline; any other line takes that general path.
        """
        loads, decode_error, decode = orjson.loads, orjson.JSONDecodeError, decode_line
        seconds, second_of = SECONDS, second_us
        opened = self.open
        started = self.started
        pop, ended, add = opened.pop, self.ended, self.add
        result, report, source = self.result, self.report, self.source
        blank_start = blank_end = -1
        if self._lines is not None:
            return int(self._lines.feed(self, lines, number))
        for raw in lines:
            number += 1
            try:
                event = loads(raw)
            except decode_error:
                if raw.strip():
                    decode(raw, number, source, report)  # reports it
                elif blank_end == number - 1:
                    blank_end = number
                else:
                    blank_start = blank_end = number
                continue
            if type(event) is dict:
                get = event.get
                stamp = get("timestamp")
                uuid = get("uuid")
                parent = get("parent_uuid")
                if (
                    type(stamp) is str
                    and len(stamp) == 27
                    and stamp[19] == "."
                    and stamp[26] == "Z"
                    and stamp.isascii()
                    and type(uuid) is str
                    and type(get("name")) is str
                    and (parent is None or type(parent) is str)
                ):
                    second = seconds.get(stamp[:19])
                    if second is None:
                        second = second_of(stamp[:19])
                    micro = stamp[20:26]
                    if second is not None and micro.isdigit():
                        kind = get("kind")
                        if kind == "scope":
                            phase = get("scope_category")
                            if phase == "end":
                                start = pop(uuid, None)
                                if start is not None:
                                    ended(start[2], event, start[0], second + int(micro))
                                    continue
                            elif phase == "start" and uuid not in opened:
                                opened[uuid] = (second + int(micro), number, event)
                                if started is not None:
                                    started.append(crc32(uuid.encode()))
                                continue
                        elif kind == "mark":
                            result.marks += 1
                            continue
            record = decode(raw, number, source, report)
            if record is not None:
                add(record)
        self.blank_tail = number - blank_start + 1 if blank_end == number else 0
        return number

    def ended(self, start: Any, end: Any, start_us: int, end_us: int) -> None:
        """Count a span whose start and end are joined.

        ``start``/``end`` are event dicts or msgspec ``Line`` structs.
        """
        if self.since_us is not None and start_us < self.since_us:
            return
        self.result.spans += 1
        category = start.get("category") if type(start) is dict else start.category
        if category == "llm":
            if (
                self._model is None
                and self._provider is None
                and self._name is None
                and self._category is None
            ):
                return
            facts = self._span_facts(start, end, end_us - start_us)
            self.count_llm(facts)
        elif category == "tool" and self._tool is not None:
            facts = self._span_facts(start, end, end_us - start_us)
            self.count_tool(facts)
        elif self._category is not None:
            facts = self._span_facts(start, end, end_us - start_us)
        else:
            return
        if self._category is not None:
            rejected = category == "guardrail" and self._rejected(end)
            # A category that is not a string (a broken log) counts as none.
            _put(
                self._category,
                category if type(category) is str and category else "(none)",
                facts,
                rejected,
            )

    def count_llm(self, facts: SpanFacts) -> None:
        """Count the facts of an ended LLM call into the model, provider and name groups."""
        # Only a guardrail can be rejected; facts.name is the start's name.
        if self._model is not None:
            _put(self._model, facts.model or "(unknown)", facts, False)
        if self._provider is not None:
            _put(self._provider, facts.provider or "(unknown)", facts, False)
        if self._name is not None:
            _put(self._name, facts.name, facts, False)

    def count_tool(self, facts: SpanFacts) -> None:
        """Count the facts of an ended tool call into the tool groups."""
        if self._tool is not None:
            _put(self._tool, facts.name, facts, False)

    def close(self) -> None:
        """Count the spans still open at the end of a log (they are not in the groups)."""
        since = self.since_us
        self.result.open_spans += sum(
            1 for start_us, _, _ in self.open.values() if since is None or start_us >= since
        )
        self.open.clear()

    def open_records(self) -> list[Record]:
        """The start records of the spans still open, in the order they started (as dicts)."""
        lines = self._lines
        return [
            (line, when, event if type(event) is dict or lines is None else lines.event_of(event))
            for when, line, event in self.open.values()
        ]

    def merge(self, other: StatsResult) -> None:
        """Add a partial result (another part of the same log) into this one."""
        result = self.result
        result.spans += other.spans
        result.marks += other.marks
        for dimension, groups in other.groups.items():
            mine = result.groups[dimension]
            for key, group in groups.items():
                if key in mine:
                    mine[key].merge(group)
                else:
                    mine[key] = group


def _put(groups: dict[str, Group], key: str, facts: SpanFacts, rejected: bool) -> None:
    group = groups.get(key)
    if group is None:
        group = groups[key] = Group(key)
    group.count(facts, rejected)


@dataclass(slots=True)
class _Part:
    """What a worker found in one byte range of a log."""

    result: StatsResult
    lines: int
    problems: list[ReadProblem]
    open_starts: list[Record]
    orphan_ends: list[Record]
    blank_tail: int
    started: array[int]
    """The CRC-32s of the uuids this part started (4 bytes a span)."""


class _Range(io.RawIOBase):
    """The bytes ``[begin, end)`` of a file, as a raw stream (buffered, it yields lines)."""

    def __init__(self, path: str, begin: int, end: int) -> None:
        self._file = io.FileIO(path, "rb")
        self._file.seek(begin)
        self._left = end - begin

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:size]) or 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector while counting.

    The decoded lines and what ``stats`` keeps of them (dicts, tuples,
    arrays) form no reference cycles, so the collector would only walk them
    in vain: about 5 % of the CPU time of a large log.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _count_part(
    path: str, begin: int, end: int, by: Sequence[str], since: int | None, first: bool = False
) -> _Part:
    """Worker: read the lines starting in ``[begin, end)``; numbers are relative to ``begin``.

    The ``first`` part records no started uuids: no span is open before it.
    """
    problems: list[ReadProblem] = []
    orphans: list[Record] = []
    counter = _Counter(
        by, since, problems.append, path, orphan_ends=orphans, record_starts=not first
    )
    with _no_cycle_collection(), io.BufferedReader(_Range(path, begin, end), 1 << 20) as handle:
        number = counter.feed(handle)
    started = counter.started if counter.started is not None else array("I")
    return _Part(
        counter.result,
        number,
        problems,
        counter.open_records(),
        orphans,
        counter.blank_tail,
        started,
    )


def _restarts(open_uuids: Collection[str], started: array[int]) -> bool:
    """Whether a part may start again a span still open before it (a damaged log).

    A worker cannot know which spans earlier parts left open, so it would join
    such a second start with its end where one process reports it and closes the
    first. Tested by hash: a collision only costs a needless serial re-read.
    """
    keys = {crc32(uuid.encode()) for uuid in open_uuids}
    if len(keys) <= 64:  # usually a few: scan the array in C rather than build a set of it
        return any(key in started for key in keys)
    return not keys.isdisjoint(started)


def _boundaries(path: str, parts: int) -> list[int]:
    """Byte offsets splitting a file into ``parts`` ranges that start at line starts."""
    size = os.path.getsize(path)
    offsets = [0]
    with open(path, "rb") as handle:
        for index in range(1, parts):
            handle.seek(size * index // parts)
            handle.readline()  # finish the line the cut fell into
            offset = handle.tell()
            if offset > offsets[-1] and offset < size:
                offsets.append(offset)
    offsets.append(size)
    return offsets


def _splittable(path: str, jobs: int) -> bool:
    if jobs < 2 or path == "-":
        return False
    try:
        if os.path.getsize(path) < _PARALLEL_MIN_BYTES:
            return False
        with open(path, "rb") as handle:
            return handle.read(2) != b"\x1f\x8b"  # gzip is read as one stream
    except OSError:
        return False


def _count_in_parallel(
    logs: LogInput, path: str, by: Sequence[str], since: int | None, jobs: int
) -> tuple[_Counter, int] | None:
    """Count a large plain file in ``jobs`` processes, one byte range each.

    A span whose start and end fall in different ranges comes back as an open
    start from one worker and an orphan end from a later one; they are joined
    here, in file order, so the result equals the single-process one. Returns
    the counter (its open spans not yet closed) and the file's lines, or
    ``None`` (nothing reported yet) when a part may start again a span left
    open before it: only one process reading in order counts that as the
    single-process reader does.
    """
    import multiprocessing  # only for a large file: ~10 ms of start-up
    from concurrent.futures import ProcessPoolExecutor

    offsets = _boundaries(path, jobs)
    ranges = list(itertools.pairwise(offsets))
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    # The first range is read here while the workers read the others.
    with ProcessPoolExecutor(max_workers=max(len(ranges) - 1, 1), mp_context=context) as pool:
        futures = [
            pool.submit(_count_part, path, begin, end, by, since) for begin, end in ranges[1:]
        ]
        parts = [_count_part(path, *ranges[0], by, since, first=True)]
        parts.extend(future.result() for future in futures)
    reports: list[ReadProblem] = []
    counter = _Counter(by, since, reports.append, path)
    shift = 0
    for part in parts:
        if counter.open and _restarts(counter.open, part.started):
            return None
        for problem in part.problems:
            reports.append(
                ReadProblem(problem.source, problem.line + shift, problem.message, problem.cut_off)
            )
        counter.merge(part.result)
        for line, when, event in part.orphan_ends:
            counter.add((line + shift, when, event))
        for line, when, event in part.open_starts:
            counter.add((line + shift, when, event))
        shift += part.lines
    for problem in reports:
        logs.report(problem)
    counter.report = logs.report
    return counter, shift - (parts[-1].blank_tail if parts else 0)


def compute_stats(
    logs: LogInput,
    by: Sequence[str] = _DEFAULT_BY,
    since_us: int | None = None,
    *,
    jobs: int = 1,
) -> StatsResult:
    """Aggregate every file of ``logs`` (raises ``UnreadableInput``).

    Each file is read once; a plain file of 16 MiB or more is split among
    ``jobs`` processes when ``jobs > 1``, with the same result.
    """
    total: _Counter | None = None
    for path in logs.paths:
        counted = (
            _count_in_parallel(logs, path, by, since_us, jobs) if _splittable(path, jobs) else None
        )
        if counted is not None:
            counter, lines = counted
        else:
            counter = _Counter(by, since_us, logs.report, source_name(path))
            with _no_cycle_collection(), logs.reading(path) as handle:
                lines = counter.feed(logs.raw_lines(handle)) - counter.blank_tail
        # Lines, not records: skipped lines count too (a blank tail does not).
        logs.lines += lines
        counter.close()
        if total is None:
            total = counter
        else:
            total.merge(counter.result)
            total.result.open_spans += counter.result.open_spans
    result = total.result if total is not None else StatsResult({d: {} for d in by})
    result.lines = logs.lines
    result.skipped_lines = logs.problems
    return result


def parse_since(value: str, now_us: int | None = None) -> int:
    """``--since``: an RFC 3339 time, epoch µs, or a span back from now (``30m``, ``2h``, ``1d``).

    Raises ``ValueError`` naming what was expected.
    """
    match = _RELATIVE.match(value.strip())
    if match:
        now = now_us if now_us is not None else time.time_ns() // 1000
        return now - int(float(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000)
    if value.isdigit():
        return int(value)
    try:
        return parse_timestamp(value)
    except ValueError:
        raise ValueError(
            f"--since: expected an RFC 3339 time with offset (2026-01-01T00:00:00Z), epoch µs, "
            f"or a duration such as 30m, 2h, 1d; got {value!r}"
        ) from None


_HEADER: Final = (
    "calls",
    "errors",
    "p50",
    "p95",
    "p99",
    "in",
    "out",
    "cached",
    "reasoning",
    "cost",
    "cache hits",
    "retries",
)


def render_text(result: StatsResult) -> str:
    """The human-readable tables, one per dimension."""
    blocks = [
        f"{result.spans:,} spans ({result.open_spans:,} still open, not counted), "
        f"{result.marks:,} marks, {result.lines:,} lines"
        + (f", {result.skipped_lines:,} skipped" if result.skipped_lines else "")
    ]
    for dimension, groups in result.groups.items():
        rows: list[list[str]] = []
        for group in _ordered(groups):
            ordered = sorted(group.latencies)
            rows.append(
                [
                    group.key,
                    f"{group.calls:,}",
                    f"{group.errors:,}",
                    duration(percentile(ordered, 0.50)),
                    duration(percentile(ordered, 0.95)),
                    duration(percentile(ordered, 0.99)),
                    tokens(group.input_tokens),
                    tokens(group.output_tokens),
                    tokens(group.cached_tokens),
                    tokens(group.reasoning_tokens),
                    cost(group.cost_usd),
                    f"{group.cache_hits:,}",
                    f"{group.retries:,}",
                ]
            )
        title = f"by {dimension}" + (" (tool calls)" if dimension == "tool" else "")
        if dimension in ("model", "provider", "name"):
            title += " (llm calls)"
        body = table([dimension, *_HEADER], rows) if rows else "  (none)"
        blocks.append(f"{title}\n{body}")
    return "\n\n".join(blocks)


def _split_by(values: Iterable[str] | None) -> list[str]:
    chosen: list[str] = []
    for value in values or ():
        for item in value.split(","):
            if item.strip() and item.strip() not in chosen:
                chosen.append(item.strip())
    return chosen or list(_DEFAULT_BY)


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow stats`` to its parser."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="ATOF JSONL file(s), .gz, or -")
    parser.add_argument(
        "--by",
        action="append",
        metavar="DIM",
        help=f"group by {', '.join(DIMENSIONS)} (repeat or comma-separate; "
        f"default {','.join(_DEFAULT_BY)})",
    )
    parser.add_argument("--since", help="only spans started at/after: RFC 3339, epoch µs, or 2h")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for a large plain file (default: the CPU count; 1 = one process)",
    )


def run(args: argparse.Namespace) -> int:
    """Run ``stats``; returns the exit code."""
    by = _split_by(args.by)
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        print(
            f"llmflow stats: --by: expected one of {', '.join(DIMENSIONS)}, got {unknown[0]!r}",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    since = None
    if args.since is not None:
        try:
            since = parse_since(args.since)
        except ValueError as exc:
            print(f"llmflow stats: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
    error = check_readable(args.paths, "stats")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    logs = LogInput(args.paths, command="stats")
    try:
        result = compute_stats(logs, by, since, jobs=max(args.jobs, 1))
    except UnreadableInput as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        document = {"files": list(args.paths), **result.to_dict()}
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_text(result))
    logs.finish()
    return EXIT_OK
