"""Stream execution intercepts that act before the first chunk, for sync and async streams.

``llm_stream_call_execute`` hands stream intercepts async iterators and
``llm_stream_call_execute_sync`` (used by the sync HTTP transport for SSE)
plain iterators; ``next()`` returns the kind the entry point runs, so one
intercept serves both by looking at what it got. Until the first chunk a
failure may be answered (retry, next model); after it, the caller has seen
part of the answer and failures propagate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final

from llmflow._types import Json

__all__ = ["Decide", "Outcome", "before_first_chunk", "is_async_iterator"]

Decide = Callable[[BaseException], "tuple[float, Any] | None"]
"""``decide(exc)``: ``(wait seconds, request for next())`` to try again, or ``None`` to fail."""
Outcome = Callable[[BaseException | None], None]
"""``outcome(error)``, called once: ``None`` at the first chunk (or an empty stream), the
final exception, or ``GeneratorExit`` when the consumer left before the first chunk."""

_SAME: Final[Any] = object()


def is_async_iterator(iterator: object) -> bool:
    """Whether ``next()`` of a stream intercept returned an async iterator (async entry point)."""
    return hasattr(iterator, "__anext__") or hasattr(iterator, "__aiter__")


def before_first_chunk(
    call_next: Callable[..., Any],
    decide: Decide,
    outcome: Outcome,
    sleep: Callable[[float], object],
    async_sleep: Callable[[float], Awaitable[object]],
) -> Any:
    """Open the rest of the chain; answer failures before the first chunk with ``decide``.

    Returns an async iterator when ``next()`` gave one, else an iterator.
    """
    request: Any = _SAME
    while True:
        try:
            iterator = call_next() if request is _SAME else call_next(request)
        except Exception as exc:  # a provider function that fails when called
            answer = decide(exc)
            if answer is None:
                outcome(exc)
                raise
            delay, request = answer
            if delay:
                sleep(delay)
            continue
        break
    if is_async_iterator(iterator):
        return _relay_async(iterator, call_next, decide, outcome, async_sleep)
    return _relay_sync(iterator, call_next, decide, outcome, sleep)


async def _relay_async(
    iterator: Any,
    call_next: Callable[..., Any],
    decide: Decide,
    outcome: Outcome,
    async_sleep: Callable[[float], Awaitable[object]],
) -> AsyncIterator[Json]:
    decided = False
    try:
        while True:
            try:
                if not hasattr(iterator, "__anext__"):
                    iterator = iterator.__aiter__()
                first = await iterator.__anext__()
            except StopAsyncIteration:
                decided = True
                outcome(None)
                return
            except Exception as exc:
                await _aclose(iterator)
                answer = decide(exc)
                if answer is None:
                    decided = True
                    outcome(exc)
                    raise
                delay, request = answer
                if delay:
                    await async_sleep(delay)
                try:
                    iterator = await _reopen(call_next, request, decide, async_sleep)
                except Exception as final:
                    decided = True
                    outcome(final)
                    raise
                continue
            break
        decided = True
        outcome(None)
        yield first
        async for chunk in iterator:
            yield chunk
    finally:
        if not decided:
            outcome(GeneratorExit())
        await _aclose(iterator)


async def _reopen(
    call_next: Callable[..., Any],
    request: Any,
    decide: Decide,
    async_sleep: Callable[[float], Awaitable[object]],
) -> Any:
    while True:
        try:
            return call_next(request)
        except Exception as exc:
            answer = decide(exc)
            if answer is None:
                raise
            delay, request = answer
            if delay:
                await async_sleep(delay)


def _relay_sync(
    iterator: Any,
    call_next: Callable[..., Any],
    decide: Decide,
    outcome: Outcome,
    sleep: Callable[[float], object],
) -> Iterator[Json]:
    decided = False
    try:
        while True:
            iterator = iter(iterator)
            try:
                first = next(iterator)
            except StopIteration:
                decided = True
                outcome(None)
                return
            except Exception as exc:
                _close(iterator)
                answer = decide(exc)
                if answer is None:
                    decided = True
                    outcome(exc)
                    raise
                delay, request = answer
                if delay:
                    sleep(delay)
                while True:
                    try:
                        iterator = call_next(request)
                        break
                    except Exception as again:
                        answer = decide(again)
                        if answer is None:
                            decided = True
                            outcome(again)
                            raise
                        delay, request = answer
                        if delay:
                            sleep(delay)
                continue
            break
        decided = True
        outcome(None)
        yield first
        yield from iterator
    finally:
        if not decided:
            outcome(GeneratorExit())
        _close(iterator)


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def _close(iterator: Any) -> None:
    close = getattr(iterator, "close", None)
    if close is not None:
        close()
