"""``timeout(seconds)``: bound a managed call (asyncio-native)."""

from __future__ import annotations

import asyncio
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from llmflow._call import Call
from llmflow._errors import FlowError
from llmflow._types import Json, LlmRequest
from llmflow.middleware._recording import current_call, record_mark
from llmflow.middleware._streams import is_async_iterator

__all__ = ["CallTimeoutError", "Timeout", "timeout"]


class CallTimeoutError(FlowError, TimeoutError):
    """A call did not finish within the seconds given to :func:`timeout`.

    Also a ``TimeoutError``, so :func:`retry` treats it as retryable and code
    that catches ``TimeoutError`` keeps working. ``seconds`` is the bound.
    """

    def __init__(self, message: str, *, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(message)


class Timeout:
    """An execution intercept (and, as :attr:`stream`, a stream intercept) with a time bound.

    Async entry points: the rest of the chain is cancelled after ``seconds``
    and :class:`CallTimeoutError` raised (the provider coroutine sees the
    cancellation). Synchronous calls cannot be interrupted from Python: a sync
    ``func`` (``llm_call_execute_sync``, or a sync function given to the async
    entry point) runs to completion, its result is returned, and an overrun is
    recorded as an ``llmflow.timeout_overrun`` mark. Bound those with the SDK's
    own ``timeout=`` instead.
    """

    __slots__ = ("clock", "seconds")

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.seconds = seconds
        self.clock = clock

    def __repr__(self) -> str:
        return f"timeout({self.seconds})"

    def __call__(self, request: Any, call_next: Callable[..., Any]) -> Any:
        call = current_call()
        started = self.clock()
        result = call_next()
        elapsed = self.clock() - started
        if elapsed > self.seconds:  # ran synchronously past the bound: nothing could stop it
            data: Json = {"seconds": self.seconds, "elapsed": elapsed}
            record_mark("timeout", "llmflow.timeout_overrun", data, call)
        if inspect.isawaitable(result):
            return self._bounded(result, call)
        return result

    async def _bounded(self, awaitable: Awaitable[Any], call: Call | None) -> Any:
        # What asyncio.timeout does (one timer; cancel the task when it fires;
        # uncancel and turn that cancellation into our error), without its
        # context-manager object, state enum and reschedule: about half its cost.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("timeout() must run inside an asyncio task")
        cancelling = task.cancelling()
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = loop.call_at(loop.time() + self.seconds, expire)
        try:
            result = await awaitable
        except BaseException as exc:
            handle.cancel()
            if fired:
                ours = task.uncancel() <= cancelling and type(exc) is asyncio.CancelledError
                if ours or isinstance(exc, TimeoutError):
                    raise self._error(call) from None
            raise  # the provider's own error (its own TimeoutError included), or outer cancel
        handle.cancel()
        if fired:  # expired as the result arrived: withdraw our cancel request
            task.uncancel()
        return result

    def _error(self, call: Call | None) -> CallTimeoutError:
        name = "call" if call is None else f"{call.category} call {call.name!r}"
        record_mark("timeout", "llmflow.timeout", {"seconds": self.seconds}, call)
        return CallTimeoutError(
            f"{name} did not finish within {self.seconds} s (llmflow.middleware.timeout)",
            seconds=self.seconds,
        )

    def stream(self, request: LlmRequest, call_next: Callable[..., Any]) -> Any:
        """Stream intercept: the first chunk must arrive within ``seconds``.

        In ``llm_stream_call_execute`` a later first chunk raises
        :class:`CallTimeoutError`; a synchronous stream cannot be interrupted,
        so there a late first chunk only leaves an ``llmflow.timeout_overrun``
        mark.
        """
        iterator = call_next()
        if is_async_iterator(iterator):
            return self._first_chunk_async(iterator)
        return self._first_chunk_sync(iter(iterator))

    async def _first_chunk_async(self, iterator: Any) -> AsyncIterator[Json]:
        if not hasattr(iterator, "__anext__"):
            iterator = iterator.__aiter__()
        try:
            try:
                async with asyncio.timeout(self.seconds) as bound:
                    first = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not bound.expired():
                    raise
                raise self._error(None) from None
            yield first
            async for chunk in iterator:
                yield chunk
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()

    def _first_chunk_sync(self, iterator: Iterator[Json]) -> Iterator[Json]:
        try:
            started = self.clock()
            try:
                first = next(iterator)
            except StopIteration:
                return
            elapsed = self.clock() - started
            if elapsed > self.seconds:
                data: Json = {"seconds": self.seconds, "elapsed": elapsed}
                record_mark("timeout", "llmflow.timeout_overrun", data, None)
            yield first
            yield from iterator
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def timeout(seconds: float, *, clock: Callable[[], float] = time.monotonic) -> Timeout:
    """Build a timeout execution intercept bounding each call it wraps to ``seconds``.

    Register it inside :func:`retry` (a higher priority number) to bound each
    attempt, outside to bound all attempts together. Raises ``ValueError``
    naming ``seconds`` unless it is a finite number > 0.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds: expected a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds: expected a finite number of seconds > 0, got {seconds!r}")
    if not callable(clock):
        raise TypeError(f"clock: expected a callable, got {type(clock).__name__}")
    return Timeout(float(seconds), clock)
