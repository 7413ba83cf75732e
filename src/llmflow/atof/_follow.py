"""Following a growing log file: complete lines, rotation, truncation, a resume offset.

Used by ``llmflow tail -f`` and by the shipper (``llmflow ship``). A line is
yielded only once its newline has been written (a writer mid-line is waited
for, never reported as broken); a file replaced under the same name
(rotation) is drained and the new one read from its start; a file that
shrinks (truncation) is read again from its start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import IO, Final

__all__ = ["Follower", "follow_lines"]

POLL_SECONDS: Final = 0.1


class Follower:
    """The complete lines of a growing file, from byte ``offset`` on, with where each ends.

    Iterating yields ``(line_number, line)`` for each complete line (numbers go
    on from ``number``, the count of lines before ``offset``); ``None`` each
    time it has caught up and is about to wait ``poll`` seconds (so callers can
    flush or stop); and ``(0, b"")`` after a rotation or truncation (a new file
    begins at offset 0; numbering restarts). After each item, :attr:`offset` is
    the byte offset just past the last line yielded and :attr:`identity` the
    ``(st_dev, st_ino)`` of the file it belongs to. Opening raises ``OSError``
    (the file cannot be read at first); later, a file briefly missing during a
    rotation is waited for. An ``offset`` past the end of the file (it was
    truncated) starts at 0. Close it with :meth:`close` (iteration's end does).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        number: int = 0,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.path = os.fspath(path)
        self.poll = poll
        self._handle: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - reopened on rotation
        info = os.fstat(self._handle.fileno())
        self.identity: tuple[int, int] = (info.st_dev, info.st_ino)
        if offset < 0 or offset > info.st_size:
            offset, number = 0, 0
        self._handle.seek(offset)
        self.offset = offset
        self.number = number
        self.rotations = 0

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` of the file being read (fewer at its end)."""
        return os.pread(self._handle.fileno(), size, offset)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def __iter__(self) -> Iterator[tuple[int, bytes] | None]:
        try:
            yield from self._lines()
        finally:
            self.close()

    def _lines(self) -> Iterator[tuple[int, bytes] | None]:
        handle = self._handle
        pending = b""
        while True:
            chunk = handle.readline()
            if chunk:
                if not chunk.endswith(b"\n"):
                    pending += chunk  # the writer is mid-line: wait for the rest
                    continue
                line = pending + chunk if pending else chunk
                pending = b""
                self.number += 1
                self.offset += len(line)
                yield self.number, line
                continue
            yield None
            time.sleep(self.poll)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                continue  # between the rename and the new file: wait
            position = handle.tell()
            if (current.st_dev, current.st_ino) != self.identity:
                rest = handle.read()  # whatever the old file got after our last read
                for line in (pending + rest).splitlines(keepends=True):
                    if line.endswith(b"\n"):
                        self.number += 1
                        self.offset += len(line)
                        yield self.number, line
                handle.close()
                handle = self._handle = open(self.path, "rb")  # noqa: SIM115
                info = os.fstat(handle.fileno())
                self.identity = (info.st_dev, info.st_ino)
                self._restart()
                pending = b""
                yield 0, b""
            elif current.st_size < position:
                handle.seek(0)
                self._restart()
                pending = b""
                yield 0, b""

    def _restart(self) -> None:
        self.number = self.offset = 0
        self.rotations += 1


def follow_lines(
    path: str, *, from_start: bool = True, poll: float = POLL_SECONDS
) -> Iterator[tuple[int, bytes] | None]:
    """Yield ``(line_number, line)`` for each complete line of a growing file, forever.

    Yields ``None`` each time it has caught up and is about to wait (so callers
    can flush), and ``(0, b"")`` after a rotation or truncation (a new log
    begins; numbering restarts). Raises ``OSError`` if the file cannot be opened
    at first; later, a file that is briefly missing during rotation is waited for.
    """
    offset = 0 if from_start else os.stat(path).st_size
    return iter(Follower(path, offset=offset, poll=poll))
