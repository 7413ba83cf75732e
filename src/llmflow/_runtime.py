"""The runtime: configuration, registries, delivery and diagnostics of one process.

A process has one default runtime, created lazily by :func:`get_runtime`.
Explicit :class:`Runtime` objects give isolation (tests, embedding) and can be
installed as the default. A runtime that was shut down refuses further use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ._clock import new_uuid7, now_us
from ._dispatch import Dispatcher, OverflowPolicy
from ._errors import DuplicateRegistrationError, RuntimeShutdownError, describe_exception
from ._event import _UNSET as UNSET
from ._event import Event, LineParts, Origin, line
from ._json import dumps, metadata_snapshot, snapshot
from ._registry import Registry
from ._types import DataSchema, Json
from .exporters._base import Exporter, set_default_runtime
from .exporters._worker import ExporterSlot

__all__ = [
    "Diagnostics",
    "EventHook",
    "FilteredHook",
    "Runtime",
    "SanitizerKind",
    "get_runtime",
]

SanitizerKind = Literal["mark", "scope_start", "scope_end"]
EventHook = Callable[[Event], "Mapping[str, Json] | None"]
"""Signature of event sanitizers and metadata injectors."""
Subscriber = Callable[[Event], object]
Recorder = Callable[
    [
        Origin,
        Literal["start", "end"] | None,
        int,
        bytes | None,
        DataSchema | None,
        bytes | None,
        bytes | None,
    ],
    None,
]
"""``record(origin, phase, timestamp_us, data_raw, data_schema, metadata_raw, profile_raw)``."""

_SANITIZABLE = frozenset({"data", "category_profile", "metadata"})


def _recorder(build: Callable[..., Event | LineParts]) -> Callable[..., None]:
    """A ``Runtime`` method that queues what ``build`` makes of an event's fields.

    ``build`` is :class:`Event` or :func:`line` (the event as its JSONL line);
    the rest (open-span bookkeeping, the byte bound of big payloads) is the same.
    """

    def record(
        self: Runtime,
        origin: Origin,
        phase: Literal["start", "end"] | None,
        timestamp_us: int,
        data_raw: bytes | None,
        data_schema: DataSchema | None,
        metadata_raw: bytes | None,
        profile_raw: bytes | None,
    ) -> None:
        item = build(origin, phase, timestamp_us, data_raw, data_schema, metadata_raw, profile_raw)
        if phase is not None:
            if phase == "start":
                self._open_spans[origin] = profile_raw
            else:
                self._open_spans.pop(origin, None)
        if data_raw is not None and len(data_raw) >= BIG_PAYLOAD:
            self._dispatcher.put_big(item, len(data_raw))
        else:
            self.emit(item)

    return record


EventPhase = Literal["start", "end", "mark"]
PHASES: Final[frozenset[str]] = frozenset(("start", "end", "mark"))


class FilteredHook:
    """A metadata injector that runs only on the events it selects.

    ``categories`` (``None``: all) and ``phases`` (``"start"``, ``"end"``,
    ``"mark"``; ``None``: all) are what the injector declared at registration.
    Knowing them lets the runtime queue every other event as its finished line
    (see :meth:`Runtime._reconfigure`).
    """

    __slots__ = ("categories", "fn", "phases")

    def __init__(
        self,
        fn: EventHook,
        categories: frozenset[str] | None,
        phases: frozenset[str] | None,
    ) -> None:
        self.fn = fn
        self.categories = categories
        self.phases = phases

    def selects(self, category: str | None, phase: str) -> bool:
        """Whether an event of ``category`` in ``phase`` (``"mark"`` for marks) is selected."""
        return (self.categories is None or category in self.categories) and (
            self.phases is None or phase in self.phases
        )

    def __call__(self, event: Event) -> Mapping[str, Json] | None:
        if self.selects(event.category, event.scope_category or "mark"):
            return self.fn(event)
        return None

    def __repr__(self) -> str:
        return f"FilteredHook({self.fn!r}, categories={self.categories}, phases={self.phases})"


@dataclass(frozen=True)
class Diagnostics:
    """A snapshot of a runtime's health counters.

    Events handed to the runtime are counted once they settle:

    * ``delivered``: written by every exporter on the delivery thread (and
      shown to the subscribers);
    * ``failed``: not written: its line could not be built, or an exporter on
      the delivery thread rejected it (the largest count over those exporters);
    * ``queued``: items still in the queue (pending flush barriers included);
    * ``dropped``: discarded by a full queue under ``overflow="drop"`` (always
      0 under ``"block"``).

    ``emitted`` is computed, so ``emitted == delivered + failed + queued +
    dropped`` always holds; it equals the number of events the application
    emitted whenever no batch is in flight (e.g. after :meth:`Runtime.flush`).
    The ``llmflow.events_dropped`` mark that reports drops is not counted.

    ``exporters[name]`` holds one exporter's counters: ``received`` (handed
    to it), ``exported`` (in batches it accepted), ``failed`` (in batches it
    rejected or raised on, or whose line could not be built), ``dropped``
    (background exporters only: overflowed its buffer or still buffered at
    shutdown), ``queued`` (background exporters only: in its buffer), plus
    the keys its ``stats()`` returns that do not clash with these. Once
    ``flush()`` returned ``True``, ``received == exported + failed + dropped``
    (+ ``queued``) holds for every exporter; background exporters are not part
    of the runtime-level ``delivered``/``failed``.

    ``failures`` counts isolated failures by source, e.g.
    ``{"subscriber:audit": 2, "sanitize_request:pii": 1}``; ``last_errors``
    keeps the last ``"Type: message"`` per source.
    """

    delivered: int
    queued: int
    dropped: int
    failures: Mapping[str, int] = field(default_factory=dict)
    last_errors: Mapping[str, str] = field(default_factory=dict)
    failed: int = 0
    exporters: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def emitted(self) -> int:
        """Events handed to the runtime (delivered, failed, queued or dropped)."""
        return self.delivered + self.failed + self.queued + self.dropped

    def failure_count(self, prefix: str = "") -> int:
        """Total failures whose source starts with ``prefix`` (all when empty)."""
        return sum(n for source, n in self.failures.items() if source.startswith(prefix))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for logging."""
        return {
            "emitted": self.emitted,
            "delivered": self.delivered,
            "failed": self.failed,
            "queued": self.queued,
            "dropped": self.dropped,
            "exporters": {name: dict(counts) for name, counts in self.exporters.items()},
            "failures": dict(self.failures),
            "last_errors": dict(self.last_errors),
        }


