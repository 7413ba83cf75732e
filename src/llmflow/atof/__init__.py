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

from ._facts import SpanFacts, provider_of, span_facts
from ._models import AtofEvent, DataSchemaModel, MarkEvent, ScopeEvent, parse_event
from ._reader import read_events
from ._schemas import json_schemas
from ._validate import Violation, validate_stream

__all__ = [
    "AtofEvent",
    "DataSchemaModel",
    "MarkEvent",
    "ScopeEvent",
    "SpanFacts",
    "Violation",
    "json_schemas",
    "parse_event",
    "provider_of",
    "read_events",
    "span_facts",
    "validate_stream",
]
