"""One implementation for sync and async: pipeline steps as generators, two drivers.

A step is a generator that *yields* ``(callback, awaitable)`` whenever a user
callback returned an awaitable. :func:`drive_async` awaits what is yielded;
:func:`drive_sync` refuses it with :class:`SyncCallbackError`. That keeps the
async entry points and their ``_sync`` twins identical except at this edge,
and costs nothing when every callback is synchronous.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, TypeVar

from ._errors import SyncCallbackError
from ._types import LlmRequest

__all__ = ["Step", "call_user", "drive_async", "drive_sync", "is_awaitable"]

T = TypeVar("T")
Step = Generator[tuple[Any, Awaitable[Any]], Any, T]
"""A pipeline step: yields ``(callback, awaitable)``, returns its result."""


async def drive_async(step: Step[T]) -> T:
    """Run ``step`` to completion, awaiting every awaitable it yields."""
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            _fn, awaitable = step.send(send) if error is None else step.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            send = await awaitable
        except BaseException as exc:  # delivered back into the step
            send, error = None, exc


def drive_sync(step: Step[T]) -> T:
    """Run ``step``; an awaitable it yields is closed and refused with an error."""
    error: BaseException | None = None
    while True:
        try:
            fn, awaitable = step.send(None) if error is None else step.throw(error)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()
        error = SyncCallbackError(
            f"{getattr(fn, '__qualname__', fn)!r} returned an awaitable, but this is a "
            f"synchronous entry point; use the async one (without _sync) instead"
        )


_NEVER_AWAITABLE: Final = frozenset(
    {type(None), bool, int, float, str, bytes, dict, list, tuple, LlmRequest}
)


def is_awaitable(value: object) -> bool:
    """``inspect.isawaitable`` with a fast answer for plain results (most callbacks)."""
    return type(value) not in _NEVER_AWAITABLE and inspect.isawaitable(value)


def call_user(fn: Callable[..., Any], *args: Any) -> Step[Any]:
    """Call a sync-or-async callback; yields its awaitable when there is one."""
    result = fn(*args)
    if is_awaitable(result):
        result = yield fn, result
    return result
