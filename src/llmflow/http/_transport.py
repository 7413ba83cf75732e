"""``Transport`` and ``AsyncTransport``: httpx2 transports that record provider calls.

They wrap an inner transport. A request on a provider route becomes one managed
call (SPEC §4/§5) whose ``func`` is the real send; everything else passes
through untouched. The two classes differ only at the I/O edge; the logic of an
attempt lives in :class:`llmflow.http._exchange.Exchange`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from itertools import chain
from typing import Any, Final, cast

import httpx2
from orjson import JSONDecodeError, dumps, loads

from llmflow._errors import GuardrailRejected
from llmflow._llm import llm_call_execute, llm_call_execute_sync, llm_stream_call_execute
from llmflow._runtime import get_runtime
from llmflow._scope import ScopeHandle, exception_metadata, pop_scope, push_scope
from llmflow._stream import LlmStream, LlmStreamSync, llm_stream_call_execute_sync
from llmflow._types import Json, LlmRequest
from llmflow.http._errors import ProviderHTTPError
from llmflow.http._exchange import (
    RECORDED,
    SKIP,
    Exchange,
    answer,
    answer_headers,
    current_call,
    embedding_summary,
    is_sse,
    parse_body,
)
from llmflow.http._routes import DEFAULT_ROUTES, Route, match_route
from llmflow.http._sse import SseSplitter

__all__ = ["AsyncTransport", "Transport"]

_REMOTE: Final = ("remote",)
_END: Final[Any] = object()


def _routes(routes: Iterable[Route] | None) -> tuple[Route, ...]:
    if routes is None:
        return DEFAULT_ROUTES
    result = tuple(routes)
    for route in result:
        if not isinstance(route, Route):
            raise TypeError(
                f"routes: expected llmflow.http.Route items, got {type(route).__name__}"
            )
    return result


def _route_of(routes: tuple[Route, ...], request: httpx2.Request) -> Route | None:
    if request.extensions.get(RECORDED):
        return None  # an outer llmflow transport records this request already
    route = match_route(routes, request.method, request.url.path)
    if route is not None:
        # A new dict: the SDK may share the one it passed with its next attempts.
        request.extensions = {**request.extensions, RECORDED: True}
    return route


def _call_options(exchange: Exchange) -> dict[str, Any]:
    """The keyword arguments of the managed call (streamed or not) for ``exchange``."""
    return {
        "attributes": _REMOTE,
        "metadata": exchange.metadata or None,
        "codec": exchange.codec,
        "response_codec": exchange.codec,
    }


class _ChunkReader:
    """The provider's SSE bytes as chunks, or as folded event bytes (no I/O: both twins feed it).

    :meth:`feed` yields parsed chunks for the stream pipeline: before a chunk is
    yielded, ``exchange.own``/``own_raw`` are set to it and its bytes. :meth:`feed_raw`
    is the path when no stream intercept needs chunks: it folds each chunk into the
    codec itself and returns the provider's bytes of the complete events of a read,
    which the relay passes to the SDK unchanged. In both, an event that is no chunk
    (``SKIP``) goes out with the next one.
    """

    __slots__ = ("_exchange", "_fast", "_fold", "_hits", "_pending", "_slot", "_splitter", "_tries")

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._splitter = SseSplitter()
        self._pending = b""
        self._fold = exchange.fold
        self._slot = exchange.text_slot
        self._fast: _Shape | None = None
        self._tries = 0
        self._hits = 0

    def feed(self, part: bytes) -> Iterator[Json]:
        exchange = self._exchange
        for raw, data in self._splitter.feed(part):
            chunk = exchange.chunk_of(data)
            if chunk is SKIP:  # its bytes go out with the next chunk
                self._pending += raw
                continue
            pending = self._pending
            exchange.own, exchange.own_raw = chunk, pending + raw if pending else raw
            self._pending = b""
            yield chunk

    def feed_raw(self, part: bytes) -> bytes:
        """Fold the chunks of the events ``part`` completes; return their bytes (maybe ``b""``).

        The usual read, one whole one-line ``data: {...}`` event, is returned
        as the same object after one parse and one fold: no split, no copy.
        A read of the shape the previous read had (see :class:`_Shape`) is only
        checked and its text decoded and appended.
        """
        fast = self._fast
        if fast is not None:
            prefix, end, first, last, mid, append = fast
            if part.startswith(prefix) and part.endswith(end):
                # A read shorter than prefix + end (the two overlap) leaves at most one
                # byte between ``first`` and ``last``: never a JSON string, so no length test.
                try:  # the text (and the free string) must be whole JSON strings
                    if mid is None:
                        text = loads(part[first:-last])
                    else:
                        found = mid.search(part, first + 1)  # the middle, free string, end
                        if found is None:
                            raise JSONDecodeError("not the learned shape", "", 0)
                        at = found.start()
                        text = loads(part[first : at + 1])
                except JSONDecodeError:
                    pass
                else:
                    append(text)
                    self._hits += 1
                    return part
            self._fast = None  # another shape: the usual path (which may learn it)
        if part[:7] == b"data: {" and part[-2:] == b"\n\n" and not self._splitter.buffer:
            data = part[6:-2]
            if 10 in data or 13 in data:  # more than one line: the splitter reads it
                return self._feed_events(part)
            try:  # starts with "{": neither a comment nor [DONE]
                chunk = loads(data)
            except JSONDecodeError:  # counted, sent with the next chunk
                self._exchange.chunk_of(data)
                self._pending += part
                return b""
            self._fold(chunk)
            if self._slot is not None and self._tries <= self._hits + _TRIES:
                self._learn(part, data, chunk)
            if self._pending:
                part, self._pending = self._pending + part, b""
            return part
        return self._feed_events(part)

    def _feed_events(self, part: bytes) -> bytes:
        relayed: list[bytes] = []
        chunk: Any = SKIP
        for raw, data in self._splitter.feed(part):
            chunk = self._exchange.chunk_of(data)
            if chunk is SKIP:
                self._pending += raw
                continue
            self._fold(chunk)
            if self._pending:
                relayed.append(self._pending)
                self._pending = b""
            relayed.append(raw)
        if (
            len(relayed) == 1
            and relayed[0] is part  # the read was one whole event, a chunk
            and self._slot is not None
            and self._tries <= self._hits + _TRIES
        ):
            self._learn(part, cast(bytes, data), chunk)
        return relayed[0] if len(relayed) == 1 else b"".join(relayed)

    def _learn(self, part: bytes, data: bytes, chunk: Json) -> None:
        """Keep the shape of ``part`` (one event; ``chunk`` just folded) if it only adds text."""
        self._tries += 1
        try:
            self._fast = _shape(part, data, chunk, cast(Callable[[Json], Any], self._slot))
        except Exception:  # a shortcut never breaks the stream: the usual path stays
            self._fast = None

    def finish(self) -> None:
        """At the end of the body: what follows the last chunk becomes the exchange's tail."""
        self._exchange.tail = self._pending + self._splitter.rest()


