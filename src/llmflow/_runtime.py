"""The runtime: configuration, registries, delivery and diagnostics of one process.

A process has one default runtime, created lazily by :func:`get_runtime`.
Explicit :class:`Runtime` objects give isolation (tests, embedding) and can be
installed as the default. A runtime that was shut down refuses further use.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ._clock import new_uuid7, now_us
from ._dispatch import Dispatcher, OverflowPolicy
from ._errors import DuplicateRegistrationError, RuntimeShutdownError
from ._event import Event, LineParts, Origin, line
from ._json import check_metadata, dumps, snapshot
from ._registry import Registry
from ._types import DataSchema, Json

__all__ = [
    "Diagnostics",
    "EventHook",
    "Exporter",
    "LineExporter",
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


@runtime_checkable
class Exporter(Protocol):
    """Where delivered events go. Called only from the delivery thread.

    ``export`` receives each batch in emission order and must not keep the list;
    ``flush`` makes everything exported so far durable; ``shutdown`` releases
    resources. Exceptions are caught and counted by the runtime.
    """

    def export(self, events: Sequence[Event]) -> None: ...

    def flush(self) -> None: ...

    def shutdown(self) -> None: ...


@runtime_checkable
class LineExporter(Exporter, Protocol):
    """An exporter that writes ATOF lines and can take them already serialized.

    While every exporter of a runtime is a line exporter and no subscriber,
    event sanitizer or metadata injector is registered, events are queued as
    their serialized lines and only :meth:`export_lines` is called.
    """

    def export_lines(self, lines: Sequence[LineParts]) -> None: ...


@dataclass(frozen=True)
class Diagnostics:
    """A snapshot of a runtime's health counters.

    ``failures`` counts isolated failures by source, e.g.
    ``{"subscriber:audit": 2, "sanitize_request:pii": 1}``; ``last_errors``
    keeps the last message per source. ``emitted`` is derived:
    ``delivered + queued + dropped``.
    """

    delivered: int
    queued: int
    dropped: int
    failures: Mapping[str, int] = field(default_factory=dict)
    last_errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def emitted(self) -> int:
        """Events handed to the runtime (delivered, queued or dropped)."""
        return self.delivered + self.queued + self.dropped

    def failure_count(self, prefix: str = "") -> int:
        """Total failures whose source starts with ``prefix`` (all when empty)."""
        return sum(n for source, n in self.failures.items() if source.startswith(prefix))

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, for logging."""
        return {
            "emitted": self.emitted,
            "delivered": self.delivered,
            "queued": self.queued,
            "dropped": self.dropped,
            "failures": dict(self.failures),
            "last_errors": dict(self.last_errors),
        }


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """``(exception.type, exception.message)`` as recorded in event metadata."""
    cls = type(exc)
    module = cls.__module__
    qualname = cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"
    return qualname, str(exc)


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
        overflow: OverflowPolicy = "block",
        timestamp_format: Literal["rfc3339", "epoch_us"] = "rfc3339",
    ) -> None:
        if not isinstance(queue_capacity, int) or queue_capacity < 1:
            raise ValueError(f"queue_capacity: expected an int >= 1, got {queue_capacity!r}")
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
        self._exporters: dict[str, Exporter] = {}
        self._sinks: tuple[tuple[str, Exporter, LineExporter | None], ...] = ()
        self._config_lock = threading.Lock()
        self._failures: Counter[str] = Counter()
        self._last_errors: dict[str, str] = {}
        self._failure_lock = threading.Lock()
        self._dispatcher = Dispatcher(
            capacity=queue_capacity,
            overflow=overflow,
            deliver=self._deliver,
            flush_sinks=self._flush_exporters,
            report_drops=self._report_drops,
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

        Idempotent. If this is the default runtime, the next :func:`get_runtime`
        call creates a fresh one.
        """
        global _default
        if self.closed:
            return
        with self._config_lock:
            self.closed = True
            self.emit = self.record = self._emit_after_shutdown
        self._dispatcher.stop(timeout)
        for name, exporter in list(self._exporters.items()):
            try:
                exporter.shutdown()
            except Exception as exc:
                self.record_failure(f"exporter:{name}", exc)
        with _default_lock:
            if _default is self:
                _default = None

    # -- emission ------------------------------------------------------------------

    def _emit_after_shutdown(self, *_event: object) -> None:
        self.check_open()

    # ``record`` is one of these two; callers are type-checked against ``Recorder``.

    def _record_event(self, *fields: Any) -> None:
        self.emit(Event(*fields))

    def _record_line(self, *fields: Any) -> None:
        self.emit(line(*fields))

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
            self._sinks = tuple(
                (name, exporter, exporter if isinstance(exporter, LineExporter) else None)
                for name, exporter in exporters.items()
            )
            lines_only = (
                bool(exporters)
                and all(line_sink is not None for _, _, line_sink in self._sinks)
                and not self.subscribers.entries
                and not self.injectors.entries
                and not any(registry.entries for registry in self.sanitizers.values())
            )
            self.record = self._record_line if lines_only else self._record_event

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything emitted before the call is delivered and exported.

        Returns ``False`` if ``timeout`` (seconds) ran out first.
        """
        self.check_open()
        return self._dispatcher.flush(timeout)

    async def aflush(self) -> None:
        """Async :meth:`flush`: never blocks the event loop."""
        self.check_open()
        await self._dispatcher.aflush()

    def on_delivery_thread(self) -> bool:
        """Whether the caller is this runtime's delivery thread (subscriber code)."""
        return self._dispatcher.on_worker_thread()

    # -- exporters -----------------------------------------------------------------

    def add_exporter(self, name: str, exporter: Exporter) -> None:
        """Register ``exporter`` under ``name`` (duplicate names raise)."""
        self.check_open()
        if not isinstance(exporter, Exporter):
            raise TypeError("exporter: expected an object with export(), flush() and shutdown()")
        if name in self._exporters:
            raise DuplicateRegistrationError(f"name: exporter {name!r} is already registered")
        self._exporters = {**self._exporters, name: exporter}
        self._reconfigure()

    def remove_exporter(self, name: str, *, timeout: float | None = 5.0) -> bool:
        """Flush what is queued to ``name``, then unregister it; return whether it existed."""
        if name not in self._exporters:
            return False
        if not self.closed:
            self._dispatcher.flush(timeout)
        exporters = dict(self._exporters)
        del exporters[name]
        self._exporters = exporters
        self._reconfigure()
        return True

    # -- diagnostics ---------------------------------------------------------------

    def record_failure(self, source: str, exc: BaseException) -> None:
        """Count an isolated failure of ``source`` (``"kind:name"``)."""
        kind, message = describe_exception(exc)
        with self._failure_lock:
            self._failures[source] += 1
            self._last_errors[source] = f"{kind}: {message}"

    def diagnostics(self) -> Diagnostics:
        """A consistent-enough snapshot of the counters (cheap; lock-free reads)."""
        dispatcher = self._dispatcher
        with self._failure_lock:
            failures = dict(self._failures)
            last = dict(self._last_errors)
        return Diagnostics(
            delivered=dispatcher.delivered,
            queued=dispatcher.depth,
            dropped=dispatcher.dropped,
            failures=failures,
            last_errors=last,
        )

    # -- delivery (worker thread only) ---------------------------------------------

    def _deliver(self, batch: list[Event | LineParts]) -> None:
        injectors = self.injectors.entries
        sanitizers = self.sanitizers
        subscribers = self.subscribers.entries
        hooked = injectors or subscribers or any(sanitizers.values())
        for event in batch if hooked else ():
            if not isinstance(event, Event):
                continue  # queued as a line before these consumers were added
            if injectors:
                self._inject(event, injectors)
            kind: SanitizerKind = (
                "mark"
                if event.scope_category is None
                else "scope_start"
                if event.scope_category == "start"
                else "scope_end"
            )
            chain = sanitizers[kind].entries
            if chain:
                self._sanitize(event, kind, chain)
            for sub in subscribers:
                try:
                    sub.fn(event)
                except Exception as exc:
                    self.record_failure(f"subscriber:{sub.name}", exc)
        lines: list[LineParts] | None = None
        events: list[Event] | None = None
        for name, exporter, line_sink in self._sinks:
            try:
                if line_sink is not None:
                    if lines is None:
                        lines = [
                            item.line_parts() if isinstance(item, Event) else item for item in batch
                        ]
                    line_sink.export_lines(lines)
                else:
                    if events is None:
                        events = [item for item in batch if isinstance(item, Event)]
                    exporter.export(events)
            except Exception as exc:
                self.record_failure(f"exporter:{name}", exc)

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
                check_metadata(additions, "metadata")
            except Exception as exc:  # fail open: skip this injector only
                self.record_failure(f"metadata_injector:{entry.name}", exc)
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
                    continue
                if not isinstance(update, Mapping) or not _SANITIZABLE.issuperset(update):
                    raise TypeError(
                        "an event sanitizer returns None or a mapping with keys among "
                        f"{sorted(_SANITIZABLE)}, got {update!r:.80}"
                    )
                raws = {
                    key: check_metadata(value) if key == "metadata" else snapshot(value, key)
                    for key, value in update.items()
                }
            except Exception as exc:  # fail closed: drop every field it may touch
                self.record_failure(f"{kind}_sanitizer:{entry.name}", exc)
                for key in ("data", "profile", "metadata"):
                    event._replace_payload(key, None)
                return
            for key, raw in raws.items():
                event._replace_payload("profile" if key == "category_profile" else key, raw)

    def _flush_exporters(self) -> None:
        for name, exporter in self._exporters.items():
            try:
                exporter.flush()
            except Exception as exc:
                self.record_failure(f"exporter:{name}", exc)

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
        self._failure_lock = threading.Lock()
        for name, exporter in self._exporters.items():
            reopen = getattr(exporter, "after_fork_in_child", None)
            if reopen is not None:
                try:
                    reopen()
                except Exception as exc:
                    self.record_failure(f"exporter:{name}", exc)


_RUNTIMES: weakref.WeakSet[Runtime] = weakref.WeakSet()
_default: Runtime | None = None
_default_lock = threading.Lock()
ATOF_PATH_ENV = "LLMFLOW_ATOF_PATH"


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
    path = os.environ.get(ATOF_PATH_ENV)
    if path:
        from .exporters import AtofFileExporter

        AtofFileExporter(path, mode="append").register(ATOF_PATH_ENV, runtime=runtime)
    if os.environ.get("LLMFLOW_EXPORTERS"):
        from .exporters._config import install_from_environment

        install_from_environment(runtime)
    return runtime


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for runtime in list(_RUNTIMES):
        runtime._after_fork_in_child()


def _flush_at_exit() -> None:
    for runtime in list(_RUNTIMES):
        if not runtime.closed:
            with contextlib.suppress(Exception):  # interpreter teardown: never raise
                runtime.flush(timeout=10.0)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_at_exit)
