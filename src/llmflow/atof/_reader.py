"""Read ATOF logs line by line: plain files, ``.gz`` files and stdin, in constant memory.

Two layers:

* :func:`iter_records` is the fast path every command uses: it yields
  ``(line_number, timestamp_us, event_dict)`` for each well-formed line
  (orjson only, no pydantic), and hands each malformed or cut-off line to a
  problem handler as a :class:`ReadProblem` instead of raising.
* :func:`read` (public as ``llmflow.atof.read``) yields :class:`llmflow.Event`
  objects built from those records, the same class subscribers receive.

:func:`read_events` (pydantic models, raises on the first bad line) is the
strict reader kept for validation.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import orjson

from llmflow._event import Event, Origin
from llmflow._types import DataSchema

from ._timestamps import timestamp_us

if TYPE_CHECKING:  # the pydantic models load on first use: the fast readers do not need them
    from ._models import MarkEvent, ScopeEvent

__all__ = [
    "AtofReadWarning",
    "ProblemHandler",
    "ReadProblem",
    "Record",
    "Source",
    "decode_line",
    "to_event",
    "iter_records",
    "numbered_lines",
    "open_source",
    "read",
    "read_events",
    "source_name",
]

Source = str | os.PathLike[str] | Iterable[str | bytes]
"""A path (``"-"`` is stdin; gzip is detected by content), or an iterable of lines."""

Record = tuple[int, int, dict[str, Any]]
"""``(line_number, timestamp_us, event)``: one well-formed line, numbered from 1."""

_GZIP_MAGIC = b"\x1f\x8b"
_KINDS = frozenset(("scope", "mark"))
_PHASES = frozenset(("start", "end"))
_BUFFER = 1 << 20


@dataclass(frozen=True, slots=True)
class ReadProblem:
    """A line that is not a usable ATOF event: where it is and what is wrong.

    ``cut_off`` is true for a last line without its newline that does not
    parse: the damage a writer killed mid-line leaves (SPEC §15).
    """

    source: str
    line: int
    message: str
    cut_off: bool = False

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}"


ProblemHandler = Callable[[ReadProblem], None]
"""Receives each :class:`ReadProblem`; reading goes on after it returns."""


class AtofReadWarning(UserWarning):
    """Issued by :func:`read` for a skipped line when no problem handler is given."""


def source_name(source: Source) -> str:
    """How messages name a source: the path, ``<stdin>`` for ``-``, else ``<lines>``."""
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else str(source)
    return "<lines>"


@contextmanager
def open_source(source: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a path (or ``-`` for stdin) for binary reading, gunzipping gzip content.

    Raises ``OSError`` when the file cannot be opened. Gzip is recognised by its
    magic bytes, so a compressed file needs no ``.gz`` suffix.
    """
    if str(source) == "-":
        stdin = sys.stdin.buffer
        peek = stdin.peek(2)[:2] if isinstance(stdin, io.BufferedReader) else b""
        if peek == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=stdin, mode="rb") as unzipped:
                yield io.BufferedReader(unzipped, _BUFFER)
        else:
            yield stdin
        return
    with io.BufferedReader(io.FileIO(os.fspath(source), "rb"), _BUFFER) as handle:
        if handle.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=handle, mode="rb") as unzipped:
                yield io.BufferedReader(unzipped, _BUFFER)
        else:
            yield handle


def numbered_lines(source: Source) -> Iterator[tuple[int, bytes | str]]:
    """Every non-blank line of a source with its 1-based number (blank lines count)."""
    if isinstance(source, (str, os.PathLike)):
        with open_source(source) as handle:
            yield from _numbered(handle)
        return
    yield from _numbered(source)


def _numbered(lines: Iterable[str | bytes]) -> Iterator[tuple[int, bytes | str]]:
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield number, raw


def read_events(source: Source) -> Iterator[ScopeEvent | MarkEvent]:
    """Parse every non-blank line into pydantic models; raise on the first bad one.

    Raises :class:`~llmflow.AtofParseError` with the line number.
    """
    from ._models import parse_event

    for number, raw in numbered_lines(source):
        yield parse_event(raw, line_number=number)


def _problem_of(obj: Any) -> str | None:
    """Why a decoded line cannot be read as an event, or ``None`` when it can."""
    if type(obj) is not dict:
        return f"expected a JSON object, got {type(obj).__name__}"
    kind = obj.get("kind")
    if kind not in _KINDS:
        return f"kind: expected 'scope' or 'mark', got {kind!r}"
    if type(obj.get("uuid")) is not str:
        return "uuid: expected a string"
    if type(obj.get("name")) is not str:
        return "name: expected a string"
    if kind == "scope" and obj.get("scope_category") not in _PHASES:
        return f"scope_category: expected 'start' or 'end', got {obj.get('scope_category')!r}"
    parent = obj.get("parent_uuid")
    if parent is not None and type(parent) is not str:
        return "parent_uuid: expected a string or null"
    return None


