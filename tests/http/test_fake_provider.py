"""``llmflow.testing.FakeProvider`` speaks the provider APIs to the real SDKs over loopback."""

from __future__ import annotations

import socket

import anthropic
import httpx2
import openai
import pytest

from llmflow.testing import Drop, ErrorReply, FakeProvider, RawReply, Reply, ToolCall


@pytest.fixture
def provider() -> FakeProvider:
    with FakeProvider() as server:
        yield server  # type: ignore[misc]


def test_binds_loopback_on_an_ephemeral_port_and_stops(provider: FakeProvider) -> None:
    assert provider.base_url.startswith("http://127.0.0.1:")
    port = provider.port
    assert port > 0
    provider.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_records_each_request_as_received(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="sk-test")
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    (request,) = provider.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json()["messages"] == [{"role": "user", "content": "hi"}]


def test_default_reply_echoes_the_last_user_message(provider: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="k")
    message = client.messages.create(
        model="claude", max_tokens=5, messages=[{"role": "user", "content": "ping"}]
    )
    assert message.content[0].text == "echo: ping"  # type: ignore[union-attr]


def test_scripted_tool_calls_and_usage_reach_the_openai_sdk_in_json_and_sse(
    provider: FakeProvider,
) -> None:
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k")
    reply = Reply(
        text=None,
        tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_1")],
        usage={"input_tokens": 20, "output_tokens": 7, "cached_tokens": 5, "reasoning_tokens": 3},
    )
    provider.script(reply, reply)
    done = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "w"}])
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == (  # type: ignore[union-attr]
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert done.usage.prompt_tokens_details.cached_tokens == 5  # type: ignore[union-attr]
    assert done.usage.completion_tokens_details.reasoning_tokens == 3  # type: ignore[union-attr]
    arguments = ""
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "w"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                arguments += delta.function.arguments or ""  # type: ignore[union-attr]
        usage = chunk.usage or usage
    assert arguments == '{"city":"Paris"}'
    assert usage is not None and usage.prompt_tokens == 20


def test_anthropic_stream_helper_assembles_the_scripted_message(provider: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="k")
    provider.script(Reply(text="one two three", tool_calls=[ToolCall("f", {"a": 1})]))
    with client.messages.stream(
        model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        assert "".join(stream.text_stream) == "one two three"
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[1].input == {"a": 1}  # type: ignore[union-attr]


def test_responses_stream_ends_with_the_completed_response(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k")
    provider.script(Reply(text="a b c", chunks=3))
    events = list(client.responses.create(model="m", input="x", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]  # type: ignore[union-attr]
    assert "".join(deltas) == "a b c" and len(deltas) == 3
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "a b c"  # type: ignore[union-attr]


def test_429_with_retry_after_is_retried_by_the_sdk(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k", max_retries=2)
    provider.script(ErrorReply(429, retry_after="0"), Reply(text="ok"))
    done = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert done.choices[0].message.content == "ok"
    attempts = [r.headers["x-stainless-retry-count"] for r in provider.requests]
    assert attempts == ["0", "1"]


def test_errors_use_each_providers_error_shape(provider: FakeProvider) -> None:
    provider.script(ErrorReply(500), ErrorReply(500, message="boom"))
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="e", input="x")
    with pytest.raises(anthropic.InternalServerError, match="boom"):
        anthropic.Anthropic(base_url=provider.base_url, api_key="k", max_retries=0).messages.create(
            model="c", max_tokens=1, messages=[{"role": "user", "content": "x"}]
        )


def test_dropped_connection_before_and_during_a_stream(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k", max_retries=0)
    provider.script(Drop(), Drop(after_events=2))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        list(stream)


def test_delay_makes_a_client_time_out(provider: FakeProvider) -> None:
    provider.script(Reply(delay=2.0))
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )


def test_raw_reply_is_sent_byte_for_byte(provider: FakeProvider) -> None:
    provider.script(RawReply(body=b"not json", headers={"content-type": "text/plain"}))
    response = httpx2.post(provider.base_url + "/v1/chat/completions", content=b"{}")
    assert (response.status_code, response.content) == (200, b"not json")


def test_unknown_path_is_404_and_script_rejects_other_types(provider: FakeProvider) -> None:
    assert httpx2.get(provider.base_url + "/v1/models").status_code == 404
    with pytest.raises(TypeError, match="replies"):
        provider.script("hello")  # type: ignore[arg-type]