class Runtime:
    """Owns the event queue, the delivery worker, registries and counters.

    ``queue_capacity`` bounds the queue; ``overflow`` is ``"block"`` (default:
    a full queue makes emitters wait, nothing is lost) or ``"drop"`` (count and
    discard, reported as a mark once delivery resumes). ``timestamp_format`` is
    ``"rfc3339"`` (default) or ``"epoch_us"``.
    """

    def __init__(
        self,
        *,
        queue_capacity: int = 4_096,
        queue_max_bytes: int = 64 * 1024 * 1024,
        overflow: OverflowPolicy = "block",
        timestamp_format: Literal["rfc3339", "epoch_us"] = "rfc3339",
    ) -> None:
        if type(queue_capacity) is not int or queue_capacity < 1:
            raise ValueError(f"queue_capacity: expected an int >= 1, got {queue_capacity!r}")
        if type(queue_max_bytes) is not int or queue_max_bytes < 1:
            raise ValueError(f"queue_max_bytes: expected an int >= 1, got {queue_max_bytes!r}")
        if overflow not in ("block", "drop"):
            raise ValueError(f"overflow: expected 'block' or 'drop', got {overflow!r}")
        if timestamp_format not in ("rfc3339", "epoch_us"):
            raise ValueError(
                f"timestamp_format: expected 'rfc3339' or 'epoch_us', got {timestamp_format!r}"
            )
        self.epoch_timestamps = timestamp_format == "epoch_us"
        self.closed = False
        self.subscribers: Registry[Subscriber] = Registry("subscriber", self._reconfigure)
        self.sanitizers: dict[SanitizerKind, Registry[EventHook]] = {
            kind: Registry(f"{kind} sanitizer", self._reconfigure)
            for kind in ("mark", "scope_start", "scope_end")
        }
        self.injectors: Registry[EventHook] = Registry("metadata injector", self._reconfigure)
        self.middleware: dict[str, Registry[Callable[..., Any]]] = {}
        self._exporters: dict[str, ExporterSlot] = {}
        self._sinks: tuple[ExporterSlot, ...] = ()
        self._config_lock = threading.Lock()
        self._failures: Counter[str] = Counter()
        self._last_errors: dict[str, str] = {}
        self._failure_lock = threading.Lock()
        self._selective: tuple[FilteredHook, ...] = ()
        self._open_spans: dict[Origin, bytes | None] = {}
        """Spans started and not yet ended, with their start's profile (see ``end_abandoned``)."""
        self._dispatcher = Dispatcher(
            capacity=queue_capacity,
            max_bytes=queue_max_bytes,
            overflow=overflow,
            deliver=self._deliver,
            flush_sinks=self._flush_exporters,
            report_drops=self._report_drops,
            on_error=lambda exc: self.count_failure("delivery:worker", exc),
        )
        self.emit: Callable[[Event | LineParts], None] = self._dispatcher.put
        """Queue an event (or its line); never waits for delivery. After
        :meth:`shutdown` it raises :class:`RuntimeShutdownError` instead."""
        self.record: Recorder = self._record_event
        """Emit one event from its fields, already snapshotted: ``(origin, phase,
        timestamp_us, data_raw, data_schema, metadata_raw, profile_raw)``.
        Chosen by :meth:`_reconfigure`."""
        _RUNTIMES.add(self)

    # -- ownership -----------------------------------------------------------------

    def check_open(self) -> None:
        """Raise :class:`RuntimeShutdownError` if this runtime was shut down."""
        if self.closed:
            raise RuntimeShutdownError(
                "this llmflow Runtime was shut down and refuses further use; "
                "create a new Runtime() and install() it"
            )

    def install(self) -> Runtime | None:
        """Make this runtime the process default; return the previous default."""
        global _default
        self.check_open()
        with _default_lock:
            previous, _default = _default, self
        return previous

    def shutdown(self, timeout: float | None = 5.0) -> None:
        """Deliver what is queued, flush and shut down exporters, refuse further use.

        When the queue is not delivered within ``timeout``, exporters on the
        delivery thread are left open for the worker to finish (counted under
        ``delivery:shutdown``). Idempotent. If this is the default runtime, the
        next :func:`get_runtime` call creates a fresh one.
        """
        global _default
        if self.closed:
            return
        _check_timeout(timeout)
        with self._config_lock:
            self.closed = True
            self.emit = self.record = self._emit_after_shutdown
        deadline = _deadline(timeout)
        finished = self._dispatcher.stop(timeout)
        if not finished:
            # The worker still writes: closing its exporters under it would turn
            # queued events into failures (or, with a reused descriptor, write them
            # elsewhere). They stay open; the worker ends after the queue.
            self.count_failure(
                "delivery:shutdown",
                TimeoutError(f"shutdown timed out with {self._dispatcher.depth} items queued"),
            )
        for slot in list(self._exporters.values()):
            _detach(slot.exporter)
            if finished or slot.background:
                slot.shutdown(deadline)
        with _default_lock:
            if _default is self:
                _default = None

    # -- emission ------------------------------------------------------------------

    def _emit_after_shutdown(self, *_event: object) -> None:
        self.check_open()

    # ``record`` is one of these, chosen by :meth:`_reconfigure`.
    _record_event = _recorder(Event)
    _record_line = _recorder(line)

    def _record_selected(
        self,
        origin: Origin,
        phase: Literal["start", "end"] | None,
        timestamp_us: int,
        data_raw: bytes | None,
        data_schema: DataSchema | None,
        metadata_raw: bytes | None,
        profile_raw: bytes | None,
    ) -> None:
        """Lines, except events a :class:`FilteredHook` injector selects."""
        category, kind = origin.category, phase or "mark"
        for hook in self._selective:
            if hook.selects(category, kind):
                record = self._record_event
                break
        else:
            record = self._record_line
        record(origin, phase, timestamp_us, data_raw, data_schema, metadata_raw, profile_raw)

    def end_abandoned(self) -> int:
        """Write an end for every span that was started and never ended; return how many.

        The end carries ``metadata = {"llmflow.abandoned": true}`` and the
        start's ``category_profile``. Called at interpreter exit and on SIGTERM
        (before the process dies by it); never raises.
        """
        if self.closed:
            return 0
        abandoned = list(self._open_spans.items())
        marker = dumps({"llmflow.abandoned": True})
        count = 0
        for origin, profile in abandoned:
            try:
                self.record(origin, "end", now_us(), None, None, marker, profile)
                count += 1
            except Exception as exc:
                self.count_failure("delivery:abandoned", exc)
        return count

    def _reconfigure(self) -> None:
        """Decide how events are queued; called after every change of a consumer.

        While nothing but line exporters consumes events, they are queued as
        serialized lines: no :class:`Event` is built and the delivery thread
        only writes. Consumers added later see the events emitted after them.
        """
        with self._config_lock:
            if self.closed:
                return
            exporters = self._exporters
            self._sinks = tuple(exporters.values())
            injectors = self.injectors.entries
            selective = tuple(e.fn for e in injectors if isinstance(e.fn, FilteredHook))
            lines_only = (
                bool(exporters)
                and all(slot.line_sink is not None for slot in self._sinks)
                and not self.subscribers.entries
                and len(selective) == len(injectors)
                and not any(registry.entries for registry in self.sanitizers.values())
            )
            self._selective = selective
            if not lines_only:
                self.record = self._record_event
            else:
                # Injectors that declared their events get those as events; every
                # other event is still queued as its finished line.
                self.record = self._record_selected if selective else self._record_line

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted before the call is delivered and exported.

        Background exporters are waited for too. Returns ``False`` if
        ``timeout`` (seconds) ran out first or an exporter reported that it
        could not flush everything.
        """
        self.check_open()
        _check_timeout(timeout)
        deadline = _deadline(timeout)
        if not self._dispatcher.flush(timeout):
            return False
        return self._flush_background(deadline)

    def _flush_background(self, deadline: float | None, only: str | None = None) -> bool:
        ok = True
        for slot in self._sinks:
            if slot.background and (only is None or slot.name == only):
                ok = slot.flush_background(deadline) and ok
        return ok

    async def aflush(self) -> None:
        """Async :meth:`flush`: never blocks the event loop.

        Background exporters are awaited on a helper thread, without a timeout.
        """
        self.check_open()
        await self._dispatcher.aflush()
        if any(slot.background for slot in self._sinks):
            await asyncio.to_thread(self._flush_background, None)

    def on_delivery_thread(self) -> bool:
        """Whether the caller is this runtime's delivery thread (subscriber code)."""
        return self._dispatcher.on_worker_thread()

    def on_runtime_thread(self) -> bool:
        """Whether the caller is the delivery thread or a background exporter's worker."""
        return self._dispatcher.on_worker_thread() or any(
            slot.on_export_thread() for slot in self._sinks
        )

    # -- exporters -----------------------------------------------------------------

    def add_exporter(self, name: str, exporter: Exporter) -> None:
        """Register ``exporter`` under ``name`` (duplicate names raise).

        An exporter with ``background = True`` gets its own worker thread and
        bounded buffer. A :class:`~llmflow.exporters.BaseExporter` is handed a
        registration, through which its own ``flush()``/``shutdown()`` called
        by the user ask this runtime to act.
        """
        self.check_open()
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        if not isinstance(exporter, Exporter):
            raise TypeError("exporter: expected an object with export(), flush() and shutdown()")
        if name in self._exporters:
            raise DuplicateRegistrationError(f"name: exporter {name!r} is already registered")
        slot = ExporterSlot(name, exporter, self.count_failure)
        self._exporters = {**self._exporters, name: slot}
        attach = getattr(exporter, "attach", None)
        if callable(attach):
            attach(_Registration(self, name))
        self._reconfigure()

    def remove_exporter(
        self, name: str, *, timeout: float | None = 5.0, shutdown: bool = False
    ) -> bool:
        """Flush what is queued to ``name``, then unregister it; return whether it existed.

        A background exporter's worker is stopped. With ``shutdown=True`` the
        exporter's ``shutdown()`` is called too (its own ``shutdown()`` does this).
        """
        slot = self._exporters.get(name)
        if slot is None:
            return False
        deadline = _deadline(timeout)
        if not self.closed:
            self._dispatcher.flush(timeout)
            self._flush_background(deadline, only=name)
        exporters = dict(self._exporters)
        del exporters[name]
        self._exporters = exporters
        self._reconfigure()
        _detach(slot.exporter)
        if shutdown:
            slot.shutdown(deadline)
        else:
            slot.stop_worker(deadline)
        return True

    # -- diagnostics ---------------------------------------------------------------

    def count_failure(self, source: str, exc: BaseException) -> None:
        """Count an isolated failure of ``source`` (``"kind:name"``)."""
        kind, message = describe_exception(exc)
        with self._failure_lock:
            self._failures[source] += 1
            self._last_errors[source] = f"{kind}: {message}"

    def diagnostics(self) -> Diagnostics:
        """A consistent-enough snapshot of the counters (cheap; lock-free reads)."""
        dispatcher = self._dispatcher
        exporters = {name: slot.counters() for name, slot in self._exporters.items()}
        with self._failure_lock:
            failures = dict(self._failures)
            last = dict(self._last_errors)
        return Diagnostics(
            delivered=dispatcher.delivered,
            queued=dispatcher.depth,
            dropped=dispatcher.dropped,
            failures=failures,
            last_errors=last,
            failed=dispatcher.failed,
            exporters=exporters,
        )

    # -- delivery (worker thread only) ---------------------------------------------

    def _deliver(self, batch: list[Event | LineParts]) -> int:
        """Hand ``batch`` to subscribers and exporters; return how many events failed.

        An event fails when its line cannot be built (it is then shown to no
        subscriber, so the file and the subscribers agree) or when an exporter
        on this thread did not write it (the largest count over exporters).
        """
        sinks = self._sinks
        injectors = self.injectors.entries
        sanitizers = self.sanitizers
        subscribers = self.subscribers.entries
        hooked = injectors or subscribers or any(sanitizers.values())
        line_sinks = [slot for slot in sinks if slot.line_sink is not None]
        bad = 0
        if hooked or (line_sinks and any(type(item) is Event for item in batch)):
            lines: list[LineParts] | None = [] if line_sinks else None
            events: list[Event] = []
            for event in batch:
                if not isinstance(event, Event):
                    if lines is not None:
                        lines.append(event)  # queued as a line before these consumers came
                    continue
                if hooked:
                    self._publish_hooks(event, injectors)
                if lines is not None:
                    try:
                        lines.append(event.line_parts())
                    except Exception as exc:  # one bad event never costs its batch
                        bad += 1
                        self.count_failure("delivery:serialize", exc)
                        continue
                events.append(event)
                for sub in subscribers:
                    try:
                        sub.fn(event)
                    except BaseException as exc:  # even SystemExit: isolate, count
                        self.count_failure(f"subscriber:{sub.name}", exc)
        else:
            lines = batch if line_sinks else None  # type: ignore[assignment]
            events = (
                [item for item in batch if isinstance(item, Event)]
                if len(line_sinks) < len(sinks)
                else []
            )
        failed = 0
        for slot in sinks:
            if slot.line_sink is not None:
                assert lines is not None
                if bad:
                    slot.count_unserializable(bad)
                failed = max(failed, slot.deliver_lines(lines))
            else:
                failed = max(failed, slot.deliver_events(events))
        return failed + bad

    def _publish_hooks(self, event: Event, injectors: Sequence[Any]) -> None:
        if injectors:
            self._inject(event, injectors)
        kind: SanitizerKind = (
            "mark"
            if event.scope_category is None
            else "scope_start"
            if event.scope_category == "start"
            else "scope_end"
        )
        chain = self.sanitizers[kind].entries
        if chain:
            self._sanitize(event, kind, chain)

    def _inject(self, event: Event, injectors: Sequence[Any]) -> None:
        metadata = dict(event.metadata or {})
        changed = False
        for entry in injectors:
            try:
                extra = entry.fn(event)
                if extra is None:
                    continue
                if not isinstance(extra, Mapping):
                    raise TypeError(f"expected a mapping or None, got {type(extra).__name__}")
                additions = {k: v for k, v in extra.items() if k not in metadata}
                metadata_snapshot(additions, "metadata")
            except BaseException as exc:  # fail open: skip this injector only
                self.count_failure(f"metadata_injector:{entry.name}", exc)
                continue
            if additions:
                metadata.update(additions)
                changed = True
        if changed:
            event._replace_payload("metadata", dumps(metadata))

    def _sanitize(self, event: Event, kind: SanitizerKind, chain: Sequence[Any]) -> None:
        for entry in chain:
            try:
                update = entry.fn(event)
                if update is None:
                    # Edited in place? The file must carry what subscribers will see.
                    update = _decoded_payloads(event)
                    if not update:
                        continue
                if not isinstance(update, Mapping) or not _SANITIZABLE.issuperset(update):
                    raise TypeError(
                        "an event sanitizer returns None or a mapping with keys among "
                        f"{sorted(_SANITIZABLE)}, got {update!r:.80}"
                    )
                raws = {
                    key: metadata_snapshot(value) if key == "metadata" else snapshot(value, key)
                    for key, value in update.items()
                }
            except BaseException as exc:  # fail closed: drop every field it may touch
                self.count_failure(f"{kind}_sanitizer:{entry.name}", exc)
                for key in ("data", "profile", "metadata"):
                    event._replace_payload(key, None)
                return
            for key, raw in raws.items():
                event._replace_payload("profile" if key == "category_profile" else key, raw)

    def _flush_exporters(self) -> None:
        for slot in self._sinks:
            slot.flush_foreground()

    def _report_drops(self, count: int) -> None:
        us = now_us()
        origin = Origin(
            new_uuid7(us), None, "llmflow.events_dropped", (), None, self.epoch_timestamps
        )
        total = self._dispatcher.dropped
        mark = Event(
            origin, None, us, dumps({"dropped": count, "dropped_total": total}), None, None, None
        )
        self._deliver([mark])

    def _after_fork_in_child(self) -> None:
        self._dispatcher.after_fork_in_child()
        self._open_spans = {}  # the parent ends its own spans
        self._failure_lock = threading.Lock()
        for name, slot in self._exporters.items():
            slot.after_fork_in_child()
            reopen = getattr(slot.exporter, "after_fork_in_child", None)
            if reopen is not None:
                try:
                    reopen()
                except Exception as exc:
                    self.count_failure(f"exporter:{name}", exc)


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()
_default: Runtime | None = None
_default_lock = threading.Lock()
ATOF_PATH_ENV = "LLMFLOW_ATOF_PATH"
EXIT_TIMEOUT_ENV = "LLMFLOW_EXIT_TIMEOUT"
EXIT_TIMEOUT = 5.0
"""Seconds the exit flush (interpreter exit, SIGTERM) waits per runtime, unless
``LLMFLOW_EXIT_TIMEOUT`` says otherwise."""
BIG_PAYLOAD = 16 * 1024
"""Events whose ``data`` snapshot has at least this many bytes count against
``Runtime(queue_max_bytes=...)``; smaller ones are bounded by the event count."""


