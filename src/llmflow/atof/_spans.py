"""The span model every log command shares: starts joined with ends, a tree of traces.

A :class:`Span` is one scope (start and end joined) with its facts from
:func:`~llmflow.atof.span_facts`; a :class:`Mark` is a point event. A *trace*
is a top-level scope (or a top-level mark) and everything under it.

:class:`SpanJoiner` consumes records (:func:`~llmflow.atof.iter_records`) one
at a time. In streaming mode (``tree=False``) it holds only the spans still
open, so memory follows the log's concurrency, not its length; ``stats``,
``tail`` and the report's first pass use it. In tree mode it also links every
node to its parent and keeps them all, for ``show`` and the report's traces.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._facts import SpanFacts, span_facts
from ._reader import ProblemHandler, ReadProblem, Record

__all__ = ["Mark", "Node", "Span", "SpanJoiner", "build_forest", "iter_spans"]


@dataclass(slots=True, eq=False)
class Span:
    """One scope: its start joined with its end (``end_us is None`` while open).

    ``start``/``end`` are the wire dicts when the joiner keeps events, else
    ``None``. ``facts`` is available once the span ends (or is closed as open at
    the end of the log). ``trace`` is the uuid of its top-level scope, ``depth`` its
    nesting level (0 for a trace). ``rejected`` marks a guardrail that refused
    the call.
    """

    uuid: str
    parent_uuid: str | None
    name: str
    category: str | None
    attributes: tuple[str, ...]
    start_us: int
    line: int
    trace: str
    depth: int
    start: dict[str, Any] | None = field(default=None, repr=False)
    end: dict[str, Any] | None = field(default=None, repr=False)
    end_us: int | None = None
    rejected: bool = False
    children: list[Node] = field(default_factory=list, repr=False)
    _facts: SpanFacts | None = field(default=None, repr=False)
    _pair: tuple[dict[str, Any], dict[str, Any] | None] | None = field(default=None, repr=False)

    @property
    def facts(self) -> SpanFacts | None:
        """The span's :class:`~llmflow.atof.SpanFacts` (``None`` until it ends or the log does).

        Computed on first access from the joined events, which are then let go.
        """
        if self._facts is None and self._pair is not None:
            start, end = self._pair
            self._facts = span_facts(start, end, duration_us=self.duration_us)
            self._pair = None
        return self._facts

    @property
    def duration_us(self) -> int | None:
        """End minus start in µs, ``None`` while open."""
        return None if self.end_us is None else self.end_us - self.start_us

    @property
    def is_open(self) -> bool:
        """Whether the log holds no end for this span."""
        return self.end_us is None

    @property
    def error(self) -> str | None:
        """``"Type: message"`` of the recorded failure, or ``None``."""
        facts = self.facts
        if facts is None or facts.error_type is None:
            return None
        return f"{facts.error_type}: {facts.error_message or ''}".rstrip(": ")

    @property
    def failed(self) -> bool:
        """Whether the span recorded an error or is a rejecting guardrail."""
        return self.rejected or (self.facts is not None and self.facts.error_type is not None)


@dataclass(slots=True, eq=False)
class Mark:
    """A point-in-time event; ``event`` is its wire dict (always kept: marks are small)."""

    uuid: str
    parent_uuid: str | None
    name: str
    category: str | None
    timestamp_us: int
    line: int
    trace: str
    depth: int
    event: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def start_us(self) -> int:
        """The mark's time (so spans and marks sort together)."""
        return self.timestamp_us


Node = Span | Mark


def rejected_by_guardrail(end: dict[str, Any]) -> bool:
    """Whether a guardrail's end says it refused the call (``data.rejected``)."""
    data = end.get("data")
    return isinstance(data, dict) and data.get("rejected") is True


