"""Read and check ATOF 0.1 streams.

* :class:`ScopeEvent` and :class:`MarkEvent` are pydantic models of one line;
  unknown fields are allowed and preserved (``model_dump()`` gives them back).
* :func:`read` streams a log (plain, gzip or stdin ``-``) as
  :class:`llmflow.Event` objects in constant memory, reporting bad or cut-off
  lines as :class:`ReadProblem` instead of raising; :func:`iter_records` is
  the same reader yielding the raw dicts (the fast path of the CLI).
* :class:`Span`, :class:`Mark`, :class:`SpanJoiner`, :func:`iter_spans` and
  :func:`build_forest` join starts with ends and build the tree of traces.
* :func:`parse_event` / :func:`read_events` parse lines strictly, raising
  :class:`~llmflow.AtofParseError` with the line number.
* :func:`validate_stream` checks the structural rules across a whole stream and
  returns every violation with its line number.
* :func:`json_schemas` returns the JSON Schemas checked in under ``schemas/``.
"""

from __future__ import annotations

from ._facts import SpanFacts, provider_of, span_facts
from ._models import AtofEvent, DataSchemaModel, MarkEvent, ScopeEvent, parse_event
from ._reader import (
    AtofReadWarning,
    ProblemHandler,
    ReadProblem,
    Record,
    iter_records,
    open_source,
    read,
    read_events,
)
from ._schemas import json_schemas
from ._spans import Mark, Node, Span, SpanJoiner, build_forest, iter_spans
from ._validate import Violation, validate_stream

__all__ = [
    "AtofEvent",
    "AtofReadWarning",
    "Mark",
    "Node",
    "ProblemHandler",
    "ReadProblem",
    "Record",
    "Span",
    "SpanJoiner",
    "build_forest",
    "iter_records",
    "iter_spans",
    "open_source",
    "read",
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