def get_runtime() -> Runtime:
    """The process-default runtime, created on first use.

    A newly created default runtime gets an ``AtofFileExporter`` (append mode)
    when the ``LLMFLOW_ATOF_PATH`` environment variable names a file.
    """
    runtime = _default
    if runtime is not None:
        return runtime
    return _create_default()


def _create_default() -> Runtime:
    global _default
    with _default_lock:
        if _default is not None:
            return _default
        runtime = Runtime()
        _default = runtime
    if os.environ.get(ATOF_PATH_ENV) or os.environ.get("LLMFLOW_EXPORTERS"):
        from ._environment import install_from_environment

        install_from_environment(runtime)
    return runtime


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """One line on stderr per distinct message (configuration problems, exit reports)."""
    if message in _warned:
        return
    _warned.add(message)
    with contextlib.suppress(Exception):
        sys.stderr.write(f"llmflow: {message}\n")
        sys.stderr.flush()


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for runtime in list(_RUNTIMES):
        runtime._after_fork_in_child()


def exit_timeout() -> float:
    """The exit flush's bound in seconds: ``LLMFLOW_EXIT_TIMEOUT`` or :data:`EXIT_TIMEOUT`."""
    raw = os.environ.get(EXIT_TIMEOUT_ENV)
    if raw:
        try:
            value = float(raw)
            if value >= 0:
                return value
        except ValueError:
            pass
        _warn_once(f"{EXIT_TIMEOUT_ENV}={raw!r} is not a number of seconds; using {EXIT_TIMEOUT}")
    return EXIT_TIMEOUT