# How many reads (beyond one per fast read) may try to learn a shape: a stream whose
# chunks never take the fast path stops paying for the attempts.
_TRIES: Final = 4

# A free string's body: printable ASCII without a quote or a backslash, so a valid JSON
# string body without a check (OpenAI's obfuscation is letters and digits).
_FREE: Final = rb"[\x20\x21\x23-\x5b\x5d-\x7e]*"

_Shape = tuple[bytes, bytes, int, int, "re.Pattern[bytes] | None", Callable[[str], object]]
"""A read shape: ``(prefix, end, first, last, mid, append)``.

A read that starts with ``prefix`` (ending in the opening quote of the text,
at ``first``) and ends with ``end`` (starting with the closing quote of the
last string slot, ``last`` bytes before the end of the read) is the learned
event with other text: without ``mid``, the bytes between them are the
text's JSON string body; with ``mid`` (a pattern: the bytes from the text's
closing quote to the opening quote of the free string, the free string, the
end), the text comes before the match and the free string (a value the fold
ignores, such as OpenAI's ``obfuscation``) inside it. The text must decode
as a JSON string; the pattern admits only free strings that are JSON string
bodies. JSON is read left to right, so the read
then parses to the learned chunk with the strings replaced, and the
accumulator's ``text_slot`` promise makes folding it the same as
``append(text)``.
"""


