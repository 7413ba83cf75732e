"""Ordered, bounded, non-blocking event delivery: one queue, one worker thread.

Emitters append to a deque (atomic under the GIL, so emission order is queue
order). Waking a thread costs more than emitting an event, so the worker is
woken only from deep sleep: after draining the queue it naps for ``NAP``
seconds to let the next batch gather, and only an empty nap sends it to deep
sleep. Barriers (flush), shutdown and a full queue wake it at once. The worker
hands each batch to the runtime's ``deliver`` callback; flushes are barriers in
the same queue, so a flush completes exactly when every event emitted before
it was delivered.

Signals between threads are plain locks released by one side and acquired by
the other, never ``threading.Event``/``Condition``: a ``KeyboardInterrupt``
raised in the main thread between the steps of ``Condition.wait``/``notify``
can leave their internal lock held and the other thread waiting forever, while
``lock.release()`` is one C call that a signal handler cannot split. For the
same reason the worker is started with ``_thread.start_new_thread`` (one call)
and proves it is the only worker by holding ``_running``: a second worker,
started by two emitters racing or by an interrupted start, exits at once.
"""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from ._event import Event, LineParts

__all__ = ["POLL", "Dispatcher", "OverflowPolicy", "new_signal", "send_signal"]

OverflowPolicy = Literal["block", "drop"]
_BATCH = 1024
NAP = 0.002
"""Seconds the worker waits for more events before sleeping until woken."""
POLL = 0.1
"""Seconds between checks that a worker is alive while a flush waits."""


def send_signal(lock: _thread.LockType) -> None:
    """Release ``lock`` unless it is already released (the signal is pending).

    A plain lock as a one-shot signal (see the module docstring); the
    background exporter workers of ``llmflow.exporters`` use it too.
    """
    # Not contextlib.suppress: its Python-level __exit__ is a point where a
    # signal handler could run; try/except adds none.
    try:  # noqa: SIM105
        lock.release()
    except RuntimeError:
        pass


def new_signal() -> _thread.LockType:
    """A signal lock, not yet sent: ``acquire`` waits until :func:`send_signal`."""
    lock = _thread.allocate_lock()
    lock.acquire()
    return lock


class _Control:
    """Base of the queue items that are not plain events."""

    __slots__ = ()


class _Barrier(_Control):
    """A queue item that signals when the worker reaches it (after exporting).

    ``on_release`` is fixed before the barrier is queued: the worker may reach
    it the moment it is appended.
    """

    __slots__ = ("_done", "on_release")

    def __init__(self, on_release: Callable[[], None] | None = None) -> None:
        self._done = new_signal()
        self.on_release = on_release

    def release(self) -> None:
        self._done.release()
        if self.on_release is not None:
            self.on_release()

    def wait(self, timeout: float | None) -> bool:
        if not self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return False
        self._done.release()  # stays released: a later wait returns at once
        return True


class _Stop(_Barrier):
    __slots__ = ()


class _Big(_Control):
    """An event whose payload counts against the queue's byte bound."""

    __slots__ = ("item", "size")

    def __init__(self, item: Event | LineParts, size: int) -> None:
        self.item = item
        self.size = size


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(fn)


_Item = Event | LineParts | _Control


