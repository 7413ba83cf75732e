"""The iterators returned by ``llm_stream_call_execute`` and its ``_sync`` twin.

They guarantee exactly one end event per stream, whether the stream is
exhausted, closed early, dropped, or fails in the provider, a stream
intercept, the collector or the finalizer. The async and sync iterators share
their state and their ending (:class:`_StreamState`); they differ only in how
they pull a chunk and close the provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, cast

from llmflow._call import Call
from llmflow._clock import now_us
from llmflow._drive import drive_sync
from llmflow._errors import FlowError, MiddlewareProtocolError, SyncCallbackError
from llmflow._families import LLM_STREAM_EXECUTION, chain
from llmflow._json import metadata_snapshot
from llmflow._registry import Entry
from llmflow._scope import _STACK, enter_span
from llmflow._types import Json, JsonObject, LlmRequest
from llmflow._validate import check_callable

if TYPE_CHECKING:
    from llmflow._scope import Span
    from llmflow.codecs import RequestCodec, ResponseCodec, StreamAccumulator

__all__ = [
    "LlmStream",
    "LlmStreamSync",
    "add_end_metadata",
    "codec_fold",
    "llm_stream_call_execute_sync",
    "stream_callbacks",
]

_SAME: Final[Any] = object()
_CANCELLED: Final = {"cancelled": True}


def add_end_metadata(call: Call, metadata: JsonObject, *, replace: Iterable[str] = ()) -> None:
    """Merge ``metadata`` into what the call's end event will record.

    For code that learns facts while the call runs (an HTTP status, a request
    id); keys given later win, and the keys named in ``replace`` are dropped
    first (the facts of an earlier attempt that this one supersedes). Invalid
    metadata raises before anything changes.
    """
    kept = {k: v for k, v in call.metadata.items() if k not in replace} if call.metadata else {}
    merged = {**kept, **metadata}
    raw = metadata_snapshot(merged)
    call.metadata, call.metadata_raw = merged, raw


def codec_fold(
    runtime: Any, response_codec: ResponseCodec
) -> tuple[StreamAccumulator, Callable[[Json], None]]:
    """A fresh accumulator of ``response_codec`` and its fold, which never raises.

    A chunk the codec cannot read is counted in diagnostics
    (``codec:<schema name>``) and skipped.
    """
    accumulator = response_codec.stream_accumulator()
    fold = accumulator.collect
    source = f"codec:{response_codec.data_schema.name}"

    def fold_only(chunk: Json) -> None:
        try:
            fold(chunk)
        except Exception as exc:  # an unreadable chunk is the codec's failure, not the stream's
            runtime.count_failure(source, exc)

    return accumulator, fold_only


def stream_callbacks(
    runtime: Any,
    collector: Callable[[Json], object] | None,
    finalizer: Callable[[], Json] | None,
    response_codec: ResponseCodec | None,
) -> tuple[Callable[[Json], object], Callable[[], Json]]:
    """The ``(collector, finalizer)`` pair of a stream.

    With a ``response_codec`` its accumulator folds every chunk, also when the
    caller passes a ``collector`` of its own (both see each chunk, the caller's
    first); the caller's ``finalizer`` wins when given. A chunk the codec cannot
    read is counted in diagnostics (``codec:<schema name>``) and skipped: a
    codec never breaks the stream. Without a codec both callables are required.
    """
    if response_codec is None or (finalizer is not None and collector is not None):
        check_callable(collector, "collector")
        check_callable(finalizer, "finalizer")
        return cast("Callable[[Json], object]", collector), cast("Callable[[], Json]", finalizer)
    if collector is not None:
        check_callable(collector, "collector")
    if finalizer is not None:
        check_callable(finalizer, "finalizer")
    accumulator, fold_only = codec_fold(runtime, response_codec)
    user = collector

    def both(chunk: Json) -> None:
        user(chunk)  # type: ignore[misc]
        fold_only(chunk)

    collect = fold_only if user is None else both
    return collect, finalizer if finalizer is not None else accumulator.finalize


# -- opening the provider stream through the stream execution intercepts -----------------


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


def _as_sync_iterator(value: Any, source: str) -> Iterator[Json]:
    if hasattr(value, "__next__"):
        return value  # type: ignore[no-any-return]
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        return iter(value)
    if hasattr(value, "__anext__") or hasattr(value, "__aiter__") or inspect.isawaitable(value):
        close = getattr(value, "close", None) or getattr(value, "aclose", None)
        if inspect.iscoroutine(value):
            value.close()
        elif close is not None and not hasattr(value, "__aiter__"):
            close()
        raise SyncCallbackError(
            f"{source} returned an async stream, but llm_stream_call_execute_sync is "
            f"synchronous; use llm_stream_call_execute instead"
        )
    raise TypeError(f"{source}: expected an iterator of chunks, got {type(value).__name__}")


def _opener(
    call: Call,
    func: Callable[[LlmRequest], Any],
    wrap: Callable[[Any, str], Any],
) -> Callable[[LlmRequest], Any]:
    """Build the provider stream wrapped by the stream execution intercepts.

    Each intercept is ``(request, next) -> iterator``; ``next(request=None)``
    returns the rest of the chain's iterator and may be called again (retries)
    until the stream has ended; after that it raises :class:`MiddlewareProtocolError`.
    """
    entries = chain(call.runtime, LLM_STREAM_EXECUTION)
    return lambda request: _build(call, entries, func, wrap, 0, request)


def _build(
    call: Call,
    entries: tuple[Entry[Any], ...],
    func: Callable[[LlmRequest], Any],
    wrap: Callable[[Any, str], Any],
    index: int,
    req: LlmRequest,
) -> Any:
    """The iterator of ``entries[index:]`` around ``func`` (module level: no closure
    cycle, so the call is freed by reference counting when its stream is done)."""
    if index == len(entries):
        return wrap(func(req), "func")
    entry = entries[index]

    def next_(new_request: Any = _SAME) -> Any:
        if call.ended:
            raise MiddlewareProtocolError(
                f"stream execution intercept {entry.name!r} called next() after the "
                f"stream {call.name!r} ended"
            )
        forwarded = req if new_request is _SAME else new_request
        return _build(call, entries, func, wrap, index + 1, forwarded)

    # The call is the current span while the intercept builds its iterator, as it is
    # for execution intercepts, so middleware can record on the call's end event.
    outer = _STACK.get()
    enter_span(call)
    try:
        produced = entry.fn(req, next_)
    finally:
        _STACK.set(outer)
    return wrap(produced, f"stream execution intercept {entry.name!r}")


def open_stream(
    call: Call, request: LlmRequest, func: Callable[[LlmRequest], Any]
) -> AsyncIterator[Json]:
    """The async provider stream of ``call`` wrapped by the stream execution intercepts."""
    return _opener(call, func, _as_iterator)(request)  # type: ignore[no-any-return]


# -- the shared state ----------------------------------------------------------------------


class _StreamState:
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
        "first_chunk_us",
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
        self._inner: Any = None
        self.done = False
        self.first_chunk_us: int | None = None

    @property
    def handle(self) -> Call:
        """The LLM call this stream ends (its ``uuid``, ``name``, ``metadata``)."""
        return self._call

    def _finish(self, error: BaseException | None, metadata: JsonObject | None) -> None:
        if self.done:
            return
        self.done = True
        call = self._call
        call.claim_end()
        if self.first_chunk_us is not None:
            first = {"stream.time_to_first_chunk_us": self.first_chunk_us - call.started_us}
            metadata = {**first, **metadata} if metadata else first
        response: Json = None
        if error is None:
            try:
                response = self._finalizer()
            except Exception as exc:  # recorded on the end event, never raised
                call.runtime.count_failure(f"stream_finalizer:{call.name}", exc)
                error = exc
        self._end(
            call,
            response,
            metadata=metadata,
            response_codec=self._response_codec,
            error=error,
        )

    def _record_close_failure(self, exc: BaseException) -> None:
        self._call.runtime.count_failure(f"stream_close:{self._call.name}", exc)


class LlmStream(_StreamState, AsyncIterator[Json]):
    """Async iterator over a managed stream's chunks; ends its LLM span exactly once.

    Use it with ``async for``. ``aclose()`` (or leaving ``async with``) before
    the end, or dropping the last reference to it (``break`` out of ``async
    for chunk in await llm_stream_call_execute(...)``), records the partial
    response with ``cancelled: true`` and closes the provider stream.
    """

    __slots__ = ()

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
            if self.first_chunk_us is None:  # inlined: this runs per chunk
                self.first_chunk_us = now_us()
            self._collector(chunk)
        except BaseException as exc:
            try:
                await self._close_inner()
            except Exception as close_error:  # the collector's error is the one to report
                self._record_close_failure(close_error)
            finally:
                self._finish(exc, None)
            raise
        return chunk

    async def uncollected(self) -> AsyncIterator[Json]:
        """The remaining chunks, without the collector; ends the call as ``async for`` would.

        For a caller that folds each chunk itself (the HTTP transport's raw
        relay): one async generator step per chunk instead of a ``__anext__``
        call. Closing it early leaves the ending to :meth:`aclose` (or the
        finalizer), as breaking out of ``async for`` does.
        """
        if self.done:
            return
        inner = self._inner
        if inner is None:  # not opened yet: the usual path opens it
            async for chunk in self:
                yield chunk
            return
        try:
            async for chunk in inner:
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._finish(exc, None)
            raise
        self._finish(None, None)

    async def aclose(self) -> None:
        """Stop early: close the provider stream and emit the end event (once)."""
        if self.done:
            return
        try:
            await self._close_inner()
        finally:
            self._finish(None, _CANCELLED)

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

    def __del__(self) -> None:
        if self.done:
            return
        # Dropped without aclose(): end the span now, and close the provider stream
        # on the running loop (or right here when closing needs no await), so that
        # neither the end nor the provider's cleanup waits for interpreter exit.
        with contextlib.suppress(FlowError):  # runtime already shut down
            self._finish(None, _CANCELLED)
        close = getattr(self._inner, "aclose", None)
        if close is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        closing = close()
        if loop is not None and not loop.is_closed():
            try:
                task = loop.create_task(closing)
            except RuntimeError:  # the loop is shutting down: close it here instead
                pass
            else:
                task.add_done_callback(self._close_done)
                return
        try:
            closing.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._record_close_failure(exc)
        with contextlib.suppress(Exception):  # it needed the loop; its own finalizer remains
            closing.close()

    def _close_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._record_close_failure(cast(BaseException, task.exception()))


class LlmStreamSync(_StreamState, Iterator[Json]):
    """Iterator over a synchronous managed stream; ends its LLM span exactly once.

    ``close()`` (or leaving ``with``) before the end, or dropping the last
    reference, records the partial response with ``cancelled: true`` and closes
    the provider iterator.
    """

    __slots__ = ()

    def __iter__(self) -> LlmStreamSync:
        return self

    def __next__(self) -> Json:
        if self.done:
            raise StopIteration
        try:
            inner = self._inner
            if inner is None:
                opener = _opener(self._call, self._func, _as_sync_iterator)
                inner = self._inner = opener(self._request)
            chunk = next(inner)
        except StopIteration:
            self._finish(None, None)
            raise
        except BaseException as exc:
            self._finish(exc, None)
            raise
        try:
            if self.first_chunk_us is None:  # inlined: this runs per chunk
                self.first_chunk_us = now_us()
            self._collector(chunk)
        except BaseException as exc:
            try:
                self._close_inner()
            except Exception as close_error:
                self._record_close_failure(close_error)
            finally:
                self._finish(exc, None)
            raise
        return chunk

    def uncollected(self) -> Iterator[Json]:
        """The remaining chunks, without the collector; ends the call as iterating would.

        For a caller that folds each chunk itself (the HTTP transport's raw
        relay): a generator step per chunk instead of a ``__next__`` call.
        Closing it early is :meth:`close`, as for this iterator under ``yield from``.
        """
        if self.done:
            return
        inner = self._inner
        if inner is None:  # not opened yet: the usual path opens it
            yield from self
            return
        try:
            # Not ``yield from``: closing must close the provider through close(), as
            # for this iterator, not by closing ``inner`` first.
            for chunk in inner:  # noqa: UP028
                yield chunk
        except GeneratorExit:
            self.close()
            raise
        except BaseException as exc:
            self._finish(exc, None)
            raise
        self._finish(None, None)

    def close(self) -> None:
        """Stop early: close the provider iterator and emit the end event (once)."""
        if self.done:
            return
        try:
            self._close_inner()
        finally:
            self._finish(None, _CANCELLED)

    def __enter__(self) -> LlmStreamSync:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _close_inner(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        if not self.done:
            with contextlib.suppress(FlowError):
                try:
                    self._close_inner()
                except Exception as exc:
                    self._record_close_failure(exc)
                finally:
                    self._finish(None, _CANCELLED)


# -- the synchronous entry point -----------------------------------------------------------


def llm_stream_call_execute_sync(
    name: str,
    request: LlmRequest,
    func: Callable[[LlmRequest], Any],
    collector: Callable[[Json], object] | None = None,
    finalizer: Callable[[], Json] | None = None,
    *,
    parent: Span | str | None = None,
    attributes: Iterable[object] = (),
    data: Json = None,
    metadata: JsonObject | None = None,
    model_name: str | None = None,
    codec: RequestCodec | None = None,
    response_codec: ResponseCodec | None = None,
) -> LlmStreamSync:
    """Synchronous :func:`llm_stream_call_execute`: returns an iterator of chunks.

    Runs guardrails, request intercepts and sanitize-request and emits the start
    event (attributes include ``streaming``); iterating runs ``func(request)``
    (an iterator of chunks) wrapped by the stream execution intercepts, which
    must be synchronous here (an async one raises :class:`SyncCallbackError`).
    Exactly one end event, as for the async form.
    """
    from llmflow._llm import (  # _llm imports this module
        _check_request,
        _end,
        _new_handle,
        _open,
        _response_codec,
        recorded_request,
    )
    from llmflow._runtime import get_runtime

    runtime = get_runtime()
    runtime.check_open()
    handle = _new_handle(
        runtime, name, parent, attributes, data, metadata, model_name, None, "streaming"
    )
    request = _check_request(request)
    recorded = recorded_request(request)  # bad input fails before any middleware
    check_callable(func, "func")
    response_codec = _response_codec(codec, response_codec)
    collector, finalizer = stream_callbacks(runtime, collector, finalizer, response_codec)
    prepared = drive_sync(_open(runtime, handle, request, recorded, codec))
    return LlmStreamSync(handle, prepared, func, collector, finalizer, response_codec, _end)