def _shape(
    part: bytes, data: bytes, chunk: Json, text_slot: Callable[[Json], Any]
) -> _Shape | None:
    """The shape of ``part`` for the fast path, or ``None``.

    ``part`` must be exactly one ``data:`` line (maybe after one ``event:``
    line) ending in a blank line, without ``\\r``, so a read with the same
    lines is one event for the splitter too. A probe with other text (and
    another free string) in the found places must be read back by
    ``text_slot`` as that text with the same ``append``: this proves the
    places are the ones the fold reads.
    """
    slot = text_slot(chunk)
    if slot is None or b"\r" in part or not part.endswith(b"\n\n"):
        return None
    text, append, free = slot
    at = len(part) - 2 - len(data)  # where ``data`` starts in ``part``
    head = part[:at]
    if at < 6 or part[at:-2] != data or b"\n" in data:
        return None
    if head != b"data: " and not (
        head.startswith(b"event: ") and head.endswith(b"\ndata: ") and head.count(b"\n") == 1
    ):
        return None
    encoded = dumps(text)
    t0 = data.find(encoded)
    if t0 < 0:
        return None
    t1 = t0 + len(encoded)
    marked = text + "\x00"  # differs from the text, so a misplaced slot shows
    if free is None:
        probe = data[:t0] + dumps(marked) + data[t1:]
        if text_slot(loads(probe)) != (marked, append, None):
            return None
        prefix, end = part[: at + t0 + 1], part[at + t1 - 1 :]
        return prefix, end, len(prefix) - 1, len(end) - 1, None, append
    encoded_free = dumps(free)
    f0 = data.find(encoded_free, t1)
    if f0 < 0:
        return None
    f1 = f0 + len(encoded_free)
    free_marked = free + "\x00"
    probe = data[:t0] + dumps(marked) + data[t1:f0] + dumps(free_marked) + data[f1:]
    if text_slot(loads(probe)) != (marked, append, free_marked):
        return None
    prefix, mid, end = part[: at + t0 + 1], part[at + t1 - 1 : at + f0 + 1], part[at + f1 - 1 :]
    tail = re.compile(re.escape(mid) + _FREE + re.escape(end) + rb"\Z")
    return prefix, end, len(prefix) - 1, len(end) - 1, tail, append


def _open_embedder(exchange: Exchange) -> ScopeHandle:
    return push_scope(
        exchange.route.name,
        "embedder",
        data=exchange.event_request(),
        metadata=exchange.metadata or None,
        attributes=_REMOTE,
    )


def _close_embedder(
    exchange: Exchange, span: ScopeHandle, response: httpx2.Response, raw: bytes
) -> httpx2.Response:
    headers = answer_headers(response.headers)
    parsed = parse_body(raw, response.headers, headers)
    metadata = {**exchange.metadata, **exchange.response_metadata(response, parsed, headers)}
    pop_scope(span, data=embedding_summary(parsed), metadata=metadata)
    return answer(response, raw)


