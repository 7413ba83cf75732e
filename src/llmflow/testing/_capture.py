"""Test helpers: capture the events a block of code emits.

::

    with llmflow.testing.capture() as events:
        run_my_agent()
    assert [e.name for e in events] == [...]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from llmflow._event import Event
from llmflow._runtime import Runtime, get_runtime

__all__ = ["capture"]

_ids = itertools.count()


@contextmanager
def capture(*, runtime: Runtime | None = None) -> Iterator[list[Event]]:
    """Yield a list that receives every event emitted while the block runs.

    On entry the runtime is flushed, so events emitted before the block are not
    collected; on exit it is flushed again, so the list is complete when the
    block ends (also when it raises).
    """
    rt = runtime or get_runtime()
    events: list[Event] = []
    name = f"llmflow.testing.capture-{next(_ids)}"
    rt.flush()
    rt.subscribers.register(name, -(2**31), events.append)
    try:
        yield events
    finally:
        try:
            rt.flush()
        finally:
            rt.subscribers.deregister(name)