class SpanJoiner:
    """Join start and end records into :class:`Span` objects, one record at a time.

    :meth:`add` returns a :class:`Mark` at once, a :class:`Span` when its end
    arrives, else ``None``. A second start, or an end without a start, is
    reported to ``on_problem`` and skipped; it never raises. ``keep_events``
    keeps each span's start/end dicts (the report needs the payloads);
    ``tree`` links children to parents and keeps every node in :attr:`roots`.
    ``traces``, when given, limits what ``tree`` and ``keep_events`` keep to the
    nodes of those traces (top-level uuids); other spans are only tracked while
    open, so memory stays bounded by the selection. ``orphan_ends``, when given,
    receives each end record whose start is not open instead of a problem (a
    reader of one part of a file hands them to the reader of the whole).
    """

    def __init__(
        self,
        *,
        keep_events: bool = False,
        tree: bool = False,
        on_problem: ProblemHandler | None = None,
        source: str = "<lines>",
        traces: Collection[str] | None = None,
        orphan_ends: list[Record] | None = None,
    ) -> None:
        self.keep_events = keep_events
        self.tree = tree
        self.traces = traces
        self.orphan_ends = orphan_ends
        self.roots: list[Node] = []
        self._open: dict[str, tuple[Span, dict[str, Any]]] = {}
        self._all: dict[str, Span] = {}
        self._on_problem = on_problem
        self._source = source

    def _problem(self, line: int, message: str) -> None:
        if self._on_problem is not None:
            self._on_problem(ReadProblem(self._source, line, message))

    def _parent(self, parent_uuid: str) -> Span | None:
        opened = self._open.get(parent_uuid)
        if opened is not None:
            return opened[0]
        return self._all.get(parent_uuid) if self.tree else None

    def add(self, record: Record) -> Node | None:
        """Feed one record; see the class docstring for what comes back."""
        line, timestamp_us, event = record
        uuid = event["uuid"]
        kind = event["kind"]
        if kind == "scope" and event["scope_category"] == "end":
            # Ends first: half of all records, and they need no parent lookup.
            opened = self._open.pop(uuid, None)
            if opened is None:
                if self.orphan_ends is not None:
                    self.orphan_ends.append(record)
                else:
                    self._problem(line, f"end without an open start for uuid {uuid}; ignored")
                return None
            span, start = opened
            span.end_us = timestamp_us
            if self.tree:  # the tree lives on: don't hold every event until facts are read
                span._facts = span_facts(start, event, duration_us=timestamp_us - span.start_us)
            else:
                span._pair = (start, event)
            if span.category == "guardrail":
                span.rejected = rejected_by_guardrail(event)
            if span.start is not None:  # kept: keep_events and chosen
                span.end = event
            return span
        parent_uuid = event.get("parent_uuid")
        parent = None if parent_uuid is None else self._parent(parent_uuid)
        trace = uuid if parent is None else parent.trace
        depth = 0 if parent is None else parent.depth + 1
        chosen = self.traces is None or trace in self.traces
        if kind == "mark":
            mark = Mark(
                uuid,
                parent_uuid,
                event["name"],
                event.get("category"),
                timestamp_us,
                line,
                trace,
                depth,
                event,
            )
            if self.tree and chosen:
                (self.roots if parent is None else parent.children).append(mark)
            return mark
        if uuid in self._open or uuid in self._all:
            self._problem(line, f"second start for uuid {uuid}; ignored")
            return None
        attributes = event.get("attributes")
        span = Span(
            uuid,
            parent_uuid,
            event["name"],
            event.get("category"),
            tuple(attributes) if type(attributes) is list else (),
            timestamp_us,
            line,
            trace,
            depth,
            event if self.keep_events and chosen else None,
        )
        self._open[uuid] = (span, event)
        if self.tree and chosen:
            self._all[uuid] = span
            (self.roots if parent is None else parent.children).append(span)
        return None

    def open_span(self, uuid: str) -> Span | None:
        """The span with this uuid if it is still open, else ``None``."""
        opened = self._open.get(uuid)
        return None if opened is None else opened[0]

    def open_records(self) -> list[Record]:
        """The start records of the spans still open, in the order they started."""
        return [(span.line, span.start_us, start) for span, start in self._open.values()]

    def close(self) -> list[Span]:
        """Finish the log: the spans still open, with their facts (``duration_us`` None)."""
        left = []
        for span, start in self._open.values():
            span._facts = span_facts(start, None)
            left.append(span)
        self._open.clear()
        return left


def iter_spans(
    records: Iterable[Record],
    *,
    keep_events: bool = False,
    include_open: bool = True,
    on_problem: ProblemHandler | None = None,
    source: str = "<lines>",
) -> Iterator[Node]:
    """Stream marks and ended spans in log order; open spans last when asked.

    Memory holds only the spans open at a time (see :class:`SpanJoiner`).
    """
    joiner = SpanJoiner(keep_events=keep_events, on_problem=on_problem, source=source)
    add = joiner.add
    for record in records:
        node = add(record)
        if node is not None:
            yield node
    if include_open:
        yield from joiner.close()


def build_forest(
    records: Iterable[Record],
    *,
    keep_events: bool = False,
    on_problem: ProblemHandler | None = None,
    source: str = "<lines>",
    traces: Collection[str] | None = None,
) -> list[Node]:
    """Build the tree in memory: the top-level nodes sorted by time.

    Children are sorted by start time; a node whose parent is not in the log
    is a root. Open spans keep ``end_us = None``. ``traces`` limits the tree to
    those top-level uuids (see :class:`SpanJoiner`).
    """
    joiner = SpanJoiner(
        keep_events=keep_events, tree=True, on_problem=on_problem, source=source, traces=traces
    )
    for record in records:
        joiner.add(record)
    joiner.close()
    stack: list[Node] = list(joiner.roots)
    while stack:
        node = stack.pop()
        if isinstance(node, Span) and node.children:
            node.children.sort(key=_start)
            stack.extend(node.children)
    joiner.roots.sort(key=_start)
    return joiner.roots


def _start(node: Node) -> int:
    return node.start_us