def _flush_at_exit(reason: str = "exit") -> None:
    """End abandoned spans, flush every open runtime (bounded), report what was not delivered.

    Runs at interpreter exit and on SIGTERM; never raises.
    """
    timeout = exit_timeout()
    for runtime in list(_RUNTIMES):
        if runtime.closed:
            continue
        try:
            runtime.end_abandoned()
            complete = runtime.flush(timeout=timeout)
            _report_undelivered(runtime, reason, complete, timeout)
        except BaseException:  # interpreter teardown: never raise
            pass


def _report_undelivered(runtime: Runtime, reason: str, complete: bool, timeout: float) -> None:
    diagnostics = runtime.diagnostics()
    lost = {
        "queued": diagnostics.queued,
        "dropped": diagnostics.dropped,
        "failed": diagnostics.failed,
    }
    for name, counts in diagnostics.exporters.items():
        for key in ("queued", "dropped", "failed"):
            if counts.get(key):
                lost[f"{name}.{key}"] = counts[key]
    lost = {key: n for key, n in lost.items() if n}
    if complete and not lost:
        return
    status = "complete" if complete else f"timed out after {timeout:g} s"
    detail = ", ".join(f"{key} {n}" for key, n in lost.items()) or "nothing counted"
    _warn_once(f"{reason} flush {status}; events not delivered: {detail}")


