"""What every reading command shares: opening logs, reporting bad lines, progress, exit codes.

Exit codes (documented in ``docs/cli.md``): :data:`EXIT_OK` (0),
:data:`EXIT_VIOLATIONS` (1, ``validate`` found broken rules) and
:data:`EXIT_UNREADABLE` (2, bad usage or a file that cannot be read). Skipped
lines are warnings on stderr, one line each; they never change the exit code
of a reading command (``validate`` is the command that judges a log).
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Final

from llmflow.atof import ReadProblem, Record, iter_records, open_source
from llmflow.atof._reader import source_name

__all__ = [
    "EXIT_OK",
    "EXIT_UNREADABLE",
    "EXIT_VIOLATIONS",
    "LogInput",
    "Progress",
    "UnreadableInput",
]

EXIT_OK: Final = 0
EXIT_VIOLATIONS: Final = 1
EXIT_UNREADABLE: Final = 2
_SHOWN_PROBLEMS: Final = 10


class UnreadableInput(Exception):
    """A log that cannot be opened or read; the message is one line for stderr."""


class Progress:
    """A one-line counter on stderr, drawn only when stderr is a terminal.

    Redrawn at most every 0.2 s; :meth:`done` erases it. Piped output never
    sees it.
    """

    def __init__(self, label: str, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._label = label
        self._started = time.monotonic()
        self._next = self._started + 0.5
        self._drawn = False

    @property
    def enabled(self) -> bool:
        """Whether anything is drawn (stderr is a terminal)."""
        return self._enabled

    def update(self, count: int, unit: str = "lines") -> None:
        """Show ``count`` if a redraw is due."""
        if not self._enabled:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + 0.2
        rate = count / max(now - self._started, 1e-9)
        self._stream.write(f"\r\x1b[2K{self._label}: {count:,} {unit} ({rate:,.0f}/s)")
        self._stream.flush()
        self._drawn = True

    def done(self) -> None:
        """Erase the line if one was drawn."""
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False


class LogInput:
    """Read one or more logs as records, printing each skipped line as a warning.

    ``problems`` counts skipped lines; the first ten are printed on stderr as
    ``path:line: message`` and a summary follows in :meth:`finish`.
    :meth:`records` raises :class:`UnreadableInput` for a missing or unreadable
    file, with one line naming it.
    """

    def __init__(self, paths: Sequence[str], *, command: str, progress: bool = True) -> None:
        self.paths = list(paths)
        self.command = command
        self.problems = 0
        self.cut_off = 0
        self.lines = 0
        self._last_problem_line = 0
        self._progress = Progress(f"llmflow {command}") if progress else None

    def report(self, problem: ReadProblem) -> None:
        """Count a problem and print it if it is among the first ten."""
        self.problems += 1
        self.cut_off += problem.cut_off
        self._last_problem_line = max(self._last_problem_line, problem.line)
        if self.problems <= _SHOWN_PROBLEMS:
            print(f"warning: {problem} (line skipped)", file=sys.stderr)

    def records(self, path: str) -> Iterator[Record]:
        """The records of one path (``-`` is stdin)."""
        progress = self._progress
        with self._translated_errors(path):
            last = 0
            for count, record in enumerate(iter_records(path, self.report), 1):
                last = record[0]
                if progress is not None and not count & 0x3FFF:
                    progress.update(self.lines + last)
                yield record
            # Lines, not records: skipped lines count too (a blank tail does not).
            self.lines += max(last, self._last_problem_line)

    def raw_lines(self, handle: IO[bytes]) -> Iterator[bytes]:
        """The lines of a handle from :meth:`reading`, drawing progress on a terminal.

        Without a terminal this is the handle itself: no cost per line.
        """
        progress = self._progress
        if progress is None or not progress.enabled:
            return handle
        return self._with_progress(handle, progress)

    def _with_progress(self, handle: IO[bytes], progress: Progress) -> Iterator[bytes]:
        for count, raw in enumerate(handle, 1):
            if not count & 0x3FFF:
                progress.update(self.lines + count)
            yield raw

    @contextmanager
    def reading(self, path: str) -> Iterator[IO[bytes]]:
        """Open one path (``-`` is stdin, gzip unpacked) as a binary handle of lines.

        Errors while opening or reading raise :class:`UnreadableInput`.
        """
        with self._translated_errors(path), open_source(path) as handle:
            yield handle

    @contextmanager
    def _translated_errors(self, path: str) -> Iterator[None]:
        self._last_problem_line = 0
        try:
            yield
        except OSError as exc:
            raise UnreadableInput(
                f"llmflow {self.command}: cannot read {source_name(path)}: {exc.strerror or exc}"
            ) from None
        except (EOFError, zlib.error) as exc:  # a gzip stream cut off or corrupt
            raise UnreadableInput(
                f"llmflow {self.command}: {source_name(path)}: compressed data ends early ({exc})"
            ) from None
        finally:
            if self._progress is not None:
                self._progress.done()

    def all_records(self) -> Iterator[tuple[str, Record]]:
        """Every record of every path, each with its path, file after file."""
        for path in self.paths:
            for record in self.records(path):
                yield path, record

    def finish(self) -> None:
        """Print the summary of skipped lines (when more were skipped than shown)."""
        if self.problems > _SHOWN_PROBLEMS:
            print(
                f"warning: {self.problems} lines skipped in all "
                f"({self.problems - _SHOWN_PROBLEMS} not shown)",
                file=sys.stderr,
            )


def check_readable(paths: Sequence[str], command: str) -> str | None:
    """A one-line error for the first path that does not exist, else ``None``."""
    for path in paths:
        if path != "-" and not os.path.exists(path):
            return f"llmflow {command}: cannot read {path}: No such file or directory"
        if path != "-" and os.path.isdir(path):
            return f"llmflow {command}: cannot read {path}: is a directory"
    return None
