"""SPEC §6/§9: malformed payloads raise CodecError naming the offending field."""

from __future__ import annotations

from typing import Any

import pytest

from llmflow._errors import FlowError
from llmflow._types import LlmRequest
from llmflow.codecs import (
    AnthropicMessagesCodec,
    CodecError,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)
from llmflow.codecs._codec import ProviderCodec

CHAT = OpenAIChatCodec()
RESPONSES = OpenAIResponsesCodec()
ANTHROPIC = AnthropicMessagesCodec()

BAD_REQUESTS: list[tuple[ProviderCodec, Any, str]] = [
    (CHAT, {"model": "m"}, "messages"),
    (CHAT, {"messages": {"role": "user"}}, "messages"),
    (CHAT, {"messages": ["hi"]}, "messages[0]"),
    (CHAT, {"messages": [{"role": "user", "content": "a"}, {"role": "robot"}]}, "messages[1].role"),
    (CHAT, {"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    (
        CHAT,
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
    ),
    (
        CHAT,
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}
            ]
        },
        "messages[0].content[0].image_url.url",
    ),
    (CHAT, {"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (
        CHAT,
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                }
            ]
        },
        "messages[0].tool_calls[0].function.arguments",
    ),
    (CHAT, {"messages": [], "temperature": "hot"}, "temperature"),
    (CHAT, {"messages": [], "max_completion_tokens": True}, "max_completion_tokens"),
    (CHAT, {"messages": [], "stop": ["a", 1]}, "stop[1]"),
    (
        CHAT,
        {"messages": [], "tools": [{"type": "function", "function": {"name": 1}}]},
        "tools[0].function.name",
    ),
    (CHAT, "not a body", ""),
    (RESPONSES, {"input": 5}, "input"),
    (RESPONSES, {"input": [{"role": "moderator", "content": "x"}]}, "input[0].role"),
    (
        RESPONSES,
        {"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
        "input[0].call_id",
    ),
    (
        RESPONSES,
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": None}]}]},
        "input[0].content[0].text",
    ),
    (RESPONSES, {"input": "x", "instructions": ["a"]}, "instructions"),
    (RESPONSES, {"input": "x", "max_output_tokens": 1.5}, "max_output_tokens"),
    (ANTHROPIC, {"max_tokens": 5}, "messages"),
    (ANTHROPIC, {"messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
    (ANTHROPIC, {"messages": [], "system": [{"type": "image"}]}, "system[0]"),
    (
        ANTHROPIC,
        {"messages": [{"role": "user", "content": [{"type": "image", "source": 3}]}]},
        "messages[0].content[0].source",
    ),
    (
        ANTHROPIC,
        {
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}],
                }
            ]
        },
        "messages[0].content[0].input",
    ),
    (
        ANTHROPIC,
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t", "is_error": "no"}],
                }
            ]
        },
        "messages[0].content[0].is_error",
    ),
    (ANTHROPIC, {"messages": [], "stop_sequences": "END"}, "stop_sequences"),
]


@pytest.mark.parametrize(("codec", "body", "field"), BAD_REQUESTS)
def test_malformed_request_raises_codec_error_naming_the_field(
    codec: ProviderCodec, body: Any, field: str
) -> None:
    for call in (codec.decode, codec.annotate_request):
        with pytest.raises(CodecError) as caught:
            call(body)
        assert (caught.value.field or "") == field
        assert isinstance(caught.value, FlowError)


def test_anthropic_stop_sequences_as_a_string_is_rejected_but_a_list_is_accepted() -> None:
    assert ANTHROPIC.decode({"messages": [], "stop_sequences": ["END"]}).stop == ["END"]


BAD_RESPONSES: list[tuple[ProviderCodec, Any, str]] = [
    (CHAT, {"choices": [{"index": 0}]}, "choices[0].message"),
    (CHAT, {"choices": [{"message": {"content": ["x"]}}]}, "choices[0].message.content"),
    (CHAT, {"choices": {}}, "choices"),
    (CHAT, {"id": 5, "choices": []}, "id"),
    (
        CHAT,
        {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}}]},
        "choices[0].message.tool_calls[0].function.name",
    ),
    (CHAT, {"choices": [], "usage": {"prompt_tokens": "10"}}, "usage.prompt_tokens"),
    (
        CHAT,
        {"choices": [], "usage": {"prompt_tokens_details": {"cached_tokens": 1.0}}},
        "usage.prompt_tokens_details.cached_tokens",
    ),
    (CHAT, [1, 2], ""),
    (RESPONSES, {"output": [{"type": "message", "content": "hi"}]}, "output[0].content"),
    (RESPONSES, {"output": [{"type": "function_call", "name": "f"}]}, "output[0].arguments"),
    (
        RESPONSES,
        {"output": [], "usage": {"output_tokens_details": {"reasoning_tokens": "x"}}},
        "usage.output_tokens_details.reasoning_tokens",
    ),
    (RESPONSES, {"status": 1}, "status"),
    (
        ANTHROPIC,
        {"content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]},
        "content[0].input",
    ),
    (ANTHROPIC, {"content": [{"type": "text"}]}, "content[0].text"),
    (
        ANTHROPIC,
        {"content": [], "usage": {"cache_read_input_tokens": "9"}},
        "usage.cache_read_input_tokens",
    ),
    (ANTHROPIC, {"content": [], "stop_reason": 3}, "stop_reason"),
]


@pytest.mark.parametrize(("codec", "response", "field"), BAD_RESPONSES)
def test_malformed_response_raises_codec_error_naming_the_field(
    codec: ProviderCodec, response: Any, field: str
) -> None:
    for call in (codec.decode_response, codec.annotate_response):
        with pytest.raises(CodecError) as caught:
            call(response)
        assert (caught.value.field or "") == field


def test_encode_with_a_malformed_original_raises_codec_error() -> None:
    annotated = CHAT.decode({"messages": []})
    with pytest.raises(CodecError) as caught:
        CHAT.encode(annotated, LlmRequest(content={"messages": [{"role": 1}]}))
    assert caught.value.field == "messages[0].role"
