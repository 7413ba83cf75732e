"""Shipping a JSONL log to exporters from another process (``llmflow ship``).

The application writes only its ATOF JSONL file (the cheapest exporter); a
shipper process follows that file and hands its complete lines to the
exporters (Parquet, HTTP, OpenTelemetry, another JSONL file), so their CPU is
never taken from the application's process. The file is the buffer: nothing
is dropped however far behind the shipper falls.

Delivery is at-least-once. A checkpoint (the state file) records the file's
identity and the byte offset and line number just past the last batch that
every exporter accepted and flushed (``flush()`` returned ``True``); a
restarted shipper resumes there, so only the batch that was in flight when it
stopped (and the starts of spans still open at the checkpoint, resent so that
their ends can be joined) can arrive twice. The receiver's de-duplication key
is the event's ``uuid`` plus ``scope_category``.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import os
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from llmflow._environment import ExporterConfigError, build_target, parse_target
from llmflow._event import LineParts
from llmflow.atof._follow import Follower
from llmflow.exporters._base import Exporter, LineExporter
from llmflow.exporters._worker import takes_timeout

__all__ = [
    "Checkpoint",
    "ShipResult",
    "Shipper",
    "read_checkpoint",
    "ship",
    "shipper_running",
    "split_line",
    "start_shipper",
    "watch_control",
]

STATE_SUFFIX: Final = ".ship-state"
"""The default state file is the log's path plus this suffix."""
FINGERPRINT_BYTES: Final = 4096
"""The checkpoint keeps a CRC-32 of this many first bytes of the log to recognise it."""
MAX_OPEN_STARTS: Final = 10_000
"""Starts of open spans the checkpoint remembers (the oldest are forgotten beyond)."""
FLUSH_TIMEOUT: Final = 10.0
"""Seconds one exporter ``flush()`` may take per attempt."""
MAX_BACKOFF: Final = 30.0
COMMIT_SECONDS: Final = 60.0
"""Default seconds between checkpoints: each finishes the Parquet file being written."""
_STATE_FORMAT: Final = "llmflow-ship-state/1"
_CHILD_ENV_DROPPED: Final = ("LLMFLOW_ATOF_PATH", "LLMFLOW_EXPORTERS", "LLMFLOW_SHIP")

# -- lines -----------------------------------------------------------------------------

_DATA_KEY: Final = b',"data":'
_SCHEMA_KEY: Final = b',"data_schema":'
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"{}[]')


def _depth(prefix: bytes) -> int:
    """Nesting depth at the end of ``prefix`` (the start of a JSON text), strings left out.

    Escapes go first (``\\\\`` then ``\\"``, left to right as JSON reads them), so
    every remaining quote delimits a string; then only quotes and brackets are
    kept, and the brackets outside the strings (every other piece between
    quotes) are counted.
    """
    bare = prefix.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    outside = b"".join(bare.split(b'"')[::2])
    return outside.count(b"{") + outside.count(b"[") - outside.count(b"}") - outside.count(b"]")


def split_line(line: bytes) -> tuple[LineParts, dict[str, Any]] | None:
    """A log line as the runtime hands lines to exporters, and its fields without ``data``.

    A line in llmflow's layout is cut around its top-level ``data`` value into
    ``(head, data, tail)``: the bytes are kept as written (an HTTP receiver
    gets the file's own bytes), and ``head + b"null" + tail`` is the event
    without its payload, as Parquet and OpenTelemetry read it. A line in
    another layout (another writer's key order or spacing) is parsed and
    written in llmflow's layout. ``None`` for a line that is not a JSON object.
    """
    at = line.find(_DATA_KEY)
    # one "{" before it (the line's own): no object encloses this key but the line's
    while at >= 0 and line.count(b"{", 0, at) != 1 and _depth(line[:at]) != 1:
        at = line.find(_DATA_KEY, at + 1)
    if at >= 0:
        start = at + len(_DATA_KEY)
        end = line.find(_SCHEMA_KEY, start)
        while end >= 0:
            # a valid value followed by "," is exactly the data value (no value goes on past a
            # comma at its own level): a later occurrence is tried when this one is inside data
            try:
                orjson.loads(line[start:end])
            except orjson.JSONDecodeError:
                end = line.find(_SCHEMA_KEY, end + 1)
                continue
            head, tail = line[:start], line[end:]
            with contextlib.suppress(orjson.JSONDecodeError):
                event = orjson.loads(head + b"null" + tail)
                if isinstance(event, dict):
                    return (head, line[start:end], tail), event
            break
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict):
        return None
    from llmflow.exporters.parquet import _wire_line  # the layout, written by one function

    return _wire_line(event), event


