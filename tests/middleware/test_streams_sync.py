"""The `.stream` variants serve llm_stream_call_execute_sync too (the sync transport's SSE path)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _mw_support import FakeTime, HTTPFailure, llm_ends, llm_request, named

import llmflow
from llmflow import LlmRequest, intercepts, testing
from llmflow.middleware import CircuitBreaker, CircuitOpenError, fallback, retry, timeout


def consume(func: Any) -> list[Any]:
    stream = llmflow.llm_stream_call_execute_sync(
        "chat", llm_request("primary"), func, lambda chunk: None, lambda: None
    )
    return list(stream)


def test_retry_stream_retries_a_sync_stream_that_fails_before_its_first_chunk() -> None:
    time = FakeTime()
    policy = retry(sleep=time.sleep, clock=time.clock, random=lambda: 0.5)
    intercepts.register_llm_stream_execution("retry", 0, policy.stream)
    opened = 0

    def provider(request: LlmRequest) -> Iterator[Any]:
        nonlocal opened
        opened += 1
        if opened < 3:
            raise HTTPFailure(503)
        yield {"delta": "a"}
        yield {"delta": "b"}

    with testing.capture() as events:
        assert consume(provider) == [{"delta": "a"}, {"delta": "b"}]
    assert opened == 3
    assert time.sleeps == [0.25, 0.5]
    assert len(llm_ends(events)) == 1


def test_retry_stream_never_retries_a_sync_stream_after_its_first_chunk() -> None:
    time = FakeTime()
    intercepts.register_llm_stream_execution("retry", 0, retry(sleep=time.sleep).stream)
    opened = 0

    def provider(request: LlmRequest) -> Iterator[Any]:
        nonlocal opened
        opened += 1
        yield {"delta": "a"}
        raise ConnectionResetError("dropped")

    with pytest.raises(ConnectionResetError):
        consume(provider)
    assert opened == 1


def test_fallback_stream_moves_a_sync_stream_to_the_next_model() -> None:
    intercepts.register_llm_stream_execution("fallback", 0, fallback(["backup"]).stream)

    def provider(request: LlmRequest) -> Iterator[Any]:
        if request.content["model"] == "primary":
            raise HTTPFailure(429)
        yield {"model": request.content["model"]}

    with testing.capture() as events:
        assert consume(provider) == [{"model": "backup"}]
    assert named(events, "llmflow.fallback")[0].data["to"] == "backup"


def test_breaker_stream_opens_on_sync_streams_and_a_closed_stream_is_no_verdict() -> None:
    time = FakeTime()
    breaker = CircuitBreaker(failure_threshold=1, recovery_time=5, clock=time.clock)
    intercepts.register_llm_stream_execution("breaker", 0, breaker.stream)

    def failing(request: LlmRequest) -> Iterator[Any]:
        raise HTTPFailure(500)
        yield {}

    with pytest.raises(HTTPFailure):
        consume(failing)
    with pytest.raises(CircuitOpenError):
        consume(failing)
    time.now += 5

    def slow_start(request: LlmRequest) -> Iterator[Any]:
        yield {"delta": "x"}

    stream = llmflow.llm_stream_call_execute_sync(
        "chat", llm_request("primary"), slow_start, lambda chunk: None, lambda: None
    )
    stream.close()  # left before the first chunk: the probe slot is freed, no verdict
    assert consume(slow_start) == [{"delta": "x"}]
    assert breaker.state("chat/primary") == "closed"


def test_timeout_stream_records_a_late_first_chunk_of_a_sync_stream() -> None:
    time = FakeTime()
    intercepts.register_llm_stream_execution("timeout", 0, timeout(1, clock=time.clock).stream)

    def late(request: LlmRequest) -> Iterator[Any]:
        time.now += 3
        yield {"delta": "late"}

    with testing.capture() as events:
        assert consume(late) == [{"delta": "late"}]
    assert named(events, "llmflow.timeout_overrun")[0].data == {"seconds": 1.0, "elapsed": 3.0}


def test_the_sync_openai_sdk_streams_through_retry_after_a_503_and_a_drop() -> None:
    import openai

    from llmflow.testing import Drop, ErrorReply, FakeProvider, Reply

    time = FakeTime()
    intercepts.register_llm_stream_execution(
        "retry", 0, retry(sleep=time.sleep, clock=time.clock).stream
    )
    with FakeProvider() as provider:
        provider.script(ErrorReply(503), Drop(), Reply(text="one two three"))
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="k", max_retries=0)
        )
        with testing.capture() as events:
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
            )
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices
            )
        assert len(provider.requests) == 3
    assert text == "one two three"
    assert [m.data["reason"] for m in named(events, "llmflow.retry")] == [
        "http 503",
        "RemoteProtocolError",
    ]
    assert len(llm_ends(events)) == 1
