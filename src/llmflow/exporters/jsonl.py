"""The JSONL file exporter: one ATOF event per line, written with ``writev(2)``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Literal

from llmflow._event import Event, LineParts
from llmflow.exporters._base import BaseExporter, ExportResult, LineExporter

__all__ = ["AtofFileExporter"]

_IOV_MAX = 1023  # buffers per writev(2) call: whole lines (3 pieces each), <= IOV_MAX (1024)


class AtofFileExporter(BaseExporter):
    """Writes every event as one line of ATOF JSONL.

    ``mode="append"`` (default) keeps what the file holds; ``"overwrite"``
    truncates it when the exporter is created. Delivered lines are written
    with ``writev(2)`` (up to 341 whole lines a call, payload snapshots passed
    uncopied) on an ``O_APPEND`` descriptor, so several processes may append
    to one file and a crash loses only the unwritten tail: at worst the last
    line is cut short (no newline). Opening a file in append
    mode ends such a cut line first, so a line never mixes two events.
    :meth:`flush` delivers everything emitted so far and, with ``fsync=True``
    (default), makes it durable on disk.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        mode: Literal["append", "overwrite"] = "append",
        *,
        fsync: bool = True,
    ) -> None:
        if mode not in ("append", "overwrite"):
            raise ValueError(f"mode: expected 'append' or 'overwrite', got {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._open(truncate=mode == "overwrite")
        if mode == "append":
            self._end_torn_line(self._fd)

    def _open(self, *, truncate: bool) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        return os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)

    @staticmethod
    def _end_torn_line(fd: int) -> None:
        # A writer killed inside write(2) can leave a partial last line: the kernel
        # may stop a large write at a page boundary. Ending that fragment here keeps
        # it on a line of its own, so the next event is never glued onto it.
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")

    def default_name(self) -> str:
        """``atof-file:<path>``: the name :meth:`register` uses when none is given."""
        return f"atof-file:{self.path}"

    def export(self, events: Sequence[Event]) -> ExportResult:
        """Write ``events`` as complete lines, up to 341 lines per system call."""
        self.export_lines([event.line_parts() for event in events])
        return ExportResult.SUCCESS

    def export_lines(self, lines: Sequence[LineParts]) -> int | None:
        """Write already serialized lines (see :class:`llmflow.LineExporter`)."""
        fd = self._fd
        if fd is None:
            raise ValueError(f"AtofFileExporter({self.path}) is shut down")
        buffers = list(chain.from_iterable(lines))
        for start in range(0, len(buffers), _IOV_MAX):
            chunk = buffers[start : start + _IOV_MAX]
            written = os.writev(fd, chunk)
            if written < sum(map(len, chunk)):  # cut short (signal, full disk): finish it
                rest = memoryview(b"".join(chunk))[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        return None

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
