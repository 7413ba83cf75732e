"""Errors on the wire: SDK retries, error statuses, transport failures, guardrails (SPEC §11)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from _http_support import Factory, only_pair, pairs

import llmflow
from llmflow import guardrails, intercepts
from llmflow.http import ProviderHTTPError
from llmflow.testing import Drop, ErrorReply, FakeProvider, Reply, capture

MESSAGES = [{"role": "user", "content": "hi"}]


def chat(client: Any, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, **kwargs)


def test_sdk_retries_on_429_and_500_are_separate_attempts_with_retry_after(
    provider: FakeProvider, make_openai: Factory
) -> None:
    client = make_openai(max_retries=3)
    provider.script(ErrorReply(429, retry_after="0"), ErrorReply(500), Reply(text="finally"))
    with capture() as events:
        assert chat(client).choices[0].message.content == "finally"
    attempts = pairs(events)
    assert [end.metadata["http.attempt"] for _, end in attempts] == [0, 1, 2]
    assert [end.metadata["http.status_code"] for _, end in attempts] == [429, 500, 200]
    (_, rate_limited), (_, failed), _ = attempts
    assert rate_limited.metadata["http.retry_after"] == "0"
    assert rate_limited.metadata["provider.error_code"] == "rate_limit_exceeded"
    assert rate_limited.metadata["exception.type"] == "llmflow.http.ProviderHTTPError"
    assert rate_limited.metadata["http.error_body"]["error"]["type"] == "rate_limit_error"
    assert rate_limited.data is None  # a failed call has no response
    assert "http.retry_after" not in failed.metadata
    sent = [r.headers["x-stainless-retry-count"] for r in provider.requests]
    assert sent == ["0", "1", "2"]


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_an_unhandled_error_status_reaches_the_sdk_as_its_own_typed_error(
    asynchronous: bool, provider: FakeProvider, make_anthropic: Factory
) -> None:
    client = make_anthropic(asynchronous=asynchronous)
    provider.script(ErrorReply(529, message="overloaded now"))

    async def go() -> Any:
        return await client.messages.create(model="c", max_tokens=5, messages=MESSAGES)

    with capture() as events, pytest.raises(anthropic.APIStatusError) as info:
        if asynchronous:
            asyncio.run(go())
        else:
            client.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    assert info.value.status_code == 529
    assert "overloaded now" in info.value.message
    assert info.value.request_id == "req_fake_1"
    _, end = only_pair(events)
    assert end.metadata["http.status_code"] == 529
    assert end.metadata["provider.error_code"] == "overloaded_error"


def test_execution_intercepts_see_provider_http_error_and_may_retry(
    provider: FakeProvider, make_openai: Factory
) -> None:
    seen: list[tuple[int, str | None]] = []

    def retry_once(request: llmflow.LlmRequest, next_: Any) -> Any:
        try:
            return next_()
        except ProviderHTTPError as exc:
            seen.append((exc.status_code, exc.headers.get("retry-after")))
            assert b"rate_limit_error" in exc.body
            return next_()

    intercepts.register_llm_execution("retry-once", 0, retry_once)
    provider.script(ErrorReply(429, retry_after="1"), Reply(text="second try"))
    with capture() as events:
        assert chat(make_openai()).choices[0].message.content == "second try"
    assert seen == [(429, "1")]
    _, end = only_pair(events)  # one managed call, two sends inside it
    assert end.metadata["http.status_code"] == 200
    assert len(provider.requests) == 2


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_timeout_is_recorded_and_reaches_the_sdk_unchanged(
    asynchronous: bool, provider: FakeProvider, make_openai: Factory
) -> None:
    client = make_openai(asynchronous=asynchronous, timeout=0.2)
    provider.script(Reply(delay=1.0))

    async def go() -> Any:
        return await chat(client)

    with capture() as events, pytest.raises(openai.APITimeoutError) as info:
        asyncio.run(go()) if asynchronous else chat(client)
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)
    _, end = only_pair(events)
    assert end.metadata["exception.type"].startswith("httpx2.")
    assert "Timeout" in end.metadata["exception.type"]


def test_dropped_connection_before_the_response_is_recorded_and_retried_by_the_sdk(
    provider: FakeProvider, make_openai: Factory
) -> None:
    provider.script(Drop(), Reply(text="back"))
    with capture() as events:
        assert chat(make_openai(max_retries=1)).choices[0].message.content == "back"
    (_, dropped), (_, ok) = pairs(events)
    assert dropped.metadata["exception.type"] == "httpx2.RemoteProtocolError"
    assert ok.metadata["http.attempt"] == 1


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_connection_dropped_mid_stream_ends_the_call_once_with_the_error(
    asynchronous: bool, provider: FakeProvider, make_openai: Factory
) -> None:
    client = make_openai(asynchronous=asynchronous)
    provider.script(Drop(after_events=3))
    got: list[Any] = []

    async def go() -> None:
        async for chunk in await chat(client, stream=True):
            got.append(chunk)

    with capture() as events, pytest.raises(openai.APIConnectionError):
        if asynchronous:
            asyncio.run(go())
        else:
            got.extend(chat(client, stream=True))
    assert len(got) == 3
    _, end = only_pair(events)
    assert end.metadata["exception.type"] == "httpx2.RemoteProtocolError"


def test_a_connect_error_is_recorded_and_reraised_unchanged() -> None:
    with llmflow.testing.FakeProvider() as server:
        port = server.port
    client = llmflow.instrument(
        openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    )
    with capture() as events, pytest.raises(openai.APIConnectionError) as info:
        chat(client)
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    _, end = only_pair(events)
    assert end.metadata["exception.type"] == "httpx2.ConnectError"


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_guardrail_rejection_is_the_sdks_bad_request_error_never_retried_recorded_once(
    sdk: str, stream: bool, provider: FakeProvider, make_openai: Factory, make_anthropic: Factory
) -> None:
    guardrails.register_llm_conditional_execution(
        "no-secrets",
        0,
        lambda request: (
            "mentions a password" if "password" in str(request.content.get("messages")) else None
        ),
    )
    messages = [{"role": "user", "content": "my password is hunter2"}]
    with capture() as events:
        if sdk == "openai":
            with pytest.raises(openai.BadRequestError) as oinfo:
                make_openai(max_retries=3).chat.completions.create(
                    model="m", messages=messages, stream=stream
                )
            message = oinfo.value.message
            assert oinfo.value.code == "llmflow_guardrail_rejected"
        else:
            with pytest.raises(anthropic.BadRequestError) as ainfo:
                make_anthropic(max_retries=3).messages.create(
                    model="m", max_tokens=5, messages=messages, stream=stream
                )
            message = ainfo.value.message
    assert "no-secrets" in message and "mentions a password" in message
    assert provider.requests == []  # never sent, never retried
    assert pairs(events) == []
    rejections = [e for e in events if e.name == "llmflow.guardrail_rejected"]
    assert len(rejections) == 1
    assert rejections[0].data["guardrail"] == "no-secrets"