# -- the checkpoint --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a shipper resumes: the log's identity and the end of its last delivered batch.

    ``device``/``inode`` identify the file, ``fingerprint`` is a CRC-32 of its
    first ``min(offset, 4096)`` bytes (a file truncated and written again is
    not mistaken for the old one), ``offset``/``line`` are just past the last
    line delivered, ``open_starts`` the ``(offset, length)`` of the start lines
    of spans still open there (resent at resume, for exporters that join an
    end to its start).
    """

    device: int
    inode: int
    offset: int
    line: int
    fingerprint: int
    open_starts: tuple[tuple[int, int], ...] = ()


class CorruptStateError(ValueError):
    """A state file that is not a shipper checkpoint."""


def read_checkpoint(state: str | os.PathLike[str]) -> Checkpoint | None:
    """The checkpoint in ``state``; ``None`` when the file does not exist.

    Raises :class:`CorruptStateError` when it is not a checkpoint.
    """
    try:
        raw = Path(state).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise OSError(exc.errno, f"state: cannot read {state}: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT:
            raise ValueError("not a shipper state file")
        device, inode, offset, line, fingerprint = (
            data[key] for key in ("device", "inode", "offset", "line", "fingerprint")
        )
        starts = tuple((int(o), int(n)) for o, n in data.get("open_starts", ()))
        if not all(type(n) is int and n >= 0 for n in (device, inode, offset, line, fingerprint)):
            raise ValueError("negative or non-integer position")
        return Checkpoint(device, inode, offset, line, fingerprint, starts)
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptStateError(f"state: {state}: {exc}") from None


def _write_checkpoint(state: Path, log: str, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` atomically: a temporary file, fsync, rename, fsync of the directory."""
    body = orjson.dumps(
        {
            "format": _STATE_FORMAT,
            "log": os.path.abspath(log),
            "device": checkpoint.device,
            "inode": checkpoint.inode,
            "offset": checkpoint.offset,
            "line": checkpoint.line,
            "fingerprint": checkpoint.fingerprint,
            "open_starts": checkpoint.open_starts,
        }
    )
    temporary = state.with_name(f".{state.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, state)
    with contextlib.suppress(OSError):  # not every platform lets a directory be fsynced
        directory = os.open(state.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# -- shipping --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShipResult:
    """What one :func:`ship` call did.

    ``lines`` complete lines were read (``skipped`` of them were not JSON
    objects: never shipped, warned about); ``delivered`` lines are in the
    ``batches`` that every exporter accepted and flushed, and the checkpoint
    (``offset``, ``line``) is past them; ``failed`` attempts were refused by
    an exporter and ``retries`` repeated; ``rejected`` lines an exporter gave
    up on for good (an HTTP 4xx), counted and passed. ``resumed_offset`` is
    where reading began (0 on a new, rotated or truncated log, or after a
    ``corrupt_state`` file); ``resent_starts`` are the starts of spans open at
    that checkpoint, shipped again. ``complete``: every line read was
    delivered. ``exporters`` holds each exporter's ``stats()``.
    """

    lines: int = 0
    delivered: int = 0
    batches: int = 0
    failed: int = 0
    retries: int = 0
    rejected: int = 0
    skipped: int = 0
    resumed_offset: int = 0
    resent_starts: int = 0
    offset: int = 0
    line: int = 0
    rotations: int = 0
    corrupt_state: int = 0
    complete: bool = True
    last_error: str | None = None
    exporters: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True)
class _Target:
    name: str
    exporter: LineExporter
    owned: bool
    flush_takes_timeout: bool
    accepted: bool = False  # the current batch is in the exporter (delivered or held by it)


def _counter(exporter: object, key: str) -> int:
    stats = getattr(exporter, "stats", None)
    if stats is None:
        return 0
    try:
        value = stats().get(key, 0)
    except Exception:
        return 0
    return value if isinstance(value, int) else 0


class _Shipping:
    """One :func:`ship` call: the follower, the batch being built, the targets, the counts."""

    def __init__(
        self,
        path: str,
        targets: list[_Target],
        state: Path,
        follow: bool,
        stop: threading.Event,
        commit: threading.Event | None,
        batch_lines: int,
        batch_seconds: float,
        commit_seconds: float,
        timeout: float,
        poll: float,
    ) -> None:
        self.path, self.targets, self.state = path, targets, state
        self.follow, self.stop, self.commit = follow, stop, commit
        self.batch_lines, self.batch_seconds = batch_lines, batch_seconds
        self.commit_seconds = commit_seconds
        self.timeout, self.poll = timeout, poll
        self.counts: dict[str, Any] = dict.fromkeys(
            ("lines", "delivered", "batches", "failed", "retries", "rejected", "skipped"), 0
        )
        self.counts.update(resumed_offset=0, resent_starts=0, corrupt_state=0, last_error=None)
        self.open: dict[str, tuple[int, int]] = {}  # uuid -> (offset, length) of its start line
        self.committed: Checkpoint | None = None
        self.stop_at: int | None = None  # once stopping: the file size then (drain up to it)
        self.primer: list[LineParts] = []  # starts of spans open at the checkpoint, resent
        self.resent = 0  # of them, in the batch being delivered
        # Exported since the checkpoint, not yet flushed: where they end, how many they are,
        # how many lines were read for them (read again after a rewind).
        self.pending: tuple[tuple[int, int], int, int] | None = None
        self.pending_lines = 0
        self.read_since_commit = 0
        self.last_commit = time.monotonic()
        self.failing_since: float | None = None
        self.backoff = 0.5

    def rewind(self) -> None:
        """Forget what was read past the checkpoint; :meth:`resume` then reads it again."""
        self.counts["lines"] -= self.read_since_commit
        self.open.clear()
        self.primer, self.resent = [], 0
        self.pending, self.pending_lines, self.read_since_commit = None, 0, 0

    def _commit_due(self) -> bool:
        return time.monotonic() - self.last_commit >= self.commit_seconds

    # -- the checkpoint ------------------------------------------------------------

    def resume(self) -> Follower:
        """Open the log where the checkpoint says (0 when it is another file or unreadable)."""
        try:
            checkpoint = read_checkpoint(self.state)
        except CorruptStateError as exc:
            self.counts["corrupt_state"] = 1
            _warn(f"{exc}; shipping {self.path} from its start (at-least-once)")
            checkpoint = None
        follower = self._open(0, 0)
        if checkpoint is not None and self._same_file(follower, checkpoint):
            follower.close()
            follower = self._open(checkpoint.offset, checkpoint.line)
            self.counts["resumed_offset"] = follower.offset
            self.primer = self._primer(follower, checkpoint)
        self.committed = self._checkpoint_of(
            follower, follower.identity, follower.offset, follower.number
        )
        self._save(self.committed)  # also proves at once that the state file can be written
        return follower

    def _open(self, offset: int, number: int) -> Follower:
        while True:
            try:
                return Follower(self.path, offset=offset, number=number, poll=self.poll)
            except FileNotFoundError as exc:
                # a follower waits for the application to create its log
                if not self.follow or self.stop.wait(self.poll):
                    raise _path_error(self.path, exc) from None
            except OSError as exc:
                raise _path_error(self.path, exc) from None

    @staticmethod
    def _same_file(follower: Follower, checkpoint: Checkpoint) -> bool:
        if follower.identity != (checkpoint.device, checkpoint.inode):
            return False
        prefix = follower.read_at(0, min(checkpoint.offset, FINGERPRINT_BYTES))
        return (
            len(prefix) == min(checkpoint.offset, FINGERPRINT_BYTES)
            and zlib.crc32(prefix) == checkpoint.fingerprint
        )

    def _primer(self, follower: Follower, checkpoint: Checkpoint) -> list[LineParts]:
        """The start lines of the spans open at the checkpoint, read again from the log."""
        primer: list[LineParts] = []
        for offset, length in checkpoint.open_starts:
            if offset + length > checkpoint.offset:
                continue
            split = split_line(follower.read_at(offset, length))
            if split is None or split[1].get("scope_category") != "start":
                continue
            primer.append(split[0])
            self.open[str(split[1].get("uuid"))] = (offset, length)
        return primer

    def _checkpoint_of(
        self, follower: Follower, identity: tuple[int, int], offset: int, number: int
    ) -> Checkpoint:
        size = min(offset, FINGERPRINT_BYTES)
        prefix = follower.read_at(0, size) if identity == follower.identity else b""
        return Checkpoint(
            identity[0],
            identity[1],
            offset,
            number,
            zlib.crc32(prefix),
            tuple(self.open.values()),
        )

    def _save(self, checkpoint: Checkpoint) -> None:
        try:
            _write_checkpoint(self.state, self.path, checkpoint)
        except OSError as exc:
            raise OSError(
                exc.errno, f"state: cannot write the checkpoint {self.state}: {exc.strerror or exc}"
            ) from None

    # -- the loop ------------------------------------------------------------------

    def run(self, follower: Follower) -> bool | None:
        """Ship until the end (``follow=False``) or until stopped; whether all was delivered.

        ``None``: an exporter lost lines it had taken since the checkpoint (a
        Parquet file abandoned on a disk error); the caller rewinds and resumes.
        """
        batch: list[LineParts] = []
        end: tuple[tuple[int, int], int, int] | None = None  # identity, offset, number
        opened = time.monotonic()
        for item in follower:
            if item is None:  # caught up with the writer
                if self.stop.is_set() and self.stop_at is None:
                    self.stop_at = 0
                finishing = not self.follow or self.stop_at is not None
                wanted = self.commit is not None and self.commit.is_set()
                commit = finishing or wanted or self._commit_due()
                due = commit or time.monotonic() - opened >= self.batch_seconds
                if (batch or end is not None or (commit and self.pending is not None)) and due:
                    if wanted and self.commit is not None:
                        self.commit.clear()  # a request made while delivering stays set
                    delivered = self._deliver(batch, follower, end, commit)
                    if delivered is not True:
                        return delivered
                    batch, end = [], None
                if finishing:
                    return True
                continue
            number, line = item
            if number == 0:  # rotated or truncated: deliver the old file's lines first
                if batch or end is not None or self.pending is not None:
                    delivered = self._deliver(batch, follower, end, True)
                    if delivered is not True:
                        return delivered
                batch, end = [], None
                self.open.clear()  # the spans of the old file
                self.primer = []
                continue
            if not batch and end is None:
                opened = time.monotonic()
            self.counts["lines"] += 1
            self.read_since_commit += 1
            split = split_line(line)
            if split is None:
                if line.strip():
                    self.counts["skipped"] += 1
                    if self.counts["skipped"] <= 10:
                        _warn(f"{self.path}:{number}: not an ATOF JSON object; skipped")
            else:
                parts, event = split
                if self.primer:  # the starts go first, once there is something new to ship
                    batch.extend(self.primer)
                    self.counts["resent_starts"] = self.resent = len(self.primer)
                    self.primer = []
                batch.append(parts)
                phase = event.get("scope_category")
                if phase == "start":
                    self.open[str(event.get("uuid"))] = (follower.offset - len(line), len(line))
                    if len(self.open) > MAX_OPEN_STARTS:
                        del self.open[next(iter(self.open))]
                elif phase == "end":
                    self.open.pop(str(event.get("uuid")), None)
            end = (follower.identity, follower.offset, follower.number)
            draining = self.stop_at is not None and follower.offset >= self.stop_at
            if (
                len(batch) >= self.batch_lines
                or time.monotonic() - opened >= self.batch_seconds
                or draining
            ):
                delivered = self._deliver(batch, follower, end, draining or self._commit_due())
                if delivered is not True:
                    return delivered
                batch, end = [], None
            if self.stop.is_set() and self.stop_at is None:
                self.stop_at = _size(self.path)
            if self.stop_at is not None and end is None and follower.offset >= self.stop_at:
                if self.pending is not None:
                    delivered = self._deliver([], follower, None, True)
                    if delivered is not True:
                        return delivered
                return True
        return True  # pragma: no cover - the follower never ends by itself

    def _deliver(
        self,
        batch: list[LineParts],
        follower: Follower,
        end: tuple[tuple[int, int], int, int] | None,
        commit: bool,
    ) -> bool | None:
        """Hand ``batch`` to every exporter; with ``commit``, flush them all, then checkpoint.

        Lines are exported every batch but flushed (a Parquet file finished)
        and checkpointed every ``commit_seconds``, when asked, and at the end.
        An exporter that refused the batch gets it again; one whose ``flush()``
        said ``False`` while it still holds the events (``stats()["pending"]``,
        the HTTP spool) is only flushed again, never handed them twice. An
        exporter that lost lines of earlier batches since the checkpoint makes
        this return ``None`` (rewind: read again from the checkpoint). Waits
        with backoff between attempts; gives up (``False``) after ``timeout``
        seconds of failures once stopping or in a one-shot run.
        """
        started = time.monotonic()
        for target in self.targets:
            target.accepted = not batch
        while True:
            done = True
            for target in self.targets:
                if not target.accepted:
                    target.accepted = self._export(target, batch)
                if not target.accepted or (commit and not self._flush(target, started)):
                    done = False
            if done:
                break
            self.counts["failed"] += 1
            if self.failing_since is None:
                self.failing_since = started
            giving_up_at = self.failing_since + self.timeout
            if (not self.follow or self.stop.is_set()) and time.monotonic() >= giving_up_at:
                return False
            wait = self.backoff
            if not self.follow or self.stop.is_set():
                wait = min(wait, max(giving_up_at - time.monotonic(), 0.0))
            if self.stop.wait(wait) and self.stop_at is None:
                self.stop_at = _size(self.path)
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)
            self.counts["retries"] += 1
            if self.pending is not None and not all(target.accepted for target in self.targets):
                return None  # what earlier batches handed it may be gone with the failure
        self.failing_since, self.backoff = None, 0.5
        self.counts["batches"] += 1
        self.pending_lines += len(batch) - self.resent
        self.resent = 0
        self.pending = end or self.pending
        if commit:
            if self.pending is not None:
                identity, offset, number = self.pending
                self.committed = self._checkpoint_of(follower, identity, offset, number)
                self._save(self.committed)
            self.counts["delivered"] += self.pending_lines
            self.pending, self.pending_lines, self.read_since_commit = None, 0, 0
            self.last_commit = time.monotonic()
        return True

    def _export(self, target: _Target, batch: list[LineParts]) -> bool:
        rejected = _counter(target.exporter, "rejected")
        try:
            written = target.exporter.export_lines(batch)
        except Exception as exc:  # an exporter's failure is counted and retried
            self.counts["last_error"] = f"{target.name}: {type(exc).__name__}: {exc}"
            return False
        if written is None or written >= len(batch):
            return True
        # lines the exporter gave up on for good (an HTTP 4xx) are never retried
        given_up = _counter(target.exporter, "rejected") - rejected
        if given_up > 0 and written + given_up >= len(batch):
            self.counts["rejected"] += given_up
            return True
        self.counts["last_error"] = f"{target.name}: accepted {written} of {len(batch)} lines"
        return False

    def _flush(self, target: _Target, started: float) -> bool:
        timeout = FLUSH_TIMEOUT
        if not self.follow or self.stop.is_set():
            timeout = min(timeout, max(started + self.timeout - time.monotonic(), 0.0))
        try:
            flush: Any = target.exporter.flush
            result = flush(timeout) if target.flush_takes_timeout else flush()
            ok = result is None or bool(result)
        except Exception as exc:
            self.counts["last_error"] = f"{target.name}: flush: {type(exc).__name__}: {exc}"
            ok = False
        if not ok:
            if self.counts["last_error"] is None or not self.counts["last_error"].startswith(
                target.name
            ):
                self.counts["last_error"] = f"{target.name}: flush() said not delivered"
            # the HTTP exporter keeps undelivered batches in its spool: flush it again later
            pending = _counter(target.exporter, "pending")
            target.accepted = pending > 0
            if pending:
                self.counts["last_error"] = (
                    f"{target.name}: {pending:,} events wait in its spool (receiver down?)"
                )
        return ok


