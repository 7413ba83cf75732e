"""The codecs read what the real SDKs send and return.

The openai and anthropic SDKs talk to an ``httpx2.MockTransport``; the handler
captures the JSON body each SDK put on the wire and answers with a realistic
response. The captured bodies must round-trip, and the SDK-parsed responses
must annotate like the raw JSON they were parsed from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import orjson
import pytest
from codec_samples import (
    ANTHROPIC_RESPONSES,
    CHAT_RESPONSES,
    PNG,
    RESPONSES_RESPONSES,
    WEATHER_SCHEMA,
)

from llmflow._types import LlmRequest
from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec, OpenAIResponsesCodec
from llmflow.codecs._codec import ProviderCodec


class Wire:
    """A mock transport that records request bodies and replies with a fixed JSON."""

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.requests: list[LlmRequest] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        headers = {k: v for k, v in request.headers.items() if k.startswith(("content-", "x-"))}
        self.requests.append(LlmRequest(headers=headers, content=orjson.loads(request.content)))
        return httpx2.Response(200, json=self.reply)

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def assert_wire_round_trip(codec: ProviderCodec, wire: Wire) -> None:
    assert wire.requests, "the SDK sent nothing"
    for request in wire.requests:
        assert codec.encode(codec.decode(request), request) == request


def assert_sdk_response_annotates_like_json(
    codec: ProviderCodec, parsed: Any, raw: dict[str, Any], check: Callable[[Any], None]
) -> None:
    annotation = codec.annotate_response(parsed)
    assert annotation == codec.annotate_response(raw)
    check(codec.decode_response(parsed))


def test_openai_chat_sdk_request_round_trips_and_its_response_decodes() -> None:
    openai = pytest.importorskip("openai")
    wire = Wire(CHAT_RESPONSES["tool_calls"])
    client = openai.OpenAI(api_key="sk-test", base_url="http://test/v1", http_client=wire.client())
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "developer", "content": "Use tools when needed."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "locate", "arguments": '{"image": 0}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "Paris"},
        ],
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA, "strict": True},
            }
        ],
        tool_choice="auto",
        temperature=0.1,
        max_completion_tokens=300,
        metadata={"run": "1"},
    )
    codec = OpenAIChatCodec()
    assert_wire_round_trip(codec, wire)
    annotated = codec.decode(wire.requests[0])
    assert annotated.messages[0].provider_role == "developer"
    assert annotated.max_tokens == 300

    def check(decoded: Any) -> None:
        assert decoded.finish_reason == "tool_calls"
        assert decoded.tool_calls[0].arguments == {"city": "Paris"}

    assert_sdk_response_annotates_like_json(codec, completion, CHAT_RESPONSES["tool_calls"], check)


def test_openai_responses_sdk_request_round_trips_and_its_response_decodes() -> None:
    openai = pytest.importorskip("openai")
    wire = Wire(RESPONSES_RESPONSES["text_with_reasoning"])
    client = openai.OpenAI(api_key="sk-test", base_url="http://test/v1", http_client=wire.client())
    response = client.responses.create(
        model="o4-mini",
        instructions="Be helpful.",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/x.png",
                        "detail": "auto",
                    },
                ],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        ],
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "parameters": WEATHER_SCHEMA,
                "strict": True,
            }
        ],
        reasoning={"effort": "low"},
        max_output_tokens=500,
    )
    client.responses.create(model="gpt-4.1-mini", input="Plain string input")
    codec = OpenAIResponsesCodec()
    assert_wire_round_trip(codec, wire)
    assert codec.decode(wire.requests[1]).messages[0].text == "Plain string input"

    def check(decoded: Any) -> None:
        assert decoded.usage.reasoning_tokens == 150
        assert decoded.text == "Paris is lovely."

    assert_sdk_response_annotates_like_json(
        codec, response, RESPONSES_RESPONSES["text_with_reasoning"], check
    )


def test_anthropic_sdk_request_round_trips_and_its_response_decodes() -> None:
    anthropic = pytest.importorskip("anthropic")
    wire = Wire(ANTHROPIC_RESPONSES["tool_use"])
    client = anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://test", http_client=wire.client()
    )
    message = client.messages.create(
        model="claude-opus-4-6",
        max_tokens=1024,
        system=[{"type": "text", "text": "Policy.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "Where is this?"},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_0", "name": "locate", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "Paris"}],
            },
        ],
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": WEATHER_SCHEMA}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
    )
    client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=10,
        system="Short.",
        messages=[{"role": "user", "content": "Hi"}],
    )
    codec = AnthropicMessagesCodec()
    assert_wire_round_trip(codec, wire)
    annotated = codec.decode(wire.requests[0])
    assert annotated.tool_choice is not None
    assert annotated.tool_choice.extras == {"disable_parallel_tool_use": True}

    def check(decoded: Any) -> None:
        assert decoded.finish_reason == "tool_calls"
        assert decoded.tool_calls[0].arguments == {"city": "Paris", "unit": "c"}

    assert_sdk_response_annotates_like_json(codec, message, ANTHROPIC_RESPONSES["tool_use"], check)
