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

from typing import TYPE_CHECKING

from llmflow._lazy import lazy_getattr

from ._facts import SpanFacts, provider_of, span_facts
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
from ._spans import Mark, Node, Span, SpanJoiner, build_forest, iter_spans

if TYPE_CHECKING:
    from ._models import AtofEvent, DataSchemaModel, MarkEvent, ScopeEvent, parse_event
    from ._schemas import json_schemas
    from ._validate import Violation, validate_stream

# The pydantic models (and what uses them) load on first use: the streaming
# readers, which every log command uses, do not need pydantic, and importing
# it costs a command about 0.1 s of start-up.
_LAZY = {
    "AtofEvent": "._models",
    "DataSchemaModel": "._models",
    "MarkEvent": "._models",
    "ScopeEvent": "._models",
    "parse_event": "._models",
    "json_schemas": "._schemas",
    "Violation": "._validate",
    "validate_stream": "._validate",
}


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
