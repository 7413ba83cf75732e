"""The iterator returned by ``llm_stream_call_execute``.

It guarantees exactly one end event per stream, whether the stream is
exhausted, closed early, abandoned, or fails in the provider, a stream
intercept, the collector or the finalizer.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Final

from ._call import Call
from ._errors import FlowError, MiddlewareProtocolError
from ._families import LLM_STREAM_EXECUTION, chain
from ._types import Json, LlmRequest

__all__ = ["LlmStream"]

_SAME: Final[Any] = object()


async def _await_iterator(awaitable: Any) -> AsyncIterator[Json]:
    iterator = _as_iterator(await awaitable, "func")
    async for chunk in iterator:
        yield chunk


def _as_iterator(value: Any, source: str) -> AsyncIterator[Json]:
    if hasattr(value, "__anext__"):
        return value  # type: ignore[no-any-return]
    if hasattr(value, "__aiter__"):
        return value.__aiter__()  # type: ignore[no-any-return]
    if inspect.isawaitable(value):
        return _await_iterator(value)
    raise TypeError(f"{source}: expected an async iterator of chunks, got {type(value).__name__}")


def open_stream(
    call: Call, request: LlmRequest, func: Callable[[LlmRequest], Any]
) -> AsyncIterator[Json]:
    """Build the provider stream wrapped by the stream execution intercepts.

    Each intercept is ``(request, next) -> async iterator``; ``next(request=None)``
    returns the rest of the chain's iterator and may be called again (retries)
    until the stream has ended; after that it raises :class:`MiddlewareProtocolError`.
    """
    entries = chain(call.runtime, LLM_STREAM_EXECUTION)

    def build(index: int, req: LlmRequest) -> AsyncIterator[Json]:
        if index == len(entries):
            return _as_iterator(func(req), "func")
        entry = entries[index]

        def next_(new_request: Any = _SAME) -> AsyncIterator[Json]:
            if call.ended:
                raise MiddlewareProtocolError(
                    f"stream execution intercept {entry.name!r} called next() after the "
                    f"stream {call.name!r} ended"
                )
            return build(index + 1, req if new_request is _SAME else new_request)

        return _as_iterator(entry.fn(req, next_), f"stream execution intercept {entry.name!r}")

    return build(0, request)


class LlmStream(AsyncIterator[Json]):
    """Async iterator over a managed stream's chunks; ends its LLM span exactly once.

    Use it with ``async for``; ``aclose()`` (or leaving ``async with``) before
    the end records the partial response with ``stream.closed_early`` metadata.
    """

    __slots__ = (
        "_call",
        "_collector",
        "_end",
        "_finalizer",
        "_func",
        "_inner",
        "_request",
        "_response_codec",
        "done",
    )

    def __init__(
        self,
        call: Call,
        request: LlmRequest,
        func: Callable[[LlmRequest], Any],
        collector: Callable[[Json], object],
        finalizer: Callable[[], Json],
        response_codec: Any,
        end: Callable[..., None],
    ) -> None:
        self._call = call
        self._request = request
        self._func = func
        self._collector = collector
        self._finalizer = finalizer
        self._response_codec = response_codec
        self._end = end
        self._inner: AsyncIterator[Json] | None = None
        self.done = False

    def __aiter__(self) -> LlmStream:
        return self

    async def __anext__(self) -> Json:
        if self.done:
            raise StopAsyncIteration
        try:
            inner = self._inner
            if inner is None:
                inner = self._inner = open_stream(self._call, self._request, self._func)
            chunk = await inner.__anext__()
        except StopAsyncIteration:
            self._finish(None, None)
            raise
        except BaseException as exc:
            self._finish(exc, None)
            raise
        try:
            self._collector(chunk)
        except BaseException as exc:
            try:
                await self._close_inner()
            except Exception as close_error:  # the collector's error is the one to report
                self._call.runtime.record_failure(f"stream_close:{self._call.name}", close_error)
            finally:
                self._finish(exc, None)
            raise
        return chunk

    async def aclose(self) -> None:
        """Stop early: close the provider stream and emit the end event (once)."""
        if self.done:
            return
        try:
            await self._close_inner()
        finally:
            self._finish(None, {"stream.closed_early": True})

    async def __aenter__(self) -> LlmStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _close_inner(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    def _finish(self, error: BaseException | None, metadata: dict[str, Any] | None) -> None:
        if self.done:
            return
        self.done = True
        call = self._call
        call.claim_end()
        response: Json = None
        if error is None:
            try:
                response = self._finalizer()
            except Exception as exc:  # recorded on the end event, never raised
                call.runtime.record_failure(f"stream_finalizer:{call.name}", exc)
                error = exc
        self._end(
            call,
            response,
            metadata=metadata,
            response_codec=self._response_codec,
            error=error,
        )

    def __del__(self) -> None:
        if not self.done:  # abandoned without aclose(): still end the span once
            with contextlib.suppress(FlowError):  # runtime already shut down
                self._finish(None, {"stream.abandoned": True})
