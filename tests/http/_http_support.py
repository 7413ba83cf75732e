"""Helpers shared by the transport tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2

import llmflow
from llmflow import Event, LlmRequest, intercepts
from llmflow.testing import capture

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


def _identity(request: LlmRequest, next_: Any) -> Any:
    yield from next_()


def sse_client(reads: list[bytes]) -> httpx2.Client:
    """An instrumented client whose provider answers with ``reads`` as the SSE body's reads."""

    class Reads(httpx2.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            return iter(reads)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, stream=Reads())

    return llmflow.instrument(httpx2.Client(transport=httpx2.MockTransport(handler)))


def sse_relayed(
    reads: list[bytes], url: str, body: Any, *, parsed: bool = False
) -> tuple[list[bytes], Any, int]:
    """The SDK's reads, the end ``data`` and the codec failures of one stream of ``reads``.

    ``parsed=True`` registers an identity stream intercept, so every event is
    parsed and folded as it comes (the path the raw relay must equal).
    """
    runtime = llmflow.get_runtime()
    before = runtime.diagnostics().failure_count("codec:")
    if parsed:
        intercepts.register_llm_stream_execution("identity", 0, _identity)
    try:
        with capture() as events:
            with sse_client(reads).stream("POST", url, json=body) as response:
                parts = list(response.iter_raw())
    finally:
        if parsed:
            intercepts.deregister_llm_stream_execution("identity")
    _, end = only_pair(events)
    return parts, end.data, runtime.diagnostics().failure_count("codec:") - before
