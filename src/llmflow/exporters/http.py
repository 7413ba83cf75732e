"""HttpExporter: ATOF lines to a collector over HTTP, with a disk spool while it is down.

Delivery is at-least-once. A batch is POSTed as gzip-compressed JSON Lines; while
the receiver is unreachable or answers with a retryable status, batches go to a
bounded spool (one fsynced file per batch) and are resent in order, before any
newer batch, when it answers again, also by a new exporter on the same
``spool_dir`` after the application restarted. A receiver de-duplicates with
each event's ``uuid`` + ``scope_category`` (``None`` for marks).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import re
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from itertools import chain
from pathlib import Path
from typing import ClassVar

import httpx2
import orjson

from llmflow._event import Event, LineParts
from llmflow.exporters._base import BaseExporter, ExportResult

__all__ = ["HttpExporter"]

_SPOOL_NAME = re.compile(r"^(\d{12})-(\d+)\.ndjson\.gz(\.tmp)?$")
_INLINE_WAIT_LIMIT = 2.0  # a longer wait is not slept on the worker: the batch is spooled
_GZIP_MAGIC = b"\x1f\x8b"


def _retryable(status: int) -> bool:
    """Statuses worth another try; every other non-2xx answer never succeeds as sent."""
    return status in (408, 425, 429) or (status >= 500 and status not in (501, 505))


def _retry_after(response: httpx2.Response | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), else ``None``."""
    value = None if response is None else response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _salvage(raw: bytes) -> tuple[list[bytes], int]:
    """Whole JSON-object lines of a damaged spool file, and how many broken lines it had.

    Reads as much of a gzip stream as decompresses (a crash can cut it anywhere),
    or the bytes as plain lines when they are not gzip; a cut-off last line and
    a line that is not a JSON object are broken records.
    """
    if raw.startswith(_GZIP_MAGIC):
        inflater = zlib.decompressobj(wbits=31)
        try:
            text = inflater.decompress(raw)
        except zlib.error:
            text = b""
        complete = inflater.eof
    else:
        text, complete = raw, True
    pieces = text.split(b"\n")
    tail = pieces.pop()  # text after the last newline: empty when the file ended cleanly
    broken = 1 if tail.strip() or (not complete and pieces == []) else 0
    good: list[bytes] = []
    for piece in pieces:
        if not piece.strip():
            continue
        try:
            ok = isinstance(orjson.loads(piece), dict)
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            good.append(piece + b"\n")
        else:
            broken += 1
    return good, broken


@dataclass(frozen=True, slots=True)
class _Batch:
    body: bytes  # gzip-compressed JSON Lines
    count: int  # events in it


class SpoolFullError(OSError):
    """The spool holds ``max_spool_bytes`` already."""


