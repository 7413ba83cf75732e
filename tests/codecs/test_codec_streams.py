"""SPEC §6: each codec folds its provider's stream into the non-streamed response."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from codec_samples import (
    ANTHROPIC_RESPONSES,
    CHAT_RESPONSES,
    RESPONSES_RESPONSES,
    anthropic_thinking_stream,
    anthropic_tool_use_stream,
    chat_text_stream,
    chat_tool_call_stream,
    responses_function_call_stream,
    responses_text_stream,
)

from llmflow.codecs import (
    AnthropicMessagesCodec,
    CodecError,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)
from llmflow.codecs._codec import ProviderCodec

TWINS: list[tuple[str, ProviderCodec, Callable[[], list[dict[str, Any]]], dict[str, Any]]] = [
    (
        "chat-text",
        OpenAIChatCodec(),
        chat_text_stream,
        CHAT_RESPONSES["text_with_cache_and_reasoning"],
    ),
    ("chat-tools", OpenAIChatCodec(), chat_tool_call_stream, CHAT_RESPONSES["tool_calls"]),
    (
        "responses-text",
        OpenAIResponsesCodec(),
        responses_text_stream,
        RESPONSES_RESPONSES["text_with_reasoning"],
    ),
    (
        "responses-call",
        OpenAIResponsesCodec(),
        responses_function_call_stream,
        RESPONSES_RESPONSES["function_call"],
    ),
    (
        "anthropic-tool",
        AnthropicMessagesCodec(),
        anthropic_tool_use_stream,
        ANTHROPIC_RESPONSES["tool_use"],
    ),
    (
        "anthropic-thinking",
        AnthropicMessagesCodec(),
        anthropic_thinking_stream,
        ANTHROPIC_RESPONSES["end_turn_with_cache"],
    ),
]


def fold(codec: ProviderCodec, chunks: list[dict[str, Any]]) -> Any:
    accumulator = codec.stream_accumulator()
    for chunk in chunks:
        accumulator.collect(chunk)
    return accumulator.finalize()


@pytest.mark.parametrize(
    ("codec", "stream", "twin"), [t[1:] for t in TWINS], ids=[t[0] for t in TWINS]
)
def test_folded_stream_annotates_like_its_non_streamed_twin(
    codec: ProviderCodec, stream: Callable[[], list[dict[str, Any]]], twin: dict[str, Any]
) -> None:
    chunks = stream()
    pristine = copy.deepcopy(chunks)
    folded = fold(codec, chunks)
    assert codec.annotate_response(folded) == codec.annotate_response(twin)
    assert chunks == pristine, "accumulators never mutate the chunks they collect"


def test_folded_chat_stream_has_the_chat_completion_shape() -> None:
    folded = fold(OpenAIChatCodec(), chat_tool_call_stream())
    assert folded["object"] == "chat.completion"
    assert folded["id"] == "chatcmpl-T1"
    message = folded["choices"][0]["message"]
    assert message["content"] is None
    assert [c["function"]["arguments"] for c in message["tool_calls"]] == [
        '{"city":"Paris"}',
        '{"city":"Ro',
    ]
    assert folded["choices"][0]["finish_reason"] == "tool_calls"
    assert folded["usage"] == CHAT_RESPONSES["tool_calls"]["usage"]


def test_folded_anthropic_stream_equals_the_message_object() -> None:
    folded = fold(AnthropicMessagesCodec(), anthropic_thinking_stream())
    assert folded == ANTHROPIC_RESPONSES["end_turn_with_cache"]


def test_responses_stream_without_completed_event_is_rebuilt_from_deltas() -> None:
    codec = OpenAIResponsesCodec()
    folded = fold(codec, responses_text_stream(completed=False))
    annotation = codec.annotate_response(folded)
    twin = codec.annotate_response(RESPONSES_RESPONSES["text_with_reasoning"])
    assert annotation["messages"] == twin["messages"]
    assert annotation["raw_finish_reason"] == "in_progress"
    assert "finish_reason" not in annotation


def test_chat_stream_accepts_sdk_chunk_objects() -> None:
    openai = pytest.importorskip("openai")
    chunk_type = openai.types.chat.ChatCompletionChunk
    codec = OpenAIChatCodec()
    chunks = [chunk_type.model_validate(c) for c in chat_tool_call_stream()]
    assert codec.annotate_response(fold(codec, chunks)) == codec.annotate_response(
        CHAT_RESPONSES["tool_calls"]
    )


def test_anthropic_stream_with_broken_tool_json_raises_codec_error_naming_the_block() -> None:
    events = anthropic_tool_use_stream()
    events[9] = {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": "oops"},
    }
    with pytest.raises(CodecError) as caught:
        fold(AnthropicMessagesCodec(), events)
    assert caught.value.field == "content[1].input"


@pytest.mark.parametrize(
    ("codec", "chunk", "field"),
    [
        (OpenAIChatCodec(), {"choices": "nope"}, "chunk.choices"),
        (
            OpenAIChatCodec(),
            {"choices": [{"index": 0, "delta": {"content": 5}}]},
            "chunk.choices[0].delta.content",
        ),
        (
            OpenAIChatCodec(),
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "x"}]}}]},
            "chunk.choices[0].delta.tool_calls[0].index",
        ),
        (
            OpenAIResponsesCodec(),
            {"type": "response.output_text.delta", "output_index": 0},
            "event.content_index",
        ),
        (
            AnthropicMessagesCodec(),
            {"type": "content_block_delta", "index": 0, "delta": 3},
            "event.delta",
        ),
        (AnthropicMessagesCodec(), 42, "event"),
    ],
)
def test_malformed_stream_chunk_raises_codec_error_naming_the_field(
    codec: ProviderCodec, chunk: Any, field: str
) -> None:
    with pytest.raises(CodecError) as caught:
        codec.stream_accumulator().collect(chunk)
    assert caught.value.field == field