def _path_error(path: str, exc: OSError) -> OSError:
    return OSError(exc.errno, f"path: cannot read {path}: {exc.strerror or exc}")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _warn(message: str) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"llmflow ship: {message}\n")
        sys.stderr.flush()


def _targets(exporters: object) -> list[_Target]:
    if isinstance(exporters, (str, bytes)) or not isinstance(exporters, Sequence):
        raise TypeError(
            f"targets: expected a list of exporters or target strings, got {exporters!r:.80}"
        )
    if not exporters:
        raise ValueError("targets: expected at least one exporter or target string")
    targets: list[_Target] = []
    try:
        for item in exporters:
            if isinstance(item, str):
                try:
                    exporter: object = build_target(item)
                except (ExporterConfigError, ValueError, TypeError, OSError) as exc:
                    raise ValueError(f"targets: {item!r}: {exc}") from None
                name, owned = item, True
            else:
                exporter, owned = item, False
                default_name = getattr(item, "default_name", None)
                name = str(default_name()) if callable(default_name) else type(item).__name__
            if not isinstance(exporter, LineExporter):
                raise TypeError(
                    f"targets: {name!r} is not a line exporter (it needs export_lines, "
                    "flush and shutdown)"
                )
            targets.append(_Target(name, exporter, owned, takes_timeout(exporter.flush)))
    except BaseException:
        _shutdown(targets)
        raise
    return targets