class _Spool:
    """A bounded FIFO of batches: one file per batch under ``directory``, or memory.

    File names are ``{sequence:012d}-{events}.ndjson.gz``: the sequence restores
    the order after a restart. A file is written under ``.tmp``, fsynced, renamed
    and the directory fsynced, so a completed spool write survives a power cut.
    Not shared: one exporter (one process) per directory.
    """

    def __init__(self, directory: Path | None, max_bytes: int, compresslevel: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.compresslevel = compresslevel
        self.bytes = 0
        self.events = 0
        self.corrupt = 0
        self._memory: deque[_Batch] = deque()
        self._files: deque[tuple[str, int, int]] = deque()  # (name, events, size)
        self._head: _Batch | None = None
        self._next_sequence = 0
        self._scanned = directory is None

    def _scan(self) -> None:
        # Lazy, on the exporter's worker: the application never waits for a directory listing.
        self._scanned = True
        assert self.directory is not None
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        found: list[tuple[int, str, int, int]] = []
        for name in names:
            match = _SPOOL_NAME.match(name)
            if match is None:
                continue
            try:
                size = os.stat(self.directory / name).st_size
            except OSError:
                continue
            found.append((int(match[1]), name, int(match[2]), size))
        found.sort()
        for sequence, name, events, size in found:
            self._files.append((name, events, size))
            self.bytes += size
            self.events += events
            self._next_sequence = sequence + 1

    def __bool__(self) -> bool:
        if not self._scanned:
            self._scan()
        return bool(self._memory or self._files)

    def append(self, batch: _Batch) -> None:
        """Add ``batch`` at the end; raises :class:`SpoolFullError` or ``OSError``."""
        if not self._scanned:
            self._scan()
        size = len(batch.body)
        if self.bytes + size > self.max_bytes:
            raise SpoolFullError(f"spool holds {self.bytes} of {self.max_bytes} bytes")
        if self.directory is None:
            self._memory.append(batch)
        else:
            name = f"{self._next_sequence:012d}-{batch.count}.ndjson.gz"
            self._write(name, batch.body)
            self._next_sequence += 1
            self._files.append((name, batch.count, size))
        self.bytes += size
        self.events += batch.count

    def _write(self, name: str, body: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        temporary = self.directory / f"{name}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(body)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, final)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def head(self) -> _Batch | None:
        """The oldest batch (damaged files repaired, their broken records counted)."""
        if not self:
            return None
        if self._memory:
            return self._memory[0]
        while self._head is None and self._files:
            name, events, _size = self._files[0]
            assert self.directory is not None
            try:
                raw = (self.directory / name).read_bytes()
            except OSError:
                raw = b""
            intact = not name.endswith(".tmp")
            if intact:
                try:
                    intact = len(gzip.decompress(raw).splitlines()) == events
                except (OSError, EOFError, zlib.error):
                    intact = False
            if intact:
                self._head = _Batch(raw, events)
                break
            good, broken = _salvage(raw)
            self.corrupt += max(events - len(good), broken)
            if good:
                body = gzip.compress(b"".join(good), self.compresslevel, mtime=0)
                self._head = _Batch(body, len(good))
                # the counters follow the repaired batch; the file is replaced when it is sent
                self.events += len(good) - events
            else:
                self._drop_file()
        return self._head

    def _drop_file(self) -> None:
        name, events, size = self._files.popleft()
        self.bytes -= size
        self.events -= events
        assert self.directory is not None
        # a read-only spool: forgotten here, the file is resent after a restart
        with contextlib.suppress(OSError):
            (self.directory / name).unlink(missing_ok=True)

    def pop(self) -> None:
        """Remove the batch :meth:`head` returned."""
        if self._memory:
            batch = self._memory.popleft()
            self.bytes -= len(batch.body)
            self.events -= batch.count
            return
        head, self._head = self._head, None
        name, events, size = self._files[0]
        if head is not None and head.count != events:  # a repaired batch: counters moved already
            self._files[0] = (name, head.count, size)
        self._drop_file()

    def release_memory(self) -> int:
        """Forget the in-memory batches (at shutdown); return how many events they held."""
        lost = sum(batch.count for batch in self._memory)
        self.bytes -= sum(len(batch.body) for batch in self._memory)
        self.events -= lost
        self._memory.clear()
        return lost


class _Outcome(Enum):
    SENT = "sent"
    REJECTED = "rejected"  # a status that never succeeds as sent: dropped, counted
    DOWN = "down"  # unreachable or a retryable status: keep it for later


class HttpExporter(BaseExporter):
    """POSTs batches of ATOF JSON Lines (gzip) to ``url``; spools while the receiver is down.

    Runs on its own worker (``background = True``): it may block in
    :meth:`export` on the network, never the application. Each batch of up to
    ``batch_size`` events is one request (``Content-Type: application/x-ndjson``,
    ``Content-Encoding: gzip``, ``X-Llmflow-Events: <count>``). Connection
    errors, timeouts, 408, 425, 429 and 5xx (but 501 and 505) are retried with
    exponential backoff and jitter (``backoff`` doubling up to ``max_backoff``
    seconds) or after ``Retry-After`` (capped at ``max_retry_after``); after
    ``max_attempts`` tries, at once when the connection is refused, or when
    the wait is longer than two seconds, the batch is spooled and no request
    is made before the wait is over. Any other
    status (400, 401, 403, 404, 413, 422, ...) never succeeds as sent: the
    batch is dropped and counted.

    The spool holds up to ``max_spool_bytes`` of compressed batches, on disk
    under ``spool_dir`` (kept across restarts) or in memory when it is
    ``None`` (lost at shutdown, counted). A helper thread resends the spool
    as soon as the wait is over, also when no new event comes, and at start
    when ``spool_dir`` holds an earlier run's batches. A batch that does not fit,
    or that the disk refuses (full, read-only), is dropped and counted;
    nothing here raises into the application. A spool file damaged by a crash
    keeps its whole records and counts the broken ones (``corrupt``).

    Bodies are gzip ``compresslevel`` 3 by default: on LLM logs about 2.5
    times less CPU than level 6 (the exporter shares the process with the
    application) for a ratio still above 30.

    :meth:`stats` (merged into ``llmflow.diagnostics().exporters[name]``):
    ``delivered`` (events the receiver acknowledged, resent ones included),
    ``resent`` (of those, from the spool), ``spooled``, ``retried`` (repeated
    requests), ``lost`` (given up: ``rejected`` by a 4xx, ``corrupt`` spool
    records, a full or failing spool), ``pending`` (in the spool now). Events
    given to :meth:`export` = ``delivered + lost + pending``.
    """

    background: ClassVar[bool] = True
    buffer_capacity: ClassVar[int] = 16_384

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        batch_size: int = 1_000,
        timeout: float = 10.0,
        max_spool_bytes: int = 256 * 1024 * 1024,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        compresslevel: int = 3,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {url!r}")
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            raise TypeError(f"headers: expected a mapping of str to str, got {headers!r:.80}")
        for param, value, minimum in (
            ("batch_size", batch_size, 1),
            ("max_spool_bytes", max_spool_bytes, 0),
            ("max_attempts", max_attempts, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{param}: expected an int >= {minimum}, got {value!r}")
        for param, number in (
            ("timeout", timeout),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
            ("max_retry_after", max_retry_after),
        ):
            if not isinstance(number, (int, float)) or isinstance(number, bool) or number <= 0:
                raise ValueError(f"{param}: expected a number of seconds > 0, got {number!r}")
        if not isinstance(compresslevel, int) or not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel: expected an int from 0 to 9, got {compresslevel!r}")
        self.url = url
        self.headers = dict(headers or {})
        self.spool_dir = None if spool_dir is None else Path(spool_dir)
        # the runtime's worker reads the instance's value: one batch it hands over, one request
        self.batch_size = batch_size  # type: ignore[misc]
        self.timeout = float(timeout)
        self.max_attempts = max_attempts
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.compresslevel = compresslevel
        self._transport = transport
        self._spool = _Spool(self.spool_dir, max_spool_bytes, compresslevel)
        self._client: httpx2.Client | None = None
        self._lock = threading.Lock()  # one sender: export, flush and shutdown take turns
        self._closing = threading.Event()
        self._closed = False
        self._retry_at = 0.0  # monotonic time before which the receiver is not asked again
        self._failures_in_row = 0
        self._delivered = self._resent = self._spooled = self._retried = self._lost = 0
        self._rejected = 0
        self._resender: threading.Thread | None = None
        if self.spool_dir is not None and any(self.spool_dir.glob("*.ndjson.gz*")):
            with self._lock:
                self._start_resender()  # an earlier run left a spool: send it without waiting

    # -- the exporter protocol -------------------------------------------------------

    def export(self, events: Sequence[Event]) -> ExportResult:
        """Send ``events`` as their lines (:meth:`export_lines`); ``FAILURE`` if any was dropped."""
        lines = [event.line_parts() for event in events]
        return (
            ExportResult.SUCCESS if self.export_lines(lines) == len(lines) else ExportResult.FAILURE
        )

    def export_lines(self, lines: Sequence[LineParts]) -> int:
        """Send ``lines`` (after anything spooled), or spool them; return how many were accepted.

        Accepted means delivered or durably spooled; the others were dropped
        (rejected by the receiver, spool full, exporter shut down). The runtime
        calls this on the exporter's worker with the lines it already built for
        a JSONL file: the body is their bytes joined and compressed, nothing is
        serialized again.
        """
        with self._lock:
            if self._closed:
                self._lost += len(lines)
                return 0
            accepted = 0
            for start in range(0, len(lines), self.batch_size):
                chunk = lines[start : start + self.batch_size]
                body = gzip.compress(
                    b"".join(chain.from_iterable(chunk)), self.compresslevel, mtime=0
                )
                if self._deliver(_Batch(body, len(chunk))):
                    accepted += len(chunk)
            return accepted

    def flush(self, timeout: float | None = None) -> bool:
        """Resend the spool; return whether nothing is left undelivered.

        Called by the user on a registered exporter, it first has the runtime
        hand over what is queued for it. Waits for backoff and ``Retry-After``
        only while ``timeout`` (seconds) allows; with ``None`` it makes one
        pass and does not wait. Never blocks longer than ``timeout``, even on
        a receiver that accepts the connection and never answers.
        """
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            registration.flush(timeout)  # the runtime calls flush(None) back: one pass
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        if not self._lock.acquire(timeout=-1 if remaining is None else remaining):
            return False
        try:
            while True:
                if self._drain(deadline):
                    return True
                if deadline is None or self._closing.is_set():
                    return False
                now = time.monotonic()
                if self._retry_at >= deadline or now >= deadline:
                    return False
                self._closing.wait(max(self._retry_at - now, 0.0))
        finally:
            self._lock.release()

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush (up to ``timeout``, default 5 s), then close; a disk spool stays for next time.

        Called by the user on a registered exporter, the runtime first delivers
        what is queued and detaches it. Batches still in a memory spool are
        counted as dropped. Returns within the timeout even while an export
        hangs on the network: closing the client aborts that request. Idempotent.
        """
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            registration.close(timeout)  # the runtime detaches us, then calls shutdown again
            return
        budget = 5.0 if timeout is None else max(timeout, 0.0)
        deadline = time.monotonic() + budget
        self.flush(budget)
        self._closing.set()  # ends any backoff wait at once
        locked = self._lock.acquire(timeout=max(deadline - time.monotonic(), 0.0))
        try:
            if self._closed:
                return
            self._closed = True
            if locked:
                self._lost += self._spool.release_memory()
            client, self._client = self._client, None
        finally:
            if locked:
                self._lock.release()
        if client is not None:
            client.close()

    def stats(self) -> dict[str, int]:
        """Counters since this exporter was created (see the class docstring)."""
        corrupt = self._spool.corrupt
        return {
            "delivered": self._delivered,
            "resent": self._resent,
            "spooled": self._spooled,
            "retried": self._retried,
            "lost": self._lost + corrupt,
            "rejected": self._rejected,
            "corrupt": corrupt,
            "pending": self._spool.events,
        }

    def after_fork_in_child(self) -> None:
        """The child gets its own connections and a memory spool.

        The parent keeps sole use of ``spool_dir`` (two writers would number
        their files alike) and of its sockets.
        """
        self._client = None
        self._lock = threading.Lock()
        self._resender = None  # threads do not survive fork
        self._spool = _Spool(None, self._spool.max_bytes, self.compresslevel)
        self._delivered = self._resent = self._spooled = self._retried = self._lost = 0
        self._rejected = 0

    def default_name(self) -> str:
        """``http:<url without its query string>``, the name :meth:`register` uses by default."""
        return f"http:{self.url.split('?', 1)[0]}"

    def __repr__(self) -> str:
        # the query string may carry a token: never in a repr or a log line
        return f"HttpExporter({self.url.split('?', 1)[0]!r}, spool_dir={self.spool_dir!r})"

    # -- delivery (caller holds the lock) --------------------------------------------

    def _deliver(self, batch: _Batch) -> bool:
        if self._drain(None) and time.monotonic() >= self._retry_at:
            outcome = self._send(batch, self.max_attempts, None)
            if outcome is _Outcome.SENT:
                self._delivered += batch.count
                return True
            if outcome is _Outcome.REJECTED:
                self._lost += batch.count
                self._rejected += batch.count
                return False
        return self._keep(batch)

    def _keep(self, batch: _Batch) -> bool:
        try:
            self._spool.append(batch)
        except OSError:  # full, read-only or missing disk, or over max_spool_bytes
            self._lost += batch.count
            return False
        self._spooled += batch.count
        self._start_resender()
        return True

    def _start_resender(self) -> None:
        # Caller holds the lock. Without it, a spool would wait for the next event,
        # flush or exit; an application that went quiet would never deliver it.
        if self._resender is None and not self._closing.is_set():
            self._resender = threading.Thread(
                target=self._resend, name="llmflow-http-resend", daemon=True
            )
            self._resender.start()

    def _resend(self) -> None:
        """Resend the spool once the wait is over, until it is empty or the exporter closes."""
        while not self._closing.wait(max(self._retry_at - time.monotonic(), 0.05)):
            if not self._lock.acquire(timeout=0.1):
                continue  # export or flush is sending: it drains the spool itself
            try:
                done = self._closed or self._drain(None)
            except Exception:
                # the spool stays; the next export or flush meets the error on the
                # runtime's worker, where it is counted in diagnostics
                done = True
            finally:
                if done:
                    self._resender = None  # under the lock: the next spooled batch starts one
                self._lock.release()
            if done:
                return

    def _drain(self, deadline: float | None) -> bool:
        """Send spooled batches in order, one try each; whether the spool is now empty."""
        while (batch := self._spool.head()) is not None:
            if time.monotonic() < self._retry_at:
                return False
            outcome = self._send(batch, 1, deadline)
            if outcome is _Outcome.DOWN:
                return False
            self._spool.pop()
            if outcome is _Outcome.SENT:
                self._delivered += batch.count
                self._resent += batch.count
            else:
                self._lost += batch.count
                self._rejected += batch.count
        return True

    def _send(self, batch: _Batch, attempts: int, deadline: float | None) -> _Outcome:
        client = self._client
        if client is None:
            # trust_env: HTTP(S)_PROXY, NO_PROXY and SSL_CERT_FILE apply as for any httpx2 client
            client = self._client = httpx2.Client(transport=self._transport)
        headers = {
            **self.headers,
            "content-type": "application/x-ndjson",
            "content-encoding": "gzip",
            "x-llmflow-events": str(batch.count),
        }
        for attempt in range(attempts):
            timeout = self.timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    return _Outcome.DOWN
            if attempt:
                self._retried += 1
            response: httpx2.Response | None = None
            refused = False
            try:
                response = client.post(
                    self.url, content=batch.body, headers=headers, timeout=timeout
                )
            except httpx2.ConnectError:
                refused = True
            # reset, timed out; RuntimeError: the client was closed by shutdown()
            except (httpx2.HTTPError, RuntimeError):
                pass
            if response is not None and 200 <= response.status_code < 300:
                self._failures_in_row = 0
                return _Outcome.SENT
            if response is not None and not _retryable(response.status_code):
                return _Outcome.REJECTED
            self._failures_in_row += 1
            delay = _retry_after(response)
            if delay is None:
                step = min(self.max_backoff, self.backoff * 2 ** min(self._failures_in_row - 1, 30))
                delay = step * random.uniform(0.5, 1.0)
            else:
                delay = min(delay, self.max_retry_after)
            now = time.monotonic()
            # nobody listening: spool at once rather than hold the worker (its buffer fills)
            last = refused or attempt + 1 >= attempts or delay > _INLINE_WAIT_LIMIT
            if last or (deadline is not None and now + delay >= deadline):
                self._retry_at = now + delay
                return _Outcome.DOWN
            if self._closing.wait(delay):
                return _Outcome.DOWN
        return _Outcome.DOWN  # pragma: no cover - the loop returns on its last attempt
