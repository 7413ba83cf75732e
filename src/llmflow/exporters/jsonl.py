"""The JSONL file exporter: one ATOF event per line, written with ``writev(2)``."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Literal

from llmflow._event import Event, LineParts
from llmflow.exporters._base import BaseExporter, ExportResult, LineExporter, PartialExportError

__all__ = ["AtofFileExporter"]

_LINES_PER_CALL = 340  # 3 buffers a line plus a leading newline: <= IOV_MAX (1024)


def _whole_lines(lines: Sequence[LineParts], written: int) -> tuple[int, bool]:
    """How many of ``lines`` fit whole in ``written`` bytes, and whether one was cut."""
    whole = 0
    for parts in lines:
        size = len(parts[0]) + len(parts[1]) + len(parts[2])
        if written < size:
            return whole, written > 0
        written -= size
        whole += 1
    return whole, False


class AtofFileExporter(BaseExporter):
    """Writes every event as one line of ATOF JSONL.

    ``mode="append"`` (default) keeps what the file holds; ``"overwrite"``
    truncates it when the exporter is created and refuses a symbolic link
    unless ``follow_symlinks=True``. A file the exporter creates gets
    ``file_mode`` (default ``0o600``: only the owner reads the log).

    Lines are written whole with ``writev(2)`` (up to 341 lines a call) on an
    ``O_APPEND`` descriptor, under an exclusive ``flock(2)``: several processes
    may append to one file and their lines never interleave. Before writing,
    a file that does not end with a newline (a writer was killed or the disk
    filled mid-line) gets one, so a line never mixes two events. A file that
    was deleted or renamed (log rotation) is noticed before the next write and
    created again at ``path``. A failed write raises
    :class:`~llmflow.exporters.PartialExportError` saying how many lines were
    written whole, so the runtime counts exactly what reached the file.
    :meth:`flush` delivers everything emitted so far and, with ``fsync=True``
    (default), makes it durable on disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Literal["append", "overwrite"] = "append",
        *,
        fsync: bool = True,
        file_mode: int = 0o600,
        follow_symlinks: bool = False,
    ) -> None:
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode: expected 'append' or 'overwrite', got {mode!r}")
        if type(file_mode) is not int or not 0 <= file_mode <= 0o7777:
            raise ValueError(f"file_mode: expected permission bits like 0o600, got {file_mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.fsync = fsync
        self.file_mode = file_mode
        self.follow_symlinks = follow_symlinks
        self._torn = False  # we left a fragment: the next write starts with a newline
        self._end = -1  # file size after our last write (another writer changes it)
        self._identity = (0, 0)
        self._locking = True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._open(truncate=mode == "overwrite")
        if mode == "append":
            self._end_torn_line(self._fd)

    def _open(self, *, truncate: bool) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if truncate:
            flags |= os.O_TRUNC
        if self.mode == "overwrite" and not self.follow_symlinks:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(self.path, flags, self.file_mode)
        except OSError as exc:
            if exc.errno == errno.ELOOP and self.path.is_symlink():
                raise ValueError(
                    f"path: {str(self.path)!r} is a symbolic link; mode='overwrite' does not "
                    "truncate through links (pass follow_symlinks=True to allow it)"
                ) from exc
            raise
        info = os.fstat(fd)
        self._identity = (info.st_dev, info.st_ino)
        self._end = -1
        self._torn = False
        return fd

    @staticmethod
    def _end_torn_line(fd: int) -> None:
        # A writer killed inside write(2) can leave a partial last line: the kernel
        # may stop a large write at a page boundary. Ending that fragment here keeps
        # it on a line of its own, so the next event is never glued onto it.
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")

    def _current_fd(self, fd: int) -> int:
        """``fd``, or a new descriptor when ``path`` was deleted or now names another file."""
        try:
            info = os.stat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                return fd
        except FileNotFoundError:
            pass
        # Rotated or deleted: write to a fresh file at ``path``, as logrotate expects.
        new = self._open(truncate=False)
        self._fd = new
        os.close(fd)
        return new

    def _needs_newline(self, fd: int) -> bool:
        """Whether the file ends mid-line (our own cut write, or another writer's)."""
        if self._torn:
            return True
        size = os.fstat(fd).st_size
        if size in (self._end, 0):
            return False
        return os.pread(fd, 1, size - 1) != b"\n"

    def default_name(self) -> str:
        """``atof-file:<path>``: the name :meth:`register` uses when none is given."""
        return f"atof-file:{self.path}"

    def export(self, events: Sequence[Event]) -> ExportResult:
        """Write ``events`` as complete lines; ``FAILURE`` if any could not be written."""
        lines: list[LineParts] = []
        for event in events:
            try:
                lines.append(event.line_parts())
            except Exception:  # one unserializable event never costs its neighbours
                continue
        try:
            self.export_lines(lines)
        except PartialExportError:
            return ExportResult.FAILURE
        return ExportResult.SUCCESS if len(lines) == len(events) else ExportResult.FAILURE

    def export_lines(self, lines: Sequence[LineParts]) -> int | None:
        """Write already serialized lines (see :class:`llmflow.LineExporter`).

        Raises :class:`~llmflow.exporters.PartialExportError` (caused by the
        ``OSError``) when a write fails; its ``written`` lines are in the file.
        """
        fd = self._fd
        if fd is None:
            raise ValueError(f"AtofFileExporter({self.path}) is shut down")
        fd = self._current_fd(fd)
        locked = self._lock(fd)
        try:
            self._write(fd, lines)
        finally:
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
        return None

    def _lock(self, fd: int) -> bool:
        if not self._locking:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: O_APPEND alone still keeps lines whole
            self._locking = False
            return False
        return True

    def _write(self, fd: int, lines: Sequence[LineParts]) -> None:
        written = 0
        lead: list[bytes] = []
        try:
            if self._needs_newline(fd):
                lead = [b"\n"]
        except OSError:
            lead = [b"\n"] if self._torn else []
        for start in range(0, len(lines), _LINES_PER_CALL):
            chunk = lines[start : start + _LINES_PER_CALL]
            buffers = lead + list(chain.from_iterable(chunk))
            total = sum(map(len, buffers))
            done = 0
            try:
                done = os.writev(fd, buffers)
                if done < total:  # cut short (signal, full disk): finish the same lines
                    rest = memoryview(b"".join(buffers))[done:]
                    while rest:
                        n = os.write(fd, rest)
                        done += n
                        rest = rest[n:]
            except OSError as exc:
                body = done - len(lead)  # the lead is one byte or nothing
                whole, self._torn = (0, self._torn) if body < 0 else _whole_lines(chunk, body)
                raise PartialExportError(written + whole) from exc
            written += len(chunk)
            lead = []
            self._torn = False
        try:
            self._end = os.lseek(fd, 0, os.SEEK_CUR)
        except OSError:
            self._end = -1

    def flush(self, timeout: float | None = None) -> bool:
        """Deliver everything emitted so far to the file, then fsync it (if enabled).

        Called by the user on a registered exporter, this asks the runtime to
        deliver what is queued (which then calls it back to sync); returns
        whether everything was written within ``timeout``.
        """
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            return registration.flush(timeout)
        if self._fd is not None and self.fsync:
            os.fsync(self._fd)
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Write what is queued, detach from the runtime and close the file. Idempotent."""
        registration = self._registration
        if registration is not None and not registration.runtime_is_calling():
            registration.close(timeout)  # the runtime detaches us, then calls shutdown again
            return
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def after_fork_in_child(self) -> None:
        """Give the child its own descriptor (append mode: never truncates)."""
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = self._open(truncate=False)

    def __repr__(self) -> str:
        return f"AtofFileExporter({str(self.path)!r}, mode={self.mode!r})"


_check: type[LineExporter] = AtofFileExporter  # structural conformance, checked by mypy
