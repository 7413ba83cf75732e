"""In-process subscribers: callables that receive every delivered event.

Subscribers run on the delivery thread, in ``(priority, name)`` order, after
metadata injectors and event sanitizers. They must be quick and must not keep
or mutate the event's payloads; an exception is caught and counted in
``diagnostics()`` under ``"subscriber:<name>"``.
"""

from __future__ import annotations

from collections.abc import Callable

from ._event import Event
from ._runtime import Runtime, get_runtime

__all__ = ["deregister", "register"]


def register(
    name: str,
    fn: Callable[[Event], object],
    *,
    priority: int = 0,
    runtime: Runtime | None = None,
) -> None:
    """Deliver every event to ``fn``; a name already registered raises."""
    rt = runtime or get_runtime()
    rt.check_open()
    rt.subscribers.register(name, priority, fn)


def deregister(name: str, *, runtime: Runtime | None = None) -> bool:
    """Stop delivering to ``name``; return whether it was registered."""
    return (runtime or get_runtime()).subscribers.deregister(name)
