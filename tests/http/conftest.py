"""Fixtures for the transport tests: a FakeProvider and real SDK clients over loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

import llmflow
from llmflow.testing import FakeProvider


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


Factory = Callable[..., Any]


@pytest.fixture
def make_openai(provider: FakeProvider) -> Factory:
    """``make_openai(asynchronous=False, instrumented=True, **options)``."""

    def make(asynchronous: bool = False, instrumented: bool = True, **options: Any) -> Any:
        cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        options.setdefault("max_retries", 0)
        client = cls(base_url=provider.base_url + "/v1", api_key="sk-SECRET-openai", **options)
        return llmflow.instrument(client) if instrumented else client

    return make


@pytest.fixture
def make_anthropic(provider: FakeProvider) -> Factory:
    """``make_anthropic(asynchronous=False, instrumented=True, **options)``."""

    def make(asynchronous: bool = False, instrumented: bool = True, **options: Any) -> Any:
        cls = anthropic.AsyncAnthropic if asynchronous else anthropic.Anthropic
        options.setdefault("max_retries", 0)
        client = cls(base_url=provider.base_url, api_key="sk-SECRET-anthropic", **options)
        return llmflow.instrument(client) if instrumented else client

    return make
