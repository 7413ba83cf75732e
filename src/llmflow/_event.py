"""The in-process ATOF event: what subscribers receive and exporters write.

An :class:`Event` is immutable from the producer's point of view: its payload
fields (``data``, ``metadata``, ``category_profile``) are held as the JSON bytes
snapshotted at emission and decoded on first access. Serializing an event that
nobody inspected splices those bytes into the line without parsing them again.
"""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

import orjson

from ._clock import format_rfc3339
from ._types import DataSchema, Json, JsonObject

__all__ = ["ATOF_VERSION", "CANONICAL_ATTRIBUTES", "CATEGORIES", "Category", "Event", "EventKind"]

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
        "_epoch_ts",
        "_metadata",
        "_metadata_raw",
        "_profile",
        "_profile_raw",
        "attributes",
        "category",
        "data_schema",
        "kind",
        "name",
        "parent_uuid",
        "scope_category",
        "timestamp_us",
        "uuid",
    )

    kind: EventKind
    uuid: str
    parent_uuid: str | None
    timestamp_us: int
    name: str
    scope_category: Literal["start", "end"] | None
    attributes: tuple[str, ...]
    category: str | None
    data_schema: DataSchema | None

    def __init__(
        self,
        kind: EventKind,
        uuid: str,
        parent_uuid: str | None,
        timestamp_us: int,
        name: str,
        scope_category: Literal["start", "end"] | None,
        attributes: tuple[str, ...],
        category: str | None,
        data_raw: bytes | None,
        data_schema: DataSchema | None,
        metadata_raw: bytes | None,
        profile_raw: bytes | None,
        epoch_ts: bool = False,
    ) -> None:
        # Internal constructor: arguments are already validated and snapshotted.
        self.kind = kind
        self.uuid = uuid
        self.parent_uuid = parent_uuid
        self.timestamp_us = timestamp_us
        self.name = name
        self.scope_category = scope_category
        self.attributes = attributes
        self.category = category
        self.data_schema = data_schema
        self._epoch_ts = epoch_ts
        self._data_raw = data_raw
        self._data = _UNSET
        self._metadata_raw = metadata_raw
        self._metadata = _UNSET
        self._profile_raw = profile_raw
        self._profile = _UNSET

    atof_version: Final = ATOF_VERSION

    @property
    def timestamp(self) -> str | int:
        """The wire timestamp: RFC 3339 ``...Z`` with microseconds, or epoch µs."""
        return self.timestamp_us if self._epoch_ts else format_rfc3339(self.timestamp_us)

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
        head, data, tail = self.line_parts()
        return b"".join((head, data, tail[:-1]))

    def json_line(self) -> bytes:
        """The event as one JSONL line, newline included (what exporters write)."""
        return b"".join(self.line_parts())

    def line_parts(self) -> tuple[bytes, bytes, bytes]:
        """The JSONL line in three pieces: ``head + data + tail``.

        ``data`` is the payload snapshot itself (empty when the head already
        ends in ``null``), so a writer can hand the pieces to ``writev`` and the
        payload is never copied again in user space.
        """
        # ids, category and scope phase are ASCII produced by llmflow itself and
        # the payloads are emission snapshots: only name and attributes need
        # encoding here.
        parent = self.parent_uuid
        us = self.timestamp_us
        schema = self.data_schema
        profile = self._profile_raw
        head = [
            b'{"kind":"scope","atof_version":"0.1","uuid":"'
            if self.kind == "scope"
            else b'{"kind":"mark","atof_version":"0.1","uuid":"',
            self.uuid.encode(),
            b'","parent_uuid":null,"timestamp":'
            if parent is None
            else b'","parent_uuid":"' + parent.encode() + b'","timestamp":',
            str(us).encode() if self._epoch_ts else b'"' + format_rfc3339(us).encode() + b'"',
            b',"name":',
            _dumps(self.name),
        ]
        if self.kind == "scope":
            head += (
                b',"scope_category":"start","attributes":'
                if self.scope_category == "start"
                else b',"scope_category":"end","attributes":',
                _dumps(self.attributes) if self.attributes else b"[]",
                b',"category":"',
                self.category.encode(),  # type: ignore[union-attr]
                b'","category_profile":',
                b"null" if profile is None else profile,
            )
        else:
            if self.category is not None:
                head += (b',"category":"', self.category.encode(), b'"')
            if profile is not None:
                head += (b',"category_profile":', profile)
        data = self._data_raw
        head.append(b',"data":null' if data is None else b',"data":')
        metadata = self._metadata_raw
        tail = b"".join(
            (
                b',"data_schema":null,"metadata":'
                if schema is None
                else b',"data_schema":'
                + _dumps({"name": schema.name, "version": schema.version})
                + b',"metadata":',
                b"null" if metadata is None else metadata,
                b"}\n",
            )
        )
        return b"".join(head), b"" if data is None else data, tail

    def __repr__(self) -> str:
        phase = f" {self.scope_category}" if self.scope_category else ""
        return f"<Event {self.kind}{phase} {self.category or '-'} {self.name!r} {self.uuid}>"
