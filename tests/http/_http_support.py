"""Helpers shared by the transport tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmflow import Event

Factory = Callable[..., Any]
"""``make_openai`` / ``make_anthropic``: ``(asynchronous=False, instrumented=True, **options)``."""


def pairs(events: list[Event], category: str = "llm") -> list[tuple[Event, Event]]:
    """(start, end) of every scope of ``category``, in start order."""
    starts = [e for e in events if e.scope_category == "start" and e.category == category]
    ends = {e.uuid: e for e in events if e.scope_category == "end"}
    return [(s, ends[s.uuid]) for s in starts]


def only_pair(events: list[Event], category: str = "llm") -> tuple[Event, Event]:
    (pair,) = pairs(events, category)
    return pair
