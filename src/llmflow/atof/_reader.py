"""Read ATOF lines from a file or an iterable, numbered from 1."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._models import MarkEvent, ScopeEvent, parse_event

__all__ = ["numbered_lines", "read_events"]


def numbered_lines(
    source: str | os.PathLike[str] | Iterable[str | bytes],
) -> Iterator[tuple[int, bytes | str]]:
    if isinstance(source, (str, os.PathLike)):
        with Path(source).open("rb") as handle:
            yield from _numbered(handle)
        return
    yield from _numbered(source)


def _numbered(lines: Iterable[str | bytes]) -> Iterator[tuple[int, bytes | str]]:
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield number, raw


def read_events(
    source: str | os.PathLike[str] | Iterable[str | bytes],
) -> Iterator[ScopeEvent | MarkEvent]:
    """Parse every non-blank line of a file path or an iterable of lines."""
    for number, raw in numbered_lines(source):
        yield parse_event(raw, line_number=number)
