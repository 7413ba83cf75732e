"""Helpers of the middleware tests: a fake clock, provider-shaped failures, event filters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx2

from llmflow import Event, LlmRequest


class FakeTime:
    """A clock that only moves when something sleeps on it; records every wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class HTTPFailure(Exception):
    """Shaped like ``llmflow.http.ProviderHTTPError``: ``status_code`` and ``headers``."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.headers = headers or {}


def http_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    return httpx2.Response(status, headers=headers or {}, request=request, json={"error": {}})


def openai_status_error(status: int, headers: dict[str, str] | None = None) -> Exception:
    """The exception the openai SDK raises for ``status`` (built the way the SDK builds it)."""
    import openai

    classes = {400: openai.BadRequestError, 401: openai.AuthenticationError,
               409: openai.ConflictError, 429: openai.RateLimitError}  # fmt: skip
    default = openai.InternalServerError if status >= 500 else openai.APIStatusError
    cls = classes.get(status, default)
    return cls(f"Error code: {status}", response=http_response(status, headers), body=None)


def llm_request(model: str = "gpt-4o", **content: Any) -> LlmRequest:
    messages = [{"role": "user", "content": "hi"}]
    return LlmRequest({}, {"model": model, "messages": messages, **content})


def named(events: Iterable[Event], name: str) -> list[Event]:
    return [e for e in events if e.name == name]


def llm_ends(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.category == "llm" and e.scope_category == "end"]


def llm_starts(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if e.category == "llm" and e.scope_category == "start"]