def flush_open_runtimes() -> None:
    """Flush every open runtime, each bounded by :func:`exit_timeout`; never raises.

    What SIGTERM does before the application's own handler runs (``llmflow._exit``).
    """
    for runtime in list(_RUNTIMES):
        if not runtime.closed:
            with contextlib.suppress(BaseException):
                runtime.flush(timeout=exit_timeout())


def _decoded_payloads(event: Event) -> dict[str, Any]:
    """The payload fields a hook has decoded (and so may have edited in place)."""
    decoded: dict[str, Any] = {}
    if event._data is not UNSET:
        decoded["data"] = event._data
    if event._metadata is not UNSET:
        decoded["metadata"] = event._metadata
    if event._profile is not UNSET:
        decoded["category_profile"] = event._profile
    return decoded


def _check_timeout(timeout: object) -> None:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout >= 0
    ):
        raise TypeError(f"timeout: expected None or a number of seconds >= 0, got {timeout!r}")


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _detach(exporter: object) -> None:
    attach = getattr(exporter, "attach", None)
    if callable(attach):
        attach(None)


class _Registration:
    """What a registered :class:`~llmflow.exporters.BaseExporter` holds of its runtime."""

    __slots__ = ("name", "runtime")

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name

    def runtime_is_calling(self) -> bool:
        return self.runtime.closed or self.runtime.on_runtime_thread()

    def flush(self, timeout: float | None) -> bool:
        return self.runtime.flush(timeout)

    def close(self, timeout: float | None) -> None:
        self.runtime.remove_exporter(self.name, timeout=timeout, shutdown=True)


set_default_runtime(get_runtime)
os.register_at_fork(after_in_child=_after_fork_in_child)
# The exit flush and the SIGTERM handler are installed by `import llmflow` (llmflow._exit).
