"""``llmflow.instrument`` and the transports' contracts at their edges."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from _http_support import Factory, pairs

import llmflow
from llmflow.http import AsyncTransport, ProviderHTTPError, Transport
from llmflow.testing import ErrorReply, FakeProvider, Reply, capture


def test_instrument_rejects_what_it_cannot_instrument_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match="client: expected an openai/anthropic SDK client"):
        llmflow.instrument(object())
    with pytest.raises(TypeError, match=r"inner: expected an httpx2\.BaseTransport"):
        Transport("http://x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"inner: expected an httpx2\.AsyncBaseTransport"):
        AsyncTransport(httpx2.HTTPTransport())  # type: ignore[arg-type]


def test_instrument_returns_the_same_sdk_class_and_leaves_the_original_unrecorded(
    provider: FakeProvider,
) -> None:
    original = anthropic.AsyncAnthropic(base_url=provider.base_url, api_key="k", max_retries=5)
    recorded = llmflow.instrument(original)
    assert type(recorded) is anthropic.AsyncAnthropic and recorded is not original
    assert recorded.max_retries == 5 and recorded.base_url == original.base_url

    async def both() -> None:
        for client in (original, recorded):
            await client.messages.create(
                model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )

    with capture() as events:
        asyncio.run(both())
    assert len(pairs(events)) == 1  # nothing patched: the original records nothing
    assert len(provider.requests) == 2


def test_provider_http_error_carries_status_headers_body_and_response() -> None:
    response = httpx2.Response(503, headers={"retry-after": "2"}, content=b'{"error": {}}')
    error = ProviderHTTPError(503, response.headers, b'{"error": {"message": "busy"}}', response)
    assert isinstance(error, llmflow.FlowError)
    assert (error.status_code, error.headers["retry-after"], error.response) == (
        503,
        "2",
        response,
    )
    assert str(error) == "HTTP 503 from the provider: busy"
    assert ProviderHTTPError.__module__ == "llmflow.http"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_429_on_a_stream_request_is_one_failed_attempt_then_the_retried_stream(
    asynchronous: bool, provider: FakeProvider, make_openai: Factory
) -> None:
    client = make_openai(asynchronous=asynchronous, max_retries=1)
    provider.script(ErrorReply(429, retry_after="0.01"), Reply(text="streamed after all"))
    kwargs: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stream": True,
    }

    async def go() -> str:
        return "".join(
            [
                c.choices[0].delta.content or ""
                async for c in await client.chat.completions.create(**kwargs)
            ]
        )

    with capture() as events:
        if asynchronous:
            text = asyncio.run(go())
        else:
            text = "".join(
                c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs)
            )
    assert text == "streamed after all"
    (_, failed), (_, ok) = pairs(events)
    assert (
        failed.metadata["http.status_code"] == 429 and failed.metadata["http.retry_after"] == "0.01"
    )
    assert "streaming" in failed.attributes
    assert (ok.metadata["http.attempt"], ok.metadata["http.status_code"]) == (1, 200)


def test_async_guardrail_rejection_is_the_async_sdks_bad_request_error(
    provider: FakeProvider, make_anthropic: Factory
) -> None:
    async def deny(request: llmflow.LlmRequest) -> str:
        return "closed for maintenance"

    llmflow.guardrails.register_llm_conditional_execution("maintenance", 0, deny)
    client = make_anthropic(asynchronous=True, max_retries=2)

    async def go() -> None:
        await client.messages.create(
            model="c", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )

    with capture() as events, pytest.raises(anthropic.BadRequestError, match="maintenance"):
        asyncio.run(go())
    assert provider.requests == []
    assert [e.name for e in events if e.kind == "mark"] == ["llmflow.guardrail_rejected"]


def test_an_execution_intercept_answering_itself_reaches_the_sdk_as_a_200(
    provider: FakeProvider, make_openai: Factory
) -> None:
    cached = {
        "id": "chatcmpl-cache",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "from cache"},
                "finish_reason": "stop",
            }
        ],
    }
    llmflow.intercepts.register_llm_execution("cache", 0, lambda request, call_next: cached)
    reply = make_openai().chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert isinstance(reply, openai.types.chat.ChatCompletion)
    assert reply.choices[0].message.content == "from cache"
    assert provider.requests == []


def test_llmflow_http_loads_on_first_attribute_access_in_a_fresh_process() -> None:
    import subprocess
    import sys

    code = (
        "import sys, llmflow; assert 'llmflow.http' not in sys.modules; "
        "print(llmflow.http.Transport.__name__, llmflow.instrument.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.split() == ["Transport", "instrument"], result.stderr