class Transport(httpx2.BaseTransport):
    """A sync httpx2 transport that records every provider call it carries.

    ``inner`` does the real I/O (default: a new ``httpx2.HTTPTransport()``);
    ``routes`` replaces :data:`llmflow.http.DEFAULT_ROUTES`. Never changes a
    request no middleware changed, never changes a response, never raises an
    error the inner transport did not raise (transport errors are recorded
    and re-raised unchanged).
    """

    def __init__(
        self, inner: httpx2.BaseTransport | None = None, *, routes: Iterable[Route] | None = None
    ) -> None:
        if inner is not None and not isinstance(inner, httpx2.BaseTransport):
            raise TypeError(f"inner: expected an httpx2.BaseTransport, got {type(inner).__name__}")
        self._inner = inner if inner is not None else httpx2.HTTPTransport()
        self._routes = _routes(routes)
        self._origin: object = None  # a client whose finalizer would close ``inner``

    @property
    def inner(self) -> httpx2.BaseTransport:
        """The transport that does the I/O."""
        return self._inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        route = _route_of(self._routes, request)
        if route is None:
            return self._inner.handle_request(request)
        exchange = Exchange(route, request, request.read(), get_runtime())
        if route.category == "embedder":
            return self._embed(exchange)
        if exchange.streaming:
            return self._stream(exchange)
        try:
            result = llm_call_execute_sync(
                route.name,
                exchange.llm_request,
                lambda req: self._send(exchange, req),
                **_call_options(exchange),
            )
        except GuardrailRejected as exc:
            return exchange.rejection(exc)
        except ProviderHTTPError as exc:
            return exchange.error_response(exc)
        return exchange.response_for(result)

    def _read(self, response: httpx2.Response) -> bytes:
        stream = cast(httpx2.SyncByteStream, response.stream)
        try:
            return b"".join(stream)
        finally:
            stream.close()

    def _send(self, exchange: Exchange, request: LlmRequest) -> Json:
        response = self._inner.handle_request(exchange.wire(request))
        return exchange.received(response, self._read(response), current_call())

    def _embed(self, exchange: Exchange) -> httpx2.Response:
        span = _open_embedder(exchange)
        try:
            response = self._inner.handle_request(exchange.request)
            raw = self._read(response)
        except BaseException as exc:
            pop_scope(span, metadata={**exchange.metadata, **exception_metadata(exc)})
            raise
        return _close_embedder(exchange, span, response, raw)

    def _stream(self, exchange: Exchange) -> httpx2.Response:
        collect, finalize = exchange.stream_callbacks()
        try:
            stream = llm_stream_call_execute_sync(
                exchange.route.name,
                exchange.llm_request,
                lambda req: self._events(exchange, req),
                collect,
                finalize,
                **_call_options(exchange),
            )
        except GuardrailRejected as exc:
            return exchange.rejection(exc)
        exchange.call = stream.handle
        return _SyncRelay(stream, exchange).open()

    def _events(self, exchange: Exchange, request: LlmRequest) -> Iterator[Json]:
        response = self._inner.handle_request(exchange.wire(request))
        if not is_sse(response):
            exchange.whole = exchange.received(response, self._read(response), exchange.call)
            return
        exchange.started_stream(response)
        stream = cast(httpx2.SyncByteStream, response.stream)
        reader = _ChunkReader(exchange)
        try:
            if exchange.use_raw():
                # Without a stream intercept the SDK gets the provider's bytes of the
                # events of each read as they complete; only the codec's fold reads
                # the parsed chunks.
                feed_raw = reader.feed_raw
                for part in stream:
                    if relayed := feed_raw(part):
                        yield relayed
            else:
                for part in stream:
                    yield from reader.feed(part)
            reader.finish()
        finally:
            stream.close()

    def close(self) -> None:
        self._inner.close()


class _SyncRelay(httpx2.SyncByteStream):
    """The byte stream the SDK reads: the provider's event bytes as each event completes."""

    def __init__(self, stream: LlmStreamSync, exchange: Exchange) -> None:
        self._stream = stream
        self._exchange = exchange
        self._first: Any = _END

    def open(self) -> httpx2.Response:
        exchange = self._exchange
        try:
            self._first = next(self._stream)
        except StopIteration:
            self._first = _END
        except ProviderHTTPError as exc:
            return exchange.error_response(exc)
        if exchange.sdk_response is not None:  # a whole (non-SSE) answer
            return exchange.sdk_response
        return exchange.relay_response(self)

    def __iter__(self) -> Iterator[bytes]:
        first = self._first
        if first is not _END and self._exchange.raw:
            # The items are the provider's bytes, folded already: chained in C, so no
            # frame of this relay resumes per chunk.
            self._first = _END
            return chain((first,), self._stream.uncollected(), self._tail())
        return self._framed()

    def _framed(self) -> Iterator[bytes]:
        exchange = self._exchange
        if self._first is not _END:
            first, self._first = self._first, _END
            yield exchange.frame(first)
            for chunk in self._stream:
                yield exchange.frame(chunk)
        yield from self._tail()

    def _tail(self) -> Iterator[bytes]:
        tail = self._exchange.take_tail()
        if tail:
            yield tail

    def close(self) -> None:
        self._stream.close()


