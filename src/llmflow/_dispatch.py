"""Ordered, bounded, non-blocking event delivery: one queue, one worker thread.

Emitters append to a deque (atomic under the GIL, so emission order is queue
order). Waking a thread costs more than emitting an event, so the worker is
woken only from deep sleep: after draining the queue it naps for ``NAP``
seconds to let the next batch gather, and only an empty nap sends it to deep
sleep. Barriers (flush), shutdown and a full queue wake it at once. The worker
hands each batch to the runtime's ``deliver`` callback; flushes are barriers in
the same queue, so a flush completes exactly when every event emitted before
it was delivered.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Literal

from ._event import Event, LineParts

__all__ = ["Dispatcher", "OverflowPolicy"]

OverflowPolicy = Literal["block", "drop"]
_BATCH = 1024
NAP = 0.002
"""Seconds the worker waits for more events before sleeping until woken."""


class _Control:
    """Base of the queue items that are not events: barriers and the stop signal."""

    __slots__ = ()


class _Barrier(_Control):
    """A queue item that signals when the worker reaches it (after exporting).

    ``on_release`` is fixed before the barrier is queued: the worker may reach
    it the moment it is appended.
    """

    __slots__ = ("done", "on_release")

    def __init__(self, on_release: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.on_release = on_release

    def release(self) -> None:
        self.done.set()
        if self.on_release is not None:
            self.on_release()


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(fn)


class _Stop(_Control):
    __slots__ = ()


_STOP = _Stop()
_Item = Event | LineParts | _Control


class Dispatcher:
    """Queue plus worker. ``deliver(batch)`` returns how many events of ``batch``
    failed; it and ``flush_sinks()`` must not raise."""

    def __init__(
        self,
        *,
        capacity: int,
        overflow: OverflowPolicy,
        deliver: Callable[[list[Event | LineParts]], int],
        flush_sinks: Callable[[], None],
        report_drops: Callable[[int], None],
    ) -> None:
        self.capacity = capacity
        self.overflow = overflow
        self._deliver = deliver
        self._flush_sinks = flush_sinks
        self._report_drops = report_drops
        self.dropped = 0
        self.delivered = 0
        self.failed = 0
        self._reset()

    def _reset(self) -> None:
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._space = threading.Event()
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._sleeping = True
        self._unreported_drops = 0
        self._thread: threading.Thread | None = None

    # -- producer side -------------------------------------------------------------

    def put(self, event: Event | LineParts) -> None:
        """Queue ``event`` for delivery; never waits for delivery itself.

        With the ``block`` policy a full queue makes the caller wait for room
        (no loss); with ``drop`` the event is counted and discarded.
        """
        queue = self._queue
        if len(queue) >= self.capacity and not self._make_room():
            return
        queue.append(event)
        if self._sleeping:
            self._wake_worker()

    def _make_room(self) -> bool:
        if threading.current_thread() is self._thread:
            return True  # a subscriber emitting: waiting on ourselves would deadlock
        if self.overflow == "drop":
            with self._drop_lock:
                self.dropped += 1
                self._unreported_drops += 1
            return False
        while len(self._queue) >= self.capacity:
            self._space.clear()
            self._wake_worker()
            self._space.wait(0.05)
        return True

    def _wake_worker(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            self._start_worker()
        self._wake.set()

    def _start_worker(self) -> None:
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="llmflow-dispatch", daemon=True)
            self._thread.start()

    def barrier(self, on_release: Callable[[], None] | None = None) -> _Barrier:
        """Queue a barrier that is released once everything before it is exported."""
        barrier = _Barrier(on_release)
        self._queue.append(barrier)
        self._wake_worker()
        return barrier

    def flush(self, timeout: float | None) -> bool:
        """Block until everything queued before the call is delivered and flushed."""
        if threading.current_thread() is self._thread:
            raise RuntimeError(
                "flush() was called from a subscriber or exporter on the delivery thread; "
                "it would wait for itself"
            )
        return self.barrier().done.wait(timeout)

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
        return threading.current_thread() is self._thread

    @property
    def depth(self) -> int:
        """Items waiting in the queue."""
        return len(self._queue)

    def stop(self, timeout: float | None) -> None:
        """Deliver what is queued, then end the worker thread."""
        self._queue.append(_STOP)
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue and worker; the child starts its own on demand."""
        self._reset()

    # -- worker side ---------------------------------------------------------------

    def _run(self) -> None:
        queue = self._queue
        popleft = queue.popleft
        wake = self._wake
        batch: list[Event | LineParts] = []
        while True:
            if not queue:
                wake.wait(NAP)  # let a batch gather; barriers and stop cut it short
                wake.clear()
                if not queue:
                    self._sleeping = True
                    if not queue:  # re-check: an emitter may have missed the flag
                        wake.wait()
                    self._sleeping = False
                    wake.clear()
                continue
            stop = False
            try:
                for _ in range(_BATCH):
                    item = popleft()
                    if not isinstance(item, _Control):
                        batch.append(item)
                        continue
                    self._drain(batch)
                    if isinstance(item, _Barrier):
                        self._flush_sinks()
                        item.release()
                    else:
                        stop = True
                        break
            except IndexError:
                pass
            self._space.set()
            self._drain(batch)
            if stop:
                self._sleeping = True
                return

    def _drain(self, batch: list[Event | LineParts]) -> None:
        if self._unreported_drops:
            with self._drop_lock:
                dropped, self._unreported_drops = self._unreported_drops, 0
            self._report_drops(dropped)
        if batch:
            failed = self._deliver(batch)
            self.failed += failed
            self.delivered += len(batch) - failed
            batch.clear()