def iter_records(source: Source, on_problem: ProblemHandler | None = None) -> Iterator[Record]:
    """Yield ``(line, timestamp_us, event_dict)`` for every usable line of ``source``.

    Constant memory: one line at a time. A line that is not JSON, not an object,
    or lacks the fields every reader relies on (``kind``, ``uuid``, ``name``,
    ``timestamp``, ``scope_category`` for scopes) is passed to ``on_problem``
    (ignored when ``None``) and skipped. Full schema checks are
    :func:`~llmflow.atof.validate_stream`'s job. Raises ``OSError`` only when
    the file cannot be opened or read.
    """
    name = source_name(source)
    if isinstance(source, (str, os.PathLike)):
        with open_source(source) as handle:
            yield from _records(handle, name, on_problem)
        return
    yield from _records(source, name, on_problem)


def decode_line(
    raw: bytes | str, number: int, source: str, on_problem: ProblemHandler | None
) -> Record | None:
    """Decode one line into a :data:`Record`; ``None`` for a blank or bad line.

    A bad line goes to ``on_problem``; it is *cut off* when it lacks its
    trailing newline (only the last line of a file can).
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if not raw.strip():
            return None
        if on_problem is not None:
            cut_off = raw[-1:] not in (b"\n", "\n")
            message = (
                "cut-off last line (no newline at the end; the writer stopped mid-line)"
                if cut_off
                else f"not valid JSON ({exc})"
            )
            on_problem(ReadProblem(source, number, message, cut_off))
        return None
    # The common case in one expression; _problem_of says what is wrong otherwise.
    if type(obj) is dict:
        get = obj.get
        kind = get("kind")
        parent = get("parent_uuid")
        if (
            ((kind == "scope" and get("scope_category") in _PHASES) or kind == "mark")
            and type(get("uuid")) is str
            and type(get("name")) is str
            and (parent is None or type(parent) is str)
        ):
            try:
                return number, timestamp_us(get("timestamp")), obj
            except ValueError as exc:
                why: str | None = f"timestamp: {exc}"
        else:
            why = _problem_of(obj)
    else:
        why = _problem_of(obj)
    if on_problem is not None and why is not None:
        on_problem(ReadProblem(source, number, why))
    return None


def _records(
    lines: Iterable[str | bytes], name: str, on_problem: ProblemHandler | None
) -> Iterator[Record]:
    decode = decode_line
    for number, raw in enumerate(lines, 1):
        record = decode(raw, number, name, on_problem)
        if record is not None:
            yield record


def _warn(problem: ReadProblem) -> None:
    warnings.warn(str(problem), AtofReadWarning, stacklevel=4)


def _data_schema(value: object) -> DataSchema | None:
    if isinstance(value, dict):
        try:
            return DataSchema(value.get("name"), value.get("version"))  # type: ignore[arg-type]
        except TypeError:  # not a {name, version} pair: the reader never fails on it
            return None
    return None


def to_event(timestamp_us: int, obj: dict[str, Any]) -> Event:
    """Build the :class:`llmflow.Event` of a record (fields ATOF does not define are dropped)."""
    scope = obj["kind"] == "scope"
    attributes = obj.get("attributes") if scope else None
    origin = Origin(
        obj["uuid"],
        obj.get("parent_uuid"),
        obj["name"],
        tuple(attributes) if isinstance(attributes, list) else (),
        obj.get("category"),
        type(obj.get("timestamp")) is int,
    )
    dumps = orjson.dumps

    def raw(key: str) -> bytes | None:
        value = obj.get(key)
        return None if value is None else dumps(value)

    return Event(
        origin,
        obj["scope_category"] if scope else None,
        timestamp_us,
        raw("data"),
        _data_schema(obj.get("data_schema")),
        raw("metadata"),
        raw("category_profile"),
    )


def read(
    path: str | os.PathLike[str], *, on_problem: ProblemHandler | None = None
) -> Iterator[Event]:
    """Stream the events of an ATOF log as :class:`llmflow.Event` objects.

    ``path`` is a file (plain or gzip) or ``"-"`` for stdin; memory stays
    constant whatever its size. A malformed or cut-off line is skipped and
    reported to ``on_problem`` as a :class:`ReadProblem` (line number
    included); without a handler each one issues an :class:`AtofReadWarning`.
    ``event.to_dict()`` gives back the line's ATOF fields; top-level fields
    that ATOF does not define are not carried (use :func:`iter_records` for
    the raw objects). Raises ``OSError`` when the file cannot be opened.
    """
    handler = on_problem if on_problem is not None else _warn
    for _, when, obj in iter_records(path, handler):
        yield to_event(when, obj)
