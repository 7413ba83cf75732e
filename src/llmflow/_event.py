"""The in-process ATOF event: what subscribers receive and exporters write.

An :class:`Event` is immutable from the producer's point of view: its payload
fields (``data``, ``metadata``, ``category_profile``) are held as the JSON bytes
snapshotted at emission and decoded on first access. Serializing an event that
nobody inspected splices those bytes into the line without parsing them again.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

import orjson

from . import _clock
from ._clock import format_rfc3339
from ._types import DataSchema, Json, JsonObject

__all__ = [
    "ATOF_VERSION",
    "CANONICAL_ATTRIBUTES",
    "CATEGORIES",
    "Category",
    "Event",
    "EventKind",
    "LineParts",
    "Origin",
    "line",
]

ATOF_VERSION: Final = "0.1"

Category = Literal[
    "agent",
    "function",
    "llm",
    "tool",
    "retriever",
    "embedder",
    "reranker",
    "guardrail",
    "evaluator",
    "custom",
    "unknown",
]
"""An ATOF 0.1 ``category``; ``custom`` needs ``category_profile.subtype``."""

CATEGORIES: Final[frozenset[str]] = frozenset(get_args(Category))

CANONICAL_ATTRIBUTES: Final = ("parallel", "relocatable", "stateful", "streaming", "remote")
"""The attribute flags ATOF names; unknown flags are preserved all the same."""

EventKind = Literal["scope", "mark"]
_UNSET: Any = object()
_dumps = orjson.dumps
_loads = orjson.loads

# Constant pieces of a JSONL line (see Event.line_parts).
_NULL = b"null"
_DATA = b',"data":'
_NO_SCHEMA = b',"data_schema":null,"metadata":'
_END = b"}\n"
_PROFILE = b',"category_profile":'


class Origin:
    """What every event of one span (or one mark) shares: its identity.

    ``uuid``, ``parent_uuid``, ``name``, ``attributes``, ``category`` and the
    runtime's timestamp format. A span's start and end events point to the same
    origin, so the wire text of that identity is built once per span, on first
    serialization, and reused. Fields are fixed at creation.
    """

    __slots__ = ("_wire", "attributes", "category", "epoch_ts", "name", "parent_uuid", "uuid")

    uuid: str
    parent_uuid: str | None
    name: str
    attributes: tuple[str, ...]
    category: str | None
    epoch_ts: bool
    _wire: tuple[str, str, str] | None

    def __init__(
        self,
        uuid: str,
        parent_uuid: str | None,
        name: str,
        attributes: tuple[str, ...],
        category: str | None,
        epoch_ts: bool,
    ) -> None:
        self.uuid = uuid
        self.parent_uuid = parent_uuid
        self.name = name
        self.attributes = attributes
        self.category = category
        self.epoch_ts = epoch_ts
        self._wire = None

    def wire(self, kind: EventKind) -> tuple[str, str, str]:
        """The line text around the timestamp: ``(before, after_start, after_end)``.

        For a mark ``after_start`` is used and ``after_end`` is empty. ids and
        the category are ASCII that llmflow produced or validated; name and
        attributes are JSON-encoded here. Cached: two threads racing here
        compute the same value.
        """
        wire = self._wire
        if wire is None:
            parent = "null" if self.parent_uuid is None else f'"{self.parent_uuid}"'
            after = _AFTER.get((kind, self.name, self.attributes, self.category))
            if after is None:
                after = _after_timestamp(kind, self.name, self.attributes, self.category)
            wire = self._wire = (
                f'{{"kind":"{kind}","atof_version":"0.1","uuid":"{self.uuid}",'
                f'"parent_uuid":{parent},"timestamp":',
                after[0],
                after[1],
            )
        return wire


_AFTER: dict[tuple[str, str, tuple[str, ...], str | None], tuple[str, str]] = {}


def _after_timestamp(
    kind: EventKind, name: str, attributes: tuple[str, ...], category: str | None
) -> tuple[str, str]:
    """The line text between timestamp and profile, for a start and an end.

    Cached: a program has few distinct span names, and this text is all that
    identifies them besides the ids.
    """
    encoded = _dumps(name).decode()
    if kind == "scope":
        rest = (
            f',"attributes":{_dumps(attributes).decode()},'
            f'"category":"{category}","category_profile":'
        )
        after = (
            f',"name":{encoded},"scope_category":"start"{rest}',
            f',"name":{encoded},"scope_category":"end"{rest}',
        )
    else:
        extra = "" if category is None else f',"category":"{category}"'
        after = (f',"name":{encoded}{extra}', "")
    if len(_AFTER) >= 4096:
        _AFTER.clear()
    _AFTER[kind, name, attributes, category] = after
    return after


class Event:
    """One ATOF 0.1 event, with one attribute per wire field.

    ``timestamp`` is the wire value (RFC 3339 string, or int epoch microseconds
    when the runtime is configured so); ``timestamp_us`` is always the int.
    ``to_dict()`` is exactly the JSON object written to JSONL and ``to_json()``
    its bytes. Treat an event as read-only: subscribers share the instance.
    """

    __slots__ = (
        "_data",
        "_data_raw",
        "_metadata",
        "_metadata_raw",
        "_origin",
        "_profile",
        "_profile_raw",
        "data_schema",
        "scope_category",
        "timestamp_us",
    )

    scope_category: Literal["start", "end"] | None
    timestamp_us: int
    data_schema: DataSchema | None

    def __init__(
        self,
        origin: Origin,
        scope_category: Literal["start", "end"] | None,
        timestamp_us: int,
        data_raw: bytes | None,
        data_schema: DataSchema | None,
        metadata_raw: bytes | None,
        profile_raw: bytes | None,
    ) -> None:
        # Internal constructor: arguments are already validated and snapshotted;
        # ``scope_category`` is None exactly for marks.
        self._origin = origin
        self.scope_category = scope_category
        self.timestamp_us = timestamp_us
        self.data_schema = data_schema
        self._data_raw = data_raw
        self._data = _UNSET
        self._metadata_raw = metadata_raw
        self._metadata = _UNSET
        self._profile_raw = profile_raw
        self._profile = _UNSET

    atof_version: Final = ATOF_VERSION

    @property
    def kind(self) -> EventKind:
        """``"scope"`` (a start or end) or ``"mark"``."""
        return "mark" if self.scope_category is None else "scope"

    @property
    def uuid(self) -> str:
        """The event id; a span's start and end share it."""
        return self._origin.uuid

    @property
    def parent_uuid(self) -> str | None:
        """The enclosing span's uuid, or ``None`` at the root."""
        return self._origin.parent_uuid

    @property
    def name(self) -> str:
        """The span or mark name."""
        return self._origin.name

    @property
    def attributes(self) -> tuple[str, ...]:
        """Sorted attribute flags (always empty for marks)."""
        return self._origin.attributes

    @property
    def category(self) -> str | None:
        """The ATOF category (``None`` for an uncategorized mark)."""
        return self._origin.category

    @property
    def timestamp(self) -> str | int:
        """The wire timestamp: RFC 3339 ``...Z`` with microseconds, or epoch µs."""
        return self.timestamp_us if self._origin.epoch_ts else format_rfc3339(self.timestamp_us)

    @property
    def data(self) -> Json:
        """The event payload (decoded from the emission snapshot on first access)."""
        if self._data is _UNSET:
            raw = self._data_raw
            self._data = None if raw is None else _loads(raw)
        return self._data

    @property
    def metadata(self) -> JsonObject | None:
        """Free-form metadata object, or ``None``."""
        if self._metadata is _UNSET:
            raw = self._metadata_raw
            self._metadata = None if raw is None else _loads(raw)
        return self._metadata  # type: ignore[no-any-return]

    @property
    def category_profile(self) -> JsonObject | None:
        """Category-specific profile (``model_name``, ``tool_call_id``, ...), or ``None``."""
        if self._profile is _UNSET:
            raw = self._profile_raw
            self._profile = None if raw is None else _loads(raw)
        return self._profile  # type: ignore[no-any-return]

    def _replace_payload(self, field: str, raw: bytes | None) -> None:
        """Swap one payload field for a new snapshot (used by event sanitizers)."""
        setattr(self, f"_{field}_raw", raw)
        setattr(self, f"_{field}", _UNSET)

    def to_dict(self) -> JsonObject:
        """The exact JSON object written as this event's JSONL line (a fresh copy)."""
        copy = _loads(self.to_json())
        assert isinstance(copy, dict)
        return copy

    def to_json(self) -> bytes:
        """The event as one compact JSON document (no trailing newline)."""
        return self.json_line()[:-1]

    def json_line(self) -> bytes:
        """The event as one JSONL line, newline included (what exporters write)."""
        return b"".join(self.line_parts())

    def line_parts(self) -> LineParts:
        """The JSONL line as ``(head, data, tail)`` (see :data:`LineParts`)."""
        return line(
            self._origin,
            self.scope_category,
            self.timestamp_us,
            self._data_raw,
            self.data_schema,
            self._metadata_raw,
            self._profile_raw,
        )

    def __repr__(self) -> str:
        phase = f" {self.scope_category}" if self.scope_category else ""
        return f"<Event {self.kind}{phase} {self.category or '-'} {self.name!r} {self.uuid}>"


