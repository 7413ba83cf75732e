"""Read and check ATOF 0.1 streams.

* :class:`ScopeEvent` and :class:`MarkEvent` are pydantic models of one line;
  unknown fields are allowed and preserved (``model_dump()`` gives them back).
* :func:`parse_event` / :func:`read_events` parse lines, raising
  :class:`~llmflow.AtofParseError` with the line number.
* :func:`validate_stream` checks the structural rules across a whole stream and
  returns every violation with its line number.
* :func:`json_schemas` returns the JSON Schemas checked in under ``schemas/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ._clock import parse_timestamp
from ._errors import AtofParseError
from ._event import Category

__all__ = [
    "AtofEvent",
    "DataSchemaModel",
    "MarkEvent",
    "ScopeEvent",
    "Violation",
    "json_schemas",
    "parse_event",
    "read_events",
    "validate_stream",
]

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Timestamp = Annotated[
    str | int,
    Field(description="RFC 3339 UTC string or integer epoch microseconds"),
]


class DataSchemaModel(BaseModel):
    """``data_schema``: identity of the schema of ``data``."""

    model_config = ConfigDict(extra="allow")
    name: str
    version: str


class _EventBase(BaseModel):
    model_config = ConfigDict(extra="allow")

    atof_version: Literal["0.1"]
    uuid: Annotated[str, Field(pattern=_UUID)]
    parent_uuid: Annotated[str, Field(pattern=_UUID)] | None = None
    timestamp: Timestamp
    name: str
    data: Any = None
    data_schema: DataSchemaModel | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _timestamp_parses(cls, value: str | int) -> str | int:
        parse_timestamp(value)
        return value

    @property
    def timestamp_us(self) -> int:
        """The timestamp as integer epoch microseconds."""
        return parse_timestamp(self.timestamp)


class ScopeEvent(_EventBase):
    """The start or the end of a unit of work."""

    kind: Literal["scope"]
    scope_category: Literal["start", "end"]
    attributes: list[str]
    category: Category
    category_profile: dict[str, Any] | None = None


class MarkEvent(_EventBase):
    """A point-in-time checkpoint; never carries ``scope_category`` or ``attributes``."""

    model_config = ConfigDict(
        extra="allow",
        # The JSON Schema says what the validator below enforces.
        json_schema_extra={
            "not": {"anyOf": [{"required": ["scope_category"]}, {"required": ["attributes"]}]}
        },
    )
    kind: Literal["mark"]
    category: Category | None = None
    category_profile: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_scope_fields(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for forbidden in ("scope_category", "attributes"):
                if forbidden in value:
                    raise ValueError(f"a mark event never carries {forbidden!r}")
        return value


AtofEvent = Annotated[ScopeEvent | MarkEvent, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[ScopeEvent | MarkEvent] = TypeAdapter(AtofEvent)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "event"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_event(
    line: str | bytes | dict[str, Any], *, line_number: int | None = None
) -> ScopeEvent | MarkEvent:
    """Parse one ATOF line (or its decoded object).

    Raises :class:`AtofParseError` (with ``line_number`` when given) for bad
    JSON or a line that is not an ATOF 0.1 event.
    """
    if isinstance(line, dict):
        obj: Any = line
    else:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise AtofParseError(f"not valid JSON ({exc})", line=line_number) from None
    if not isinstance(obj, dict):
        raise AtofParseError(f"expected a JSON object, got {type(obj).__name__}", line=line_number)
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        raise AtofParseError(_describe(exc), line=line_number) from None


def _lines(
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
    for number, raw in _lines(source):
        yield parse_event(raw, line_number=number)


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

    Rules: each line parses as an ATOF 0.1 event (``schema``); scope
    attributes are sorted without duplicates (``attributes``); ``custom``
    carries ``category_profile.subtype`` (``custom-subtype``); every start has
    exactly one end and no end lacks a start (``pairing``); an end shares
    ``name``, ``parent_uuid``, ``attributes`` and ``category`` with its start
    (``start-end-fields``) and is strictly later (``end-after-start``); every
    ``parent_uuid`` names a scope of the stream (``parent``).
    """
    violations: list[Violation] = []
    starts: dict[str, tuple[int, ScopeEvent]] = {}
    ended: set[str] = set()
    parents: list[tuple[int, str]] = []
    for number, raw in _lines(source):
        try:
            event = parse_event(raw, line_number=number)
        except AtofParseError as exc:
            violations.append(Violation(number, "schema", str(exc).split(": ", 1)[-1]))
            continue
        if event.parent_uuid is not None:
            parents.append((number, event.parent_uuid))
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
        if event.scope_category == "start":
            if event.uuid in starts:
                violations.append(
                    Violation(
                        number,
                        "pairing",
                        f"second start for uuid {event.uuid} "
                        f"(first on line {starts[event.uuid][0]})",
                    )
                )
                continue
            starts[event.uuid] = (number, event)
            continue
        opened = starts.get(event.uuid)
        if opened is None:
            violations.append(Violation(number, "pairing", f"end without a start: {event.uuid}"))
            continue
        if event.uuid in ended:
            violations.append(Violation(number, "pairing", f"second end for uuid {event.uuid}"))
            continue
        ended.add(event.uuid)
        start_line, start = opened
        for key in _SHARED:
            if getattr(start, key) != getattr(event, key):
                violations.append(
                    Violation(
                        number,
                        "start-end-fields",
                        f"{key} of the end ({getattr(event, key)!r}) differs from its start on "
                        f"line {start_line} ({getattr(start, key)!r})",
                    )
                )
        if event.timestamp_us <= start.timestamp_us:
            violations.append(
                Violation(
                    number,
                    "end-after-start",
                    f"end at {event.timestamp} is not later than its start at {start.timestamp} "
                    f"(line {start_line})",
                )
            )
    for uuid, (number, _) in starts.items():
        if uuid not in ended:
            violations.append(Violation(number, "pairing", f"start without an end: {uuid}"))
    for number, parent in parents:
        if parent not in starts:
            violations.append(
                Violation(number, "parent", f"parent_uuid {parent} is not a scope of this stream")
            )
    violations.sort(key=lambda v: v.line)
    return violations


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas (draft 2020-12) of ``schemas/``, keyed by file name."""
    from .codecs import AnnotatedLlmRequest, AnnotatedLlmResponse

    models: dict[str, tuple[type[BaseModel], str]] = {
        "atof-scope-event.schema.json": (ScopeEvent, "ATOF 0.1 scope event"),
        "atof-mark-event.schema.json": (MarkEvent, "ATOF 0.1 mark event"),
        "annotated-llm-request.schema.json": (AnnotatedLlmRequest, "llmflow annotated request"),
        "annotated-llm-response.schema.json": (AnnotatedLlmResponse, "llmflow annotated response"),
    }
    out: dict[str, dict[str, Any]] = {}
    for filename, (model, title) in models.items():
        schema = model.model_json_schema(mode="validation")
        out[filename] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://llmflow.dev/schemas/{filename}",
            "title": title,
            **{k: v for k, v in schema.items() if k != "title"},
        }
    return out
