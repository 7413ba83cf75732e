"""How the runtime drives one exporter: counters, isolation, and the background worker.

Every registered exporter gets an :class:`ExporterSlot`. A foreground slot calls
the exporter on the delivery thread. A background slot (the exporter class sets
``background = True``) is a small batch processor in the manner of
OpenTelemetry's ``BatchSpanProcessor``: a bounded buffer filled by the delivery
thread, one worker thread of its own that exports batches, and a ``flush`` that
waits up to a timeout and says whether everything got through. The delivery
thread never waits for it: when the buffer is full the events are dropped and
counted for that exporter only. A line exporter (``export_lines``) gets lines,
on the delivery thread or on its worker alike; any other exporter gets events.

Counters of one exporter (see ``docs/delivery.md``): ``received`` events were
handed to it; ``exported`` were in batches it accepted; ``failed`` were in
batches it rejected (``ExportResult.FAILURE`` or an exception) or could not be
serialized; ``dropped`` overflowed its buffer or were still buffered when it
was shut down. Once a flush returned ``True``:
``received == exported + failed + dropped``.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from llmflow._dispatch import POLL, new_signal, send_signal
from llmflow._event import Event, LineParts
from llmflow.exporters._base import Exporter, ExportResult, LineExporter, PartialExportError

__all__ = ["ExporterSlot", "outcome", "paced", "takes_timeout"]

T = TypeVar("T")

GIL_SLICE = 0.001
"""Seconds of Python work a background exporter does before :func:`paced` pauses."""
GIL_PAUSE = 0.00005
"""Seconds :func:`paced` sleeps: the interpreter lock goes to a waiting application thread."""


def paced(items: Iterable[T]) -> Iterator[T]:
    """Iterate ``items``, sleeping ``GIL_PAUSE`` after every ``GIL_SLICE`` of work.

    For a background exporter's own Python work (rows, spans), which holds the
    interpreter lock: an application thread that wants the lock gets it within
    about a millisecond, instead of after the interpreter's 5 ms switch
    interval, and keeps it for up to that interval. Work that releases the lock
    (compression, sockets, disk) needs no pacing. Costs the exporter about 5 %
    of its throughput while nothing else runs.
    """
    clock, sleep = time.perf_counter, _sleep
    due = clock() + GIL_SLICE
    for item in items:
        yield item
        if clock() >= due:
            sleep(GIL_PAUSE)
            due = clock() + GIL_SLICE


_sleep = time.sleep  # what paced() pauses with (replaced by a test)


FailureSink = Callable[[str, BaseException], None]


def outcome(result: object) -> bool:
    """Whether an ``export`` result means success (``None`` is success, for older exporters)."""
    return result is None or result is ExportResult.SUCCESS or result is True


def takes_timeout(method: Callable[..., object]) -> bool:
    """Whether ``method`` accepts a ``timeout`` argument (older exporters' ``flush()`` does not)."""
    try:
        return "timeout" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class ExporterSlot:
    """One registered exporter and its counters (see the module docstring)."""

    def __init__(self, name: str, exporter: Exporter, on_failure: FailureSink) -> None:
        self.name = name
        self.source = f"exporter:{name}"
        self.exporter = exporter
        self.background = bool(getattr(exporter, "background", False))
        self.line_sink: LineExporter | None = (
            exporter if isinstance(exporter, LineExporter) else None
        )
        self._on_failure = on_failure
        self.received = 0
        self.exported = 0
        self.failed = 0
        self.dropped = 0
        self._flush_timeout = takes_timeout(exporter.flush)
        self._shutdown_timeout = takes_timeout(exporter.shutdown)
        self._worker: _BackgroundWorker | None = None
        if self.background:
            self._worker = _BackgroundWorker(self)

    # -- delivery thread -----------------------------------------------------------

    def deliver_lines(self, lines: Sequence[LineParts]) -> int:
        """Write ``lines`` (queue them when in the background); return how many failed here."""
        self.received += len(lines)
        if self._worker is not None:
            self._worker.offer(lines)
            return 0
        return self._export_lines(lines)

    def deliver_events(self, events: Sequence[Event]) -> int:
        """Export ``events`` (queue them when in the background); return how many failed here."""
        self.received += len(events)
        if self._worker is not None:
            self._worker.offer(events)
            return 0
        return self._export(events)

    def count_unserializable(self, count: int) -> None:
        """Events that never reached the exporter because their line could not be built."""
        self.received += count
        self.failed += count

    def _export_lines(self, lines: Sequence[LineParts]) -> int:
        """Call ``export_lines``, count the outcome; return how many lines failed.

        A short count without an exception is recorded as a failure too (as
        ``FAILURE`` from ``export``), so every lost line has a reason.
        """
        assert self.line_sink is not None
        try:
            written = self.line_sink.export_lines(lines)
            if written is not None and written < len(lines):
                self._on_failure(
                    self.source,
                    _ExportFailed(f"export_lines() wrote {written} of {len(lines)} lines"),
                )
        except PartialExportError as exc:
            written = exc.written
            self._on_failure(self.source, exc.__cause__ or exc)
        except BaseException as exc:  # any exporter error is isolated
            written = 0
            self._on_failure(self.source, exc)
        if written is None:
            written = len(lines)
        self.exported += written
        self.failed += len(lines) - written
        return len(lines) - written

    def _export(self, events: Sequence[Event]) -> int:
        try:
            ok = outcome(self.exporter.export(events))
            if not ok:
                self._on_failure(self.source, _ExportFailed("export() returned FAILURE"))
        except BaseException as exc:  # any exporter error is isolated
            ok = False
            self._on_failure(self.source, exc)
        if ok:
            self.exported += len(events)
            return 0
        self.failed += len(events)
        return len(events)

    def call_flush(self, timeout: float | None) -> bool:
        """Call the exporter's ``flush`` (with ``timeout`` when it takes one); ``None`` is True."""
        flush: Any = self.exporter.flush
        result = flush(timeout) if self._flush_timeout else flush()
        return result is None or bool(result)

    def flush_foreground(self) -> None:
        """Flush a foreground exporter (delivery thread, at every barrier)."""
        if self._worker is not None:
            return
        try:
            if not self.call_flush(None):
                self._on_failure(self.source, _ExportFailed("flush() returned False"))
        except BaseException as exc:
            self._on_failure(self.source, exc)

    # -- any thread ----------------------------------------------------------------

    def flush_background(self, deadline: float | None) -> bool:
        """Wait for a background exporter to export and flush what it holds."""
        if self._worker is None:
            return True
        return self._worker.flush(deadline)

    def shutdown(self, deadline: float | None) -> bool:
        """Stop the worker (waiting until ``deadline``), then shut the exporter down."""
        done = True
        if self._worker is not None:
            done = self._worker.stop(deadline)
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            if self._shutdown_timeout:
                self.exporter.shutdown(timeout)  # type: ignore[call-arg]
            else:
                self.exporter.shutdown()
        except BaseException as exc:
            self._on_failure(self.source, exc)
        return done

    def stop_worker(self, deadline: float | None) -> bool:
        """Stop a background worker after it exported what it holds (until ``deadline``)."""
        return self._worker is None or self._worker.stop(deadline)

    def on_export_thread(self) -> bool:
        """Whether the caller is this exporter's background worker."""
        return self._worker is not None and self._worker.is_current()

    def after_fork_in_child(self) -> None:
        """The child starts with an empty buffer and no worker (started on demand)."""
        if self._worker is not None:
            self._worker = _BackgroundWorker(self)

    def counters(self) -> dict[str, int]:
        """``received``/``exported``/``failed``/``dropped`` plus the exporter's ``stats()``."""
        counts = {
            "received": self.received,
            "exported": self.exported,
            "failed": self.failed,
            "dropped": self.dropped + (self._worker.lost_at_stop if self._worker else 0),
        }
        if self._worker is not None:
            counts["queued"] = self._worker.depth
        stats = getattr(self.exporter, "stats", None)
        if stats is not None:
            try:
                extra = stats()
                counts.update({k: v for k, v in extra.items() if k not in counts})
            except BaseException as exc:
                self._on_failure(self.source, exc)
        return counts


class _ExportFailed(Exception):
    """The reason recorded when an exporter reports failure without raising."""


class _BackgroundWorker:
    """The bounded buffer and worker thread of one background exporter.

    Each counter has one writer: ``_accepted`` and the slot's ``dropped`` the
    delivery thread (``offer``), ``_finished``/``_flushed`` the worker, so
    neither side ever waits for a lock the other holds.
    """

    def __init__(self, slot: ExporterSlot) -> None:
        exporter = slot.exporter
        self._slot = slot
        self._capacity = max(1, int(getattr(exporter, "buffer_capacity", 2_048)))
        self._batch_size = max(1, int(getattr(exporter, "batch_size", 512)))
        # Lines for a line exporter, events for any other: one kind per slot.
        self._buffer: deque[Event | LineParts] = deque()
        self._write: Callable[[Any], int] = (
            slot._export_lines if slot.line_sink is not None else slot._export
        )
        self._wake = new_signal()  # released to wake the worker
        self._progress = new_signal()  # released by the worker after each flush
        self._start_lock = threading.Lock()
        self._accepted = 0  # events ever put in the buffer
        self._flush_wanted = 0  # a flush is requested through this accepted count
        self._flushed = 0  # flushed through this accepted count
        self._flush_ok = True
        self._stopping = False
        self.lost_at_stop = 0
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def is_current(self) -> bool:
        # By ident: current_thread() would register a dummy Thread for the delivery
        # worker, which is not a threading.Thread.
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def offer(self, events: Sequence[Event] | Sequence[LineParts]) -> None:
        if self._stopping:
            self._slot.dropped += len(events)
            return
        room = max(0, self._capacity - len(self._buffer))
        if room < len(events):
            self._slot.dropped += len(events) - room
            events = events[:room]
        self._buffer.extend(events)
        self._accepted += len(events)
        self._start()
        send_signal(self._wake)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(
                target=self._run, name=f"llmflow-export:{self._slot.name}", daemon=True
            )
            thread.start()
            self._thread = thread

    def flush(self, deadline: float | None) -> bool:
        target = self._accepted
        if self._flushed >= target and self._flush_ok:
            return True
        self._flush_wanted = max(self._flush_wanted, target)
        self._start()
        send_signal(self._wake)
        while self._flushed < target:
            remaining = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if remaining <= 0:
                return False
            self._progress.acquire(timeout=remaining)
        return self._flush_ok

    def stop(self, deadline: float | None) -> bool:
        self._stopping = True
        send_signal(self._wake)
        thread = self._thread
        done = True
        if thread is not None and thread.ident != threading.get_ident():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            done = not thread.is_alive()
        # What the worker could not take before the deadline is lost: count it.
        left = 0
        while self._buffer:
            try:
                self._buffer.popleft()
            except IndexError:
                break
            left += 1
        self.lost_at_stop += left
        return done

    def _run(self) -> None:
        buffer, slot = self._buffer, self._slot
        while True:
            if buffer:
                batch: list[Event | LineParts] = []
                try:
                    for _ in range(self._batch_size):
                        batch.append(buffer.popleft())
                except IndexError:
                    pass
                if batch:
                    self._write(batch)
                continue
            wanted = self._flush_wanted
            if wanted > self._flushed:
                try:
                    ok = slot.call_flush(None)
                except BaseException as exc:
                    slot._on_failure(slot.source, exc)
                    ok = False
                self._flush_ok = ok
                self._flushed = wanted
                send_signal(self._progress)
                continue
            if self._stopping:
                self._flushed = self._accepted
                send_signal(self._progress)
                return
            self._wake.acquire()  # a release is never lost: it stays until taken
