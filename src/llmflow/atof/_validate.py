"""Structural checks across a whole ATOF stream."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from llmflow._errors import AtofParseError

from ._models import ScopeEvent, parse_event
from ._reader import numbered_lines

__all__ = ["Violation", "validate_stream"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: ``line`` (1-based), a short ``rule`` id and a message."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"


_SHARED = ("name", "parent_uuid", "attributes", "category")
_SUBTYPE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


def validate_stream(
    source: str | os.PathLike[str] | Iterable[str | bytes],
) -> list[Violation]:
    """Check a whole ATOF stream; return every violation (empty when valid).

    Rules: each line parses as an ATOF 0.1 event (``schema``; a last line cut
    off mid-write says so); scope
    attributes are sorted without duplicates (``attributes``); ``custom``
    carries ``category_profile.subtype`` (``custom-subtype``); every start has
    exactly one end and no end lacks a start (``pairing``); an end shares
    ``name``, ``parent_uuid``, ``attributes`` and ``category`` with its start
    (``start-end-fields``) and is strictly later (``end-after-start``); every
    ``parent_uuid`` names a scope of the stream (``parent``).
    """
    violations: list[Violation] = []
    # Memory: the open starts (a few fields each) and the uuid of every scope;
    # never the parsed events (a million-line log stays in tens of MB).
    starts: dict[str, tuple[int, tuple[object, ...], int, str | int]] = {}
    seen: dict[str, int] = {}
    parents: list[tuple[int, str]] = []
    for number, raw in numbered_lines(source):
        try:
            event = parse_event(raw, line_number=number)
        except AtofParseError as exc:
            message = str(exc).split(": ", 1)[-1]
            if raw[-1:] not in (b"\n", "\n") and message.startswith("not valid JSON"):
                message = "cut-off last line (no newline at the end; the writer stopped mid-line)"
            violations.append(Violation(number, "schema", message))
            continue
        if event.parent_uuid is not None and event.parent_uuid not in seen:
            parents.append((number, event.parent_uuid))  # checked at the end
        profile = event.category_profile or {}
        if event.category == "custom" and not (
            isinstance(profile.get("subtype"), str) and _SUBTYPE.match(profile["subtype"])
        ):
            violations.append(
                Violation(
                    number,
                    "custom-subtype",
                    "category 'custom' requires category_profile.subtype (a dotted name)",
                )
            )
        if not isinstance(event, ScopeEvent):
            continue
        if event.attributes != sorted(set(event.attributes)):
            violations.append(
                Violation(
                    number,
                    "attributes",
                    f"attributes must be sorted and unique, got {event.attributes}",
                )
            )
        shared = tuple(getattr(event, key) for key in _SHARED)
        if event.scope_category == "start":
            if event.uuid in seen:
                violations.append(
                    Violation(
                        number,
                        "pairing",
                        f"second start for uuid {event.uuid} (first on line {seen[event.uuid]})",
                    )
                )
                continue
            seen[event.uuid] = number
            starts[event.uuid] = (number, shared, event.timestamp_us, event.timestamp)
            continue
        opened = starts.pop(event.uuid, None)
        if opened is None:
            if event.uuid in seen:
                violations.append(Violation(number, "pairing", f"second end for uuid {event.uuid}"))
            else:
                violations.append(
                    Violation(number, "pairing", f"end without a start: {event.uuid}")
                )
            continue
        start_line, start_shared, start_us, start_timestamp = opened
        for key, before, after in zip(_SHARED, start_shared, shared, strict=True):
            if before != after:
                violations.append(
                    Violation(
                        number,
                        "start-end-fields",
                        f"{key} of the end ({after!r}) differs from its start on "
                        f"line {start_line} ({before!r})",
                    )
                )
        if event.timestamp_us <= start_us:
            violations.append(
                Violation(
                    number,
                    "end-after-start",
                    f"end at {event.timestamp} is not later than its start at {start_timestamp} "
                    f"(line {start_line})",
                )
            )
    for uuid, (number, *_) in starts.items():
        violations.append(Violation(number, "pairing", f"start without an end: {uuid}"))
    for number, parent in parents:
        if parent not in seen:
            violations.append(
                Violation(number, "parent", f"parent_uuid {parent} is not a scope of this stream")
            )
    violations.sort(key=lambda v: v.line)
    return violations
