"""``ResponseCache``: answer repeated LLM requests from memory or a SQLite file."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import os
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from llmflow import intercepts
from llmflow._runtime import get_runtime
from llmflow._scope import Span
from llmflow._types import Json, LlmRequest
from llmflow.middleware._recording import current_call, record_end
from llmflow.middleware._shapes import (
    BUILT_IN,
    ReplayedStream,
    StreamTap,
    codec_for_chunk,
    codec_for_request,
    rechunk,
    request_key,
    tap,
)

__all__ = ["ResponseCache"]


def _encode_value(value: Any) -> Any:
    """JSON form of a provider result; pydantic SDK objects keep their class for the hit."""
    dump = getattr(value, "model_dump", None)
    if dump is not None and not isinstance(value, dict):
        cls = type(value)
        return {"pydantic": f"{cls.__module__}:{cls.__qualname__}", "value": dump(mode="json")}
    return {"json": value}


def _decode_value(stored: Any) -> Any:
    if "json" in stored:
        return stored["json"]
    module, _, qualname = stored["pydantic"].partition(":")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target.model_validate(stored["value"])


class _Memory:
    def __init__(self, max_entries: int) -> None:
        self._items: OrderedDict[str, tuple[float | None, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, key: str, now: float) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] is not None and item[0] <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, expires: float | None, payload: bytes) -> None:
        with self._lock:
            self._items[key] = (expires, payload)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def close(self) -> None:
        pass


class _Sqlite:
    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS llmflow_cache "
                "(key TEXT PRIMARY KEY, expires REAL, payload BLOB NOT NULL)"
            )
            self._db.execute("SELECT count(*) FROM llmflow_cache").fetchone()
        except BaseException:
            self._db.close()
            raise

    def get(self, key: str, now: float) -> bytes | None:
        with self._lock:
            row = self._db.execute(
                "SELECT expires, payload FROM llmflow_cache WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            if row[0] is not None and row[0] <= now:
                self._db.execute("DELETE FROM llmflow_cache WHERE key = ?", (key,))
                return None
            return bytes(row[1])

    def put(self, key: str, expires: float | None, payload: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO llmflow_cache (key, expires, payload) VALUES (?, ?, ?)",
                (key, expires, payload),
            )

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM llmflow_cache")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class ResponseCache:
    """Execution and stream execution intercepts that answer a repeated request from a cache.

    ``backend`` is ``"memory"`` (bounded by ``max_entries``, least recently used
    evicted) or a path to a SQLite file (created when missing; shared by
    processes). The key is a SHA-256 of the codec-normalized request: model,
    system, messages, tools, tool choice, sampling parameters and other body
    fields, but not headers, caller ids (``user``, ``metadata``, …) or the
    stream flag; plain and streamed calls are cached apart. The codec is
    ``codec`` or recognised from the request; without one the raw body is used.

    A streamed response is stored folded (the codec's stream accumulator) and a
    hit is replayed as that provider's stream, chunk by chunk; a stream of a
    custom codec is stored as its chunks. Only complete streams are stored.
    ``ttl`` (seconds) bounds an entry's age. Every call through an enabled cache
    records ``cache.hit`` (``true``/``false``) on its end event.

    A cache file that cannot be opened or read (corrupt, unreadable, a
    directory) disables the cache with a ``RuntimeWarning``, counted in
    diagnostics as ``cache:<name>``; calls go through uncached. Raises
    ``TypeError``/``ValueError`` for a bad ``backend``, ``ttl`` or
    ``max_entries``.
    """

    def __init__(
        self,
        backend: str | os.PathLike[str] = "memory",
        *,
        ttl: float | None = None,
        codec: Any | None = None,
        name: str = "llmflow.cache",
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0
        ):
            raise ValueError(f"ttl: expected a positive number of seconds or None, got {ttl!r}")
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries <= 0:
            raise ValueError(f"max_entries: expected a positive int, got {max_entries!r}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        self.name = name
        self.ttl = ttl
        self.codec = codec
        self.hits = 0
        """Calls answered from the cache."""
        self.misses = 0
        """Calls looked up and sent to the provider."""
        self._count_lock = threading.Lock()
        self._clock = clock
        self._scope: Span | None = None
        self._store: _Memory | _Sqlite | None
        if backend == "memory":
            self._store = _Memory(max_entries)
        elif isinstance(backend, (str, os.PathLike)):
            self._store = None
            try:
                self._store = _Sqlite(Path(backend))
            except (sqlite3.Error, OSError) as exc:
                self._disable(f"cannot open cache file {os.fspath(backend)!r}", exc)
        else:
            raise TypeError(
                f"backend: expected 'memory' or a path to a SQLite file, got {backend!r}"
            )

    @property
    def enabled(self) -> bool:
        """Whether the cache is in use (``False`` after its file failed)."""
        return self._store is not None

    def _disable(self, what: str, exc: BaseException) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(sqlite3.Error):
                store.close()
        get_runtime().count_failure(f"cache:{self.name}", exc)
        warnings.warn(
            f"ResponseCache {self.name!r}: {what} ({type(exc).__name__}: {exc}); caching is "
            "disabled and calls go to the provider",
            RuntimeWarning,
            stacklevel=3,
        )

    # -- registration ------------------------------------------------------------------

    def register(self, *, scope: Span | None = None, priority: int = 0) -> ResponseCache:
        """Register both intercepts, globally or on ``scope``."""
        intercepts.register_llm_execution(self.name, priority, self._execute, scope=scope)
        intercepts.register_llm_stream_execution(self.name, priority, self._stream, scope=scope)
        self._scope = scope
        return self

    def deregister(self) -> bool:
        """Remove both intercepts; return whether they were registered."""
        found = intercepts.deregister_llm_execution(self.name, scope=self._scope)
        intercepts.deregister_llm_stream_execution(self.name, scope=self._scope)
        return found

    def clear(self) -> None:
        """Drop every entry."""
        if self._store is not None:
            self._store.clear()

    def close(self) -> None:
        """Close the SQLite file (the cache is disabled afterwards)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    # -- storage -----------------------------------------------------------------------

    def key(self, request: LlmRequest, *, stream: bool = False) -> str:
        """The cache key of ``request`` (hex SHA-256 of its normalized form)."""
        codec = self.codec or codec_for_request(request)
        digest = hashlib.sha256(b"stream\0" if stream else b"call\0")
        digest.update(request_key(request, codec))
        return digest.hexdigest()

    def _get(self, key: str) -> Any | None:
        store = self._store
        if store is None:
            return None
        try:
            raw = store.get(key, self._clock())
        except sqlite3.Error as exc:
            self._disable("cannot read the cache file", exc)
            return None
        if raw is None:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:  # one bad row: a miss, not a failure
            get_runtime().count_failure(f"cache:{self.name}", exc)
            return None

    def _put(self, key: str, value: Any) -> None:
        store = self._store
        if store is None:
            return
        try:
            payload = orjson.dumps(value)
        except TypeError as exc:  # not JSON: not cacheable, the call is unaffected
            get_runtime().count_failure(f"cache:{self.name}", exc)
            return
        expires = None if self.ttl is None else self._clock() + self.ttl
        try:
            store.put(key, expires, payload)
        except sqlite3.Error as exc:
            self._disable("cannot write the cache file", exc)

    def _record(self, call: Any, hit: bool) -> None:
        with self._count_lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
        record_end("cache", call, {"cache.hit": hit})

    # -- plain calls -------------------------------------------------------------------

    def _execute(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        if self._store is None:
            return next_(request)
        call = current_call()
        key = self.key(request)
        stored = self._get(key)
        if stored is not None:
            try:
                value = _decode_value(stored)
            except Exception as exc:  # a stored class that no longer loads: a miss
                get_runtime().count_failure(f"cache:{self.name}", exc)
            else:
                self._record(call, True)
                return value
        self._record(call, False)
        result = next_(request)
        if inspect.isawaitable(result):
            return self._store_later(key, result)
        self._put(key, _encode_value(result))
        return result

    async def _store_later(self, key: str, pending: Any) -> Any:
        result = await pending
        self._put(key, _encode_value(result))
        return result

    # -- streams -----------------------------------------------------------------------

    def _stream(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        if self._store is None:
            return next_(request)
        call = current_call()
        key = self.key(request, stream=True)
        stored = self._get(key)
        if stored is not None:
            chunks = self._stored_chunks(stored)
            if chunks is not None:
                self._record(call, True)
                return ReplayedStream(chunks)
        self._record(call, False)
        codec = self.codec or codec_for_request(request)
        return tap(next_(request), _Recorder(self, key, codec))

    def _stored_chunks(self, stored: Any) -> Iterator[Json] | None:
        try:
            if "chunks" in stored:
                chunks: list[Json] = stored["chunks"]
                return iter(chunks)
            return rechunk(stored["folded"], BUILT_IN[stored["codec"]])
        except Exception as exc:  # an entry this version cannot replay: a miss
            get_runtime().count_failure(f"cache:{self.name}", exc)
            return None


class _Recorder(StreamTap):
    """Folds (built-in codecs) or keeps (others) a stream's chunks; stores it once complete."""

    def __init__(self, cache: ResponseCache, key: str, codec: Any | None) -> None:
        self.cache = cache
        self.key = key
        self.detect = cache.codec is None and (
            codec is None or codec.data_schema.name not in BUILT_IN
        )
        self.codec = codec if codec is not None and codec.data_schema.name in BUILT_IN else None
        self.accumulator = None if self.codec is None else self.codec.stream_accumulator()
        self.raw: list[Json] | None = [] if self.codec is None else None
        self.seen = 0
        self.broken = False

    def chunk(self, chunk: Json) -> None:
        if self.broken:
            return
        if self.detect and self.seen == 0:
            found = codec_for_chunk(chunk)
            if found is not None:
                self.codec, self.accumulator, self.raw = found, found.stream_accumulator(), None
        self.seen += 1
        plain = chunk if type(chunk) is dict else _encode_value(chunk).get("value", chunk)
        try:
            if self.accumulator is not None:
                self.accumulator.collect(plain)
            elif self.raw is not None:
                self.raw.append(plain)
        except Exception as exc:  # an unfoldable stream is passed on, not cached
            get_runtime().count_failure(f"cache:{self.cache.name}", exc)
            self.broken = True

    def done(self) -> None:
        if self.broken or not self.seen:
            return
        if self.accumulator is not None and self.codec is not None:
            try:
                folded = self.accumulator.finalize()
            except Exception as exc:
                get_runtime().count_failure(f"cache:{self.cache.name}", exc)
                return
            self.cache._put(self.key, {"codec": self.codec.data_schema.name, "folded": folded})
        elif self.raw is not None:
            self.cache._put(self.key, {"chunks": self.raw})