def _shutdown(targets: list[_Target]) -> None:
    for target in targets:
        if target.owned:
            with contextlib.suppress(Exception):
                target.exporter.shutdown()


def _positive(name: str, value: object, kind: type) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"{name}: expected a {kind.__name__} > 0, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name}: expected a {kind.__name__} > 0, got {value!r}")


def ship(
    path: str | os.PathLike[str],
    exporters: Sequence[Exporter | str],
    *,
    state: str | os.PathLike[str] | None = None,
    follow: bool = False,
    stop: threading.Event | None = None,
    commit: threading.Event | None = None,
    batch_lines: int = 2_048,
    batch_seconds: float = 2.0,
    commit_seconds: float = COMMIT_SECONDS,
    timeout: float = 60.0,
    poll: float = 0.1,
) -> ShipResult:
    """Deliver the ATOF JSONL log at ``path`` to ``exporters``, resuming at the checkpoint.

    ``exporters``: line exporters (``ParquetExporter``, ``HttpExporter``,
    ``OpenTelemetryExporter``, ``AtofFileExporter``), or target strings
    ``parquet:DIR``, ``http:URL``, ``otlp``, ``jsonl:PATH`` built as
    ``LLMFLOW_EXPORTERS`` builds them (those are shut down at the end; objects
    are flushed, not shut down). Lines go in batches of up to ``batch_lines``
    or ``batch_seconds``. Every ``commit_seconds`` (and when asked, at a
    rotation and at the end) every exporter is flushed (a Parquet file is
    finished) and, when all said delivered, the checkpoint is written to
    ``state`` (default: the log's path plus ``.ship-state``); a crash replays
    at most what came after it. A refused batch is retried with backoff (0.5 s
    doubling up to 30 s) and the checkpoint stays; an exporter that lost lines
    of earlier batches since the checkpoint gets them again from the log.

    ``follow=False`` ships what the file holds and returns; ``follow=True``
    keeps following (rotation and truncation restart at 0 of the new file; an
    incomplete last line waits for its newline) until ``stop`` is set, then
    drains to the file's end as it was then (a log that does not exist yet is
    waited for). ``commit`` (set by the caller)
    closes the batch as soon as the shipper has caught up. A batch not
    delivered within ``timeout`` seconds ends a one-shot or stopping run
    (``complete=False``); a following one keeps retrying.

    Raises ``ValueError``/``TypeError`` naming the parameter for bad
    arguments and targets, ``OSError`` when the log cannot be read (the
    message names ``path``) or the state file cannot be written (``state``).
    A corrupt state file is reported on stderr and counted, and the log is
    shipped from its start.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {path!r:.80}")
    _positive("batch_lines", batch_lines, int)
    _positive("batch_seconds", batch_seconds, float)
    _positive("commit_seconds", commit_seconds, float)
    _positive("timeout", timeout, float)
    _positive("poll", poll, float)
    for name, event in (("stop", stop), ("commit", commit)):
        if event is not None and not isinstance(event, threading.Event):
            raise TypeError(f"{name}: expected a threading.Event or None, got {event!r:.80}")
    log = os.fspath(path)
    state_path = Path(state) if state is not None else Path(log + STATE_SUFFIX)
    if state_path.is_dir():
        raise ValueError(f"state: {state_path} is a directory; expected a file path")
    if not follow:  # before any target is built (a jsonl: copy or a lake is created)
        try:
            os.close(os.open(log, os.O_RDONLY))
        except OSError as exc:
            raise _path_error(log, exc) from None
    lock = _lock(state_path)  # before any target is built, as the check of the log above
    try:
        targets = _targets(exporters)
    except BaseException:
        os.close(lock)
        raise
    shipping = _Shipping(
        log,
        targets,
        state_path,
        follow,
        stop or threading.Event(),
        commit,
        batch_lines,
        float(batch_seconds),
        float(commit_seconds),
        float(timeout),
        float(poll),
    )
    try:
        rotations = 0
        complete: bool | None = None
        while complete is None:  # None: an exporter lost lines since the checkpoint
            shipping.rewind()
            follower = shipping.resume()
            try:
                complete = shipping.run(follower)
            finally:
                follower.close()
            rotations += follower.rotations
    finally:
        _shutdown(targets)
        os.close(lock)
    committed = shipping.committed
    assert committed is not None
    counts = shipping.counts
    return ShipResult(
        **counts,
        offset=committed.offset,
        line=committed.line,
        rotations=rotations,
        complete=complete,
        exporters={target.name: _stats(target.exporter) for target in targets},
    )


def shipper_running(
    log: str | os.PathLike[str], state: str | os.PathLike[str] | None = None
) -> bool:
    """Whether a shipper holds the state file of ``log`` (default state) right now."""
    state_path = Path(state) if state is not None else Path(f"{os.fspath(log)}{STATE_SUFFIX}")
    try:
        fd = os.open(f"{state_path}.lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's lock
    return False


def _lock(state: Path) -> int:
    """Hold ``STATE.lock`` while shipping: one shipper per state file."""
    try:
        fd = os.open(f"{state}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    except OSError as exc:
        raise OSError(
            exc.errno, f"state: cannot write the checkpoint {state}: {exc.strerror or exc}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OSError(
            errno.EBUSY, f"state: {state} is in use by another shipper (one per state file)"
        ) from None
    return fd


def _stats(exporter: object) -> dict[str, int]:
    stats = getattr(exporter, "stats", None)
    try:
        return dict(stats()) if stats is not None else {}
    except Exception:
        return {}


# -- running it beside the application --------------------------------------------------


class Shipper:
    """A ``llmflow ship`` child process following one log (see :func:`start_shipper`)."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, state: Path) -> None:
        self.process = process
        self.log = log
        self.state = state
        self._owner = os.getpid()

    @property
    def pid(self) -> int:
        """The shipper process's id."""
        return self.process.pid

    def checkpoint(self) -> Checkpoint | None:
        """The shipper's checkpoint now (``None`` before its first or with a corrupt one)."""
        try:
            return read_checkpoint(self.state)
        except CorruptStateError:
            return None

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Flush llmflow's runtime, then wait until the checkpoint reaches the log's end.

        ``True`` when every event emitted before the call is in a batch that
        every exporter accepted and flushed; ``False`` after ``timeout``
        seconds, or when the shipper has exited.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        from llmflow._runtime import get_runtime

        get_runtime().flush(timeout)
        try:
            info = os.stat(self.log)
        except OSError:
            return False
        self._send(b"flush\n")
        while True:
            checkpoint = self.checkpoint()
            if (
                checkpoint is not None
                and (checkpoint.device, checkpoint.inode) == (info.st_dev, info.st_ino)
                and checkpoint.offset >= info.st_size
            ):
                return True
            if self.process.poll() is not None:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Flush llmflow's runtime, tell the shipper to drain to the log's end and exit; wait.

        Returns whether it exited within ``timeout`` seconds (if not, it goes
        on draining by itself; nothing is lost: the checkpoint says where it
        stopped). Idempotent.
        """
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                from llmflow._runtime import get_runtime

                get_runtime().flush(timeout)
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()  # end of input: drain, checkpoint, exit
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def _send(self, command: bytes) -> None:
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        with contextlib.suppress(OSError):
            stdin.write(command)
            stdin.flush()

    def __repr__(self) -> str:
        return f"Shipper(pid={self.pid}, log={str(self.log)!r})"


_SHIPPERS: list[Shipper] = []
_hooked = False


def _stop_at_exit() -> None:
    # Registered after llmflow's own exit flush, so it runs first (atexit is LIFO): run
    # that flush here (it ends abandoned spans and writes everything to the file), then
    # let each shipper drain to the end. llmflow's own call afterwards finds nothing left.
    shippers = [s for s in _SHIPPERS if s._owner == os.getpid() and s.process.poll() is None]
    if not shippers:
        return
    from llmflow._runtime import _flush_at_exit, exit_timeout

    with contextlib.suppress(BaseException):
        _flush_at_exit()
    for shipper in shippers:
        with contextlib.suppress(BaseException):
            shipper.stop(exit_timeout())


def start_shipper(
    log_path: str | os.PathLike[str],
    targets: Sequence[str],
    *,
    state: str | os.PathLike[str] | None = None,
    nice: int = 10,
    batch_lines: int = 2_048,
    batch_seconds: float = 2.0,
    commit_seconds: float = COMMIT_SECONDS,
) -> Shipper:
    """Start ``python -m llmflow ship`` following ``log_path`` beside this process.

    ``targets`` as for :func:`ship` (strings: the child builds the exporters,
    reading the same environment variables). The child runs at a priority
    lowered by ``nice``, stops (after draining to the end) when this process
    exits or dies (its standard input, a pipe from here, closes), and at
    this interpreter's exit is told to drain and waited for (up to
    ``LLMFLOW_EXIT_TIMEOUT`` seconds) after llmflow's own exit flush.
    Raises ``ValueError`` naming the parameter for a bad target.
    """
    global _hooked
    if isinstance(targets, str) or not isinstance(targets, Sequence) or not targets:
        raise ValueError(
            f"targets: expected a non-empty list of target strings, got {targets!r:.80}"
        )
    for spec in targets:
        try:
            parse_target(spec)
        except ExporterConfigError as exc:
            raise ValueError(f"targets: {spec!r}: {exc}") from None
    if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= 19:
        raise ValueError(f"nice: expected an int from 0 to 19, got {nice!r}")
    _positive("batch_lines", batch_lines, int)
    _positive("batch_seconds", batch_seconds, float)
    _positive("commit_seconds", commit_seconds, float)
    log = Path(log_path)
    state_path = Path(state) if state is not None else Path(f"{log}{STATE_SUFFIX}")
    environment = {k: v for k, v in os.environ.items() if k not in _CHILD_ENV_DROPPED}
    source = str(Path(__file__).resolve().parents[1])  # the llmflow this process runs
    environment["PYTHONPATH"] = os.pathsep.join(
        [source, *filter(None, [environment.get("PYTHONPATH")])]
    )
    command = [
        sys.executable,
        "-m",
        "llmflow",
        "ship",
        str(log),
        *targets,
        "--state",
        str(state_path),
        "--control-stdin",
        "--nice",
        str(nice),
        "--batch-lines",
        str(batch_lines),
        "--batch-seconds",
        str(batch_seconds),
        "--commit-seconds",
        str(commit_seconds),
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=environment
    )
    shipper = Shipper(process, log, state_path)
    _SHIPPERS[:] = [s for s in _SHIPPERS if s.process.poll() is None]
    _SHIPPERS.append(shipper)
    if not _hooked:
        atexit.register(_stop_at_exit)
        _hooked = True
    return shipper


def watch_control(stream: Any, stop: threading.Event, commit: threading.Event) -> None:
    """Read a shipper's commands from ``stream`` (its standard input) until it closes.

    ``flush`` sets ``commit`` (deliver as soon as caught up); ``stop`` or the end
    of the stream (the parent exited or died) sets ``stop``.
    """
    try:
        for raw in iter(stream.readline, b""):
            command = raw.strip()
            if command == b"flush":
                commit.set()
            elif command == b"stop":
                break
    except (OSError, ValueError):
        pass
    stop.set()