class Dispatcher:
    """Queue plus worker.

    ``deliver(batch)`` returns how many events of ``batch`` failed;
    ``on_error(exc)`` counts an exception that escaped it. The worker survives
    any exception from them (even ``SystemExit``); events of a batch whose
    delivery raised count as failed.
    """

    def __init__(
        self,
        *,
        capacity: int,
        max_bytes: int,
        overflow: OverflowPolicy,
        deliver: Callable[[list[Event | LineParts]], int],
        flush_sinks: Callable[[], None],
        report_drops: Callable[[int], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.overflow = overflow
        self._deliver = deliver
        self._flush_sinks = flush_sinks
        self._report_drops = report_drops
        self._on_error = on_error
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self.workers_started = 0
        self._reset()

    def _reset(self) -> None:
        self._queue: deque[_Item] = deque()
        self._wake = new_signal()
        self._space = new_signal()
        self._running = _thread.allocate_lock()  # held by the one live worker
        self._drop_lock = threading.Lock()
        self._bytes_lock = threading.Lock()
        self._sleeping = True
        self._unreported_drops = 0
        self._queued_bytes = 0
        self._worker_ident: int | None = None

    # -- producer side -------------------------------------------------------------

    def put(self, event: Event | LineParts) -> None:
        """Queue ``event`` for delivery; never waits for delivery itself.

        With the ``block`` policy a full queue makes the caller wait for room
        (no loss); with ``drop`` the event is counted and discarded.
        """
        queue = self._queue
        if len(queue) >= self.capacity and not self._make_room(0):
            return
        queue.append(event)
        if self._sleeping:
            self._wake_worker()

    def put_big(self, event: Event | LineParts, size: int) -> None:
        """Queue an event with a large payload of ``size`` bytes (bounded by ``max_bytes``)."""
        if (
            len(self._queue) >= self.capacity or self._queued_bytes + size > self.max_bytes
        ) and not self._make_room(size):
            return
        with self._bytes_lock:
            self._queued_bytes += size
        self._queue.append(_Big(event, size))
        if self._sleeping:
            self._wake_worker()

    def _full(self, size: int) -> bool:
        if len(self._queue) >= self.capacity:
            return True
        # One event larger than the whole bound still goes through once the queue is empty.
        return size > 0 and self._queued_bytes > 0 and self._queued_bytes + size > self.max_bytes

    def _make_room(self, size: int) -> bool:
        if self.on_worker_thread():
            return True  # a subscriber emitting: waiting on ourselves would deadlock
        if self.overflow == "drop":
            if not self._full(size):
                return True
            with self._drop_lock:
                self.dropped += 1
                self._unreported_drops += 1
            return False
        while self._full(size):
            self._wake_worker()
            self._space.acquire(timeout=0.05)
        return True

    def _wake_worker(self) -> None:
        if not self._running.locked():
            self._start_worker()
        send_signal(self._wake)

    def _start_worker(self) -> None:
        _thread.start_new_thread(self._run, ())

    def barrier(self, on_release: Callable[[], None] | None = None) -> _Barrier:
        """Queue a barrier that is released once everything before it is exported."""
        barrier = _Barrier(on_release)
        self._queue.append(barrier)
        self._wake_worker()
        return barrier

    def flush(self, timeout: float | None) -> bool:
        """Block until everything queued before the call is delivered and flushed."""
        if self.on_worker_thread():
            raise RuntimeError(
                "flush() was called from a subscriber or exporter on the delivery thread; "
                "it would wait for itself"
            )
        return self._await(self.barrier(), timeout)

    def _await(self, barrier: _Barrier, timeout: float | None) -> bool:
        # Waits in slices: should the worker be gone, a new one is started.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = POLL if deadline is None else min(POLL, deadline - time.monotonic())
            if barrier.wait(remaining):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if not self._running.locked():
                self._wake_worker()

    async def aflush(self) -> None:
        """Await the delivery of everything queued before the call."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        self.barrier(lambda: _call_soon(loop, wake))
        await future

    def on_worker_thread(self) -> bool:
        """Whether the caller runs on the delivery thread."""
        return _thread.get_ident() == self._worker_ident

    @property
    def depth(self) -> int:
        """Items waiting in the queue."""
        return len(self._queue)

    @property
    def alive(self) -> bool:
        """Whether a worker thread is running."""
        return self._running.locked()

    def stop(self, timeout: float | None) -> bool:
        """Deliver what is queued, then end the worker; return whether it finished in time."""
        stop = _Stop()
        self._queue.append(stop)
        if self.on_worker_thread():
            return False
        self._wake_worker()
        return self._await(stop, timeout)

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue and worker; the child starts its own on demand."""
        self._reset()

    # -- worker side ---------------------------------------------------------------

    def _run(self) -> None:
        if not self._running.acquire(False):
            return  # another worker is running: never two
        self._worker_ident = _thread.get_ident()
        self.workers_started += 1
        self._sleeping = False
        try:
            while True:
                try:
                    if self._work():
                        return
                except BaseException as exc:  # the worker outlives any hook
                    self._count_error(exc)
        finally:
            self._sleeping = True
            self._worker_ident = None
            self._running.release()

    def _count_error(self, exc: BaseException) -> None:
        with contextlib.suppress(BaseException):  # accounting failed: nothing more to do
            self._on_error(exc)

    def _work(self) -> bool:
        """Deliver until stopped (return True); an escaping exception is counted by ``_run``."""
        queue = self._queue
        popleft = queue.popleft
        wake = self._wake
        batch: list[Event | LineParts] = []
        while True:
            if not queue:
                wake.acquire(timeout=NAP)  # let a batch gather; barriers and stop cut it short
                if not queue:
                    self._sleeping = True
                    if not queue:  # re-check: an emitter may have missed the flag
                        wake.acquire()
                    self._sleeping = False
                continue
            stop = False
            try:
                for _ in range(_BATCH):
                    item = popleft()
                    if not isinstance(item, _Control):
                        batch.append(item)
                        continue
                    if isinstance(item, _Big):
                        batch.append(item.item)
                        with self._bytes_lock:
                            self._queued_bytes -= item.size
                        continue
                    self._drain(batch)
                    try:
                        if isinstance(item, _Barrier):
                            self._flush_sinks()
                    finally:
                        assert isinstance(item, _Barrier)
                        item.release()
                    if isinstance(item, _Stop):
                        stop = True
                        break
            except IndexError:
                pass
            send_signal(self._space)
            self._drain(batch)
            if stop:
                return True

    def _drain(self, batch: list[Event | LineParts]) -> None:
        if self._unreported_drops:
            with self._drop_lock:
                dropped, self._unreported_drops = self._unreported_drops, 0
            self._report_drops(dropped)
        if batch:
            try:
                failed = self._deliver(batch)
            except BaseException as exc:
                failed = len(batch)
                self._count_error(exc)
            self.failed += failed
            self.delivered += len(batch) - failed
            batch.clear()