LineParts = tuple[bytes, bytes, bytes]
"""A JSONL line as ``(head, data, tail)``; their concatenation is the line.

``data`` is the payload snapshot itself (``b"null"`` without one), so a
writer can hand the pieces to ``writev`` and the payload is never copied
again in user space.
"""


def line(
    origin: Origin,
    phase: Literal["start", "end"] | None,
    timestamp_us: int,
    data_raw: bytes | None,
    data_schema: DataSchema | None,
    metadata_raw: bytes | None,
    profile_raw: bytes | None,
) -> LineParts:
    """Serialize one event (the fields of :class:`Event`) as its JSONL line.

    Only the head (ids, time, name, profile) and the short tail are built
    here. Both are new objects on every call: a line is read and freed by
    the delivery thread, and pieces shared by every line (constants) would
    have their reference counts bounce between the two threads' cores.
    """
    before, after_start, after_end = origin._wire or origin.wire(
        "mark" if phase is None else "scope"
    )
    after = after_end if phase == "end" else after_start
    if origin.epoch_ts:
        head = f"{before}{timestamp_us}{after}".encode()
    else:
        second, micro = divmod(timestamp_us, 1_000_000)
        cached = _clock.second_cache
        if cached[0] != second:
            cached = _clock.cache_second(second)
        head = f'{before}"{cached[1]}.{micro:06d}Z"{after}'.encode()
    if phase is None:
        head = head + _PROFILE + profile_raw + _DATA if profile_raw else head + _DATA
    else:
        head = head + (profile_raw or _NULL) + _DATA
    schema = (
        _NO_SCHEMA
        if data_schema is None
        else b',"data_schema":'
        + _dumps({"name": data_schema.name, "version": data_schema.version})
        + b',"metadata":'
    )
    return head, data_raw or _NULL, schema + (metadata_raw or _NULL) + _END
