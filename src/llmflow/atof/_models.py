"""Pydantic models of one ATOF 0.1 line, and :func:`parse_event`.

Unknown fields are allowed and preserved (``model_dump()`` gives them back).
"""

from __future__ import annotations

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

from llmflow._clock import parse_timestamp
from llmflow._errors import AtofParseError
from llmflow._event import Category

__all__ = ["AtofEvent", "DataSchemaModel", "MarkEvent", "ScopeEvent", "parse_event"]

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
