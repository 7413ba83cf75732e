"""Small value types shared by every layer: JSON aliases, ``LlmRequest``, ``DataSchema``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

from ._errors import InvalidParameterError, ParameterTypeError

__all__ = ["DataSchema", "Json", "JsonObject", "LlmRequest", "check_text"]

Json: TypeAlias = Any
"""A JSON value: ``None``, ``bool``, ``int``, ``float``, ``str``, ``list`` or ``dict``."""

JsonObject: TypeAlias = dict[str, Any]
"""A JSON object with string keys."""


def check_text(value: str, param: str) -> str:
    """``value`` if it can be written as UTF-8; a lone surrogate raises naming ``param``.

    Callers test ``value.isascii()`` first where it is hot: ASCII is always valid.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidParameterError(
            f"{param}: not valid Unicode text ({exc.reason} at position {exc.start}: "
            f"{value!r}); decode bytes with errors='replace' instead of 'surrogateescape'"
        ) from None
    return value


@dataclass(slots=True)
class LlmRequest:
    """A provider request: HTTP ``headers`` and the JSON body ``content``.

    The real request (what the provider receives) keeps every header, credentials
    included; only the copy recorded in events loses the credential headers.
    """

    headers: dict[str, str] = field(default_factory=dict)
    content: JsonObject = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, dict):
            raise ParameterTypeError(
                f"LlmRequest.headers: expected a dict of str to str, "
                f"got {type(self.headers).__name__}"
            )
        if not isinstance(self.content, dict):
            raise ParameterTypeError(
                f"LlmRequest.content: expected a dict (the JSON body), "
                f"got {type(self.content).__name__}"
            )

    def to_dict(self) -> JsonObject:
        """Return ``{"headers": ..., "content": ...}`` (the shape recorded in events)."""
        return {"headers": self.headers, "content": self.content}


@dataclass(frozen=True, slots=True)
class DataSchema:
    """Identity of the schema of an event's ``data``: ``{"name": ..., "version": ...}``."""

    name: str
    version: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterTypeError("DataSchema.name: expected a non-empty str")
        if not isinstance(self.version, str) or not self.version:
            raise ParameterTypeError("DataSchema.version: expected a non-empty str")
        check_text(self.name, "DataSchema.name")
        check_text(self.version, "DataSchema.version")

    def to_dict(self) -> dict[str, str]:
        """Return the wire form ``{"name": name, "version": version}``."""
        return {"name": self.name, "version": self.version}