class AsyncTransport(httpx2.AsyncBaseTransport):
    """The async twin of :class:`Transport` (for ``AsyncOpenAI``, ``AsyncAnthropic``, ...).

    ``inner`` defaults to a new ``httpx2.AsyncHTTPTransport()``.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        routes: Iterable[Route] | None = None,
    ) -> None:
        if inner is not None and not isinstance(inner, httpx2.AsyncBaseTransport):
            raise TypeError(
                f"inner: expected an httpx2.AsyncBaseTransport, got {type(inner).__name__}"
            )
        self._inner = inner if inner is not None else httpx2.AsyncHTTPTransport()
        self._routes = _routes(routes)
        self._origin: object = None

    @property
    def inner(self) -> httpx2.AsyncBaseTransport:
        """The transport that does the I/O."""
        return self._inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        route = _route_of(self._routes, request)
        if route is None:
            return await self._inner.handle_async_request(request)
        exchange = Exchange(route, request, await request.aread(), get_runtime())
        if route.category == "embedder":
            return await self._embed(exchange)
        if exchange.streaming:
            return await self._stream(exchange)
        try:
            result = await llm_call_execute(
                route.name,
                exchange.llm_request,
                lambda req: self._send(exchange, req),
                **_call_options(exchange),
            )
        except GuardrailRejected as exc:
            return exchange.rejection(exc)
        except ProviderHTTPError as exc:
            return exchange.error_response(exc)
        return exchange.response_for(result)

    async def _read(self, response: httpx2.Response) -> bytes:
        stream = cast(httpx2.AsyncByteStream, response.stream)
        try:
            return b"".join([part async for part in stream])
        finally:
            await stream.aclose()

    async def _send(self, exchange: Exchange, request: LlmRequest) -> Json:
        call = current_call()
        response = await self._inner.handle_async_request(exchange.wire(request))
        return exchange.received(response, await self._read(response), call)

    async def _embed(self, exchange: Exchange) -> httpx2.Response:
        span = _open_embedder(exchange)
        try:
            response = await self._inner.handle_async_request(exchange.request)
            raw = await self._read(response)
        except BaseException as exc:
            pop_scope(span, metadata={**exchange.metadata, **exception_metadata(exc)})
            raise
        return _close_embedder(exchange, span, response, raw)

    async def _stream(self, exchange: Exchange) -> httpx2.Response:
        collect, finalize = exchange.stream_callbacks()
        try:
            stream = await llm_stream_call_execute(
                exchange.route.name,
                exchange.llm_request,
                lambda req: self._events(exchange, req),
                collect,
                finalize,
                **_call_options(exchange),
            )
        except GuardrailRejected as exc:
            return exchange.rejection(exc)
        llm_stream = cast(LlmStream, stream)
        exchange.call = llm_stream.handle
        return await _AsyncRelay(llm_stream, exchange).open()

    async def _events(self, exchange: Exchange, request: LlmRequest) -> AsyncIterator[Json]:
        response = await self._inner.handle_async_request(exchange.wire(request))
        if not is_sse(response):
            exchange.whole = exchange.received(response, await self._read(response), exchange.call)
            return
        exchange.started_stream(response)
        stream = cast(httpx2.AsyncByteStream, response.stream)
        reader = _ChunkReader(exchange)
        try:
            if exchange.use_raw():
                feed_raw = reader.feed_raw
                async for part in stream:
                    if relayed := feed_raw(part):
                        yield relayed
            else:
                async for part in stream:
                    for chunk in reader.feed(part):
                        yield chunk
            reader.finish()
        finally:
            await stream.aclose()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AsyncRelay(httpx2.AsyncByteStream):
    """The async twin of :class:`_SyncRelay`."""

    def __init__(self, stream: LlmStream, exchange: Exchange) -> None:
        self._stream = stream
        self._exchange = exchange
        self._first: Any = _END

    async def open(self) -> httpx2.Response:
        exchange = self._exchange
        try:
            self._first = await self._stream.__anext__()
        except StopAsyncIteration:
            self._first = _END
        except ProviderHTTPError as exc:
            return exchange.error_response(exc)
        if exchange.sdk_response is not None:
            return exchange.sdk_response
        return exchange.relay_response(self)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        exchange = self._exchange
        if self._first is not _END:
            first, self._first = self._first, _END
            if exchange.raw:  # the items are the provider's bytes, folded already
                yield first
                async for chunk in self._stream.uncollected():
                    yield chunk
            else:
                yield exchange.frame(first)
                async for chunk in self._stream:
                    yield exchange.frame(chunk)
        tail = exchange.take_tail()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self._stream.aclose()
