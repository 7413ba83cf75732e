"""SPEC §6: response codecs decode id, model, output, tool calls, finish reason and usage."""

from __future__ import annotations

from typing import Any

import pytest
from codec_samples import ANTHROPIC_RESPONSES, CHAT_RESPONSES, RESPONSES_RESPONSES
from hypothesis import given, settings
from hypothesis import strategies as st

from llmflow.codecs import (
    AnnotatedLlmResponse,
    AnthropicMessagesCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
    RequestCodec,
    ResponseCodec,
    StreamAccumulator,
)
from llmflow.codecs._codec import ProviderCodec

CHAT = OpenAIChatCodec()
RESPONSES = OpenAIResponsesCodec()
ANTHROPIC = AnthropicMessagesCodec()
ALL = [
    *((CHAT, r) for r in CHAT_RESPONSES.values()),
    *((RESPONSES, r) for r in RESPONSES_RESPONSES.values()),
    *((ANTHROPIC, r) for r in ANTHROPIC_RESPONSES.values()),
]


@pytest.mark.parametrize(("codec", "response"), ALL)
def test_annotate_response_equals_the_json_dump_of_decode_response(
    codec: ProviderCodec, response: dict[str, Any]
) -> None:
    assert codec.annotate_response(response) == codec.decode_response(response).model_dump(
        mode="json", exclude_none=True
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ALL),
    st.sampled_from(["id", "model", "usage", "choices", "output", "content", "status"]),
    st.booleans(),
)
def test_annotate_response_equals_decode_response_dump_when_fields_are_missing(
    case: tuple[ProviderCodec, dict[str, Any]], dropped: str, empty_usage: bool
) -> None:
    codec, response = case
    variant = {k: v for k, v in response.items() if k != dropped}
    if empty_usage and "usage" in variant:
        variant["usage"] = {}
    assert codec.annotate_response(variant) == codec.decode_response(variant).model_dump(
        mode="json", exclude_none=True
    )


def test_codecs_implement_the_protocols_and_name_their_data_schema() -> None:
    names = {
        CHAT: ("openai/chat-completions", "1"),
        RESPONSES: ("openai/responses", "1"),
        ANTHROPIC: ("anthropic/messages", "1"),
    }
    for codec, (name, version) in names.items():
        assert isinstance(codec, RequestCodec)
        assert isinstance(codec, ResponseCodec)
        assert isinstance(codec.stream_accumulator(), StreamAccumulator)
        assert codec.data_schema.to_dict() == {"name": name, "version": version}


# -- Chat Completions ---------------------------------------------------------


def test_chat_response_decodes_text_and_cached_and_reasoning_usage() -> None:
    decoded = CHAT.decode_response(CHAT_RESPONSES["text_with_cache_and_reasoning"])
    assert decoded.id == "chatcmpl-AbC123"
    assert decoded.model == "o4-mini-2025-04-16"
    assert decoded.text.startswith("Paris is the capital")
    assert decoded.finish_reason == "stop"
    assert decoded.raw_finish_reason == "stop"
    assert decoded.usage is not None
    assert decoded.usage.model_dump(exclude_none=True) == {
        "input_tokens": 1200,
        "output_tokens": 300,
        "total_tokens": 1500,
        "cached_tokens": 1024,
        "reasoning_tokens": 128,
    }


def test_chat_response_tool_calls_are_parsed_and_unparseable_arguments_kept_raw() -> None:
    decoded = CHAT.decode_response(CHAT_RESPONSES["tool_calls"])
    assert decoded.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments, c.raw_arguments) for c in decoded.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}, None),
        ("call_2", "get_weather", None, '{"city":"Ro'),
    ]
    assert decoded.messages[0].content == []


@pytest.mark.parametrize(
    ("name", "finish", "raw"),
    [
        ("length", "length", "length"),
        ("content_filter", "content_filter", "content_filter"),
        ("refusal", "refusal", "stop"),
    ],
)
def test_chat_finish_reason_is_normalized_and_the_raw_value_kept(
    name: str, finish: str, raw: str
) -> None:
    decoded = CHAT.decode_response(CHAT_RESPONSES[name])
    assert (decoded.finish_reason, decoded.raw_finish_reason) == (finish, raw)


def test_chat_refusal_is_a_refusal_part() -> None:
    annotation = CHAT.annotate_response(CHAT_RESPONSES["refusal"])
    assert annotation["messages"] == [
        {"role": "assistant", "content": [{"type": "refusal", "text": "I can't."}]}
    ]


def test_chat_unknown_finish_reason_is_kept_raw_only() -> None:
    response = {**CHAT_RESPONSES["length"]}
    response["choices"] = [{**response["choices"][0], "finish_reason": "brand_new"}]
    decoded = CHAT.decode_response(response)
    assert (decoded.finish_reason, decoded.raw_finish_reason) == (None, "brand_new")


# -- Responses ------------------------------------------------------------------


def test_responses_response_decodes_reasoning_text_and_usage_details() -> None:
    decoded = RESPONSES.decode_response(RESPONSES_RESPONSES["text_with_reasoning"])
    annotation = decoded.model_dump(mode="json", exclude_none=True)
    assert annotation["messages"] == [
        {
            "role": "assistant",
            "content": [
                {"type": "reasoning", "text": "Thinking about Paris."},
                {"type": "text", "text": "Paris is lovely."},
            ],
        }
    ]
    assert (decoded.finish_reason, decoded.raw_finish_reason) == ("stop", "completed")
    assert decoded.usage is not None
    assert decoded.usage.cached_tokens == 512
    assert decoded.usage.reasoning_tokens == 150
    assert decoded.usage.total_tokens == 1100


def test_responses_function_call_is_a_tool_call_and_finishes_with_tool_calls() -> None:
    decoded = RESPONSES.decode_response(RESPONSES_RESPONSES["function_call"])
    assert decoded.finish_reason == "tool_calls"
    assert decoded.tool_calls[0].model_dump(exclude_none=True) == {
        "type": "tool_call",
        "id": "call_p1",
        "name": "get_weather",
        "arguments": {"city": "Paris"},
    }


@pytest.mark.parametrize(
    ("name", "finish", "raw"),
    [
        ("incomplete_length", "length", "max_output_tokens"),
        ("incomplete_filter", "content_filter", "content_filter"),
        ("refusal", "refusal", "completed"),
    ],
)
def test_responses_finish_reason_is_normalized_and_the_raw_value_kept(
    name: str, finish: str, raw: str
) -> None:
    decoded = RESPONSES.decode_response(RESPONSES_RESPONSES[name])
    assert (decoded.finish_reason, decoded.raw_finish_reason) == (finish, raw)


def test_responses_failed_status_has_no_normalized_finish_reason() -> None:
    response = {**RESPONSES_RESPONSES["incomplete_filter"], "status": "failed"}
    decoded = RESPONSES.decode_response(response)
    assert (decoded.finish_reason, decoded.raw_finish_reason) == (None, "failed")


# -- Anthropic ------------------------------------------------------------------


def test_anthropic_usage_counts_cache_reads_and_writes_as_input() -> None:
    decoded = ANTHROPIC.decode_response(ANTHROPIC_RESPONSES["end_turn_with_cache"])
    assert decoded.usage is not None
    assert decoded.usage.model_dump(exclude_none=True) == {
        "input_tokens": 2325,
        "output_tokens": 12,
        "total_tokens": 2337,
        "cached_tokens": 2000,
        "cache_creation_tokens": 300,
    }
    assert decoded.messages[0].content[0].type == "reasoning"
    assert decoded.text == "Hello there!"


def test_anthropic_tool_use_is_a_tool_call_with_its_input_as_arguments() -> None:
    decoded = ANTHROPIC.decode_response(ANTHROPIC_RESPONSES["tool_use"])
    assert decoded.finish_reason == "tool_calls"
    assert decoded.raw_finish_reason == "tool_use"
    assert decoded.tool_calls[0].arguments == {"city": "Paris", "unit": "c"}
    assert decoded.tool_calls[0].id == "toolu_01"


@pytest.mark.parametrize(
    ("name", "finish"),
    [("max_tokens", "length"), ("refusal", "refusal"), ("stop_sequence", "stop")],
)
def test_anthropic_stop_reason_is_normalized_and_the_raw_value_kept(name: str, finish: str) -> None:
    decoded = ANTHROPIC.decode_response(ANTHROPIC_RESPONSES[name])
    assert decoded.finish_reason == finish
    assert decoded.raw_finish_reason == name


def test_anthropic_pause_turn_has_no_normalized_finish_reason() -> None:
    decoded = ANTHROPIC.decode_response(
        {**ANTHROPIC_RESPONSES["tool_use"], "stop_reason": "pause_turn"}
    )
    assert (decoded.finish_reason, decoded.raw_finish_reason) == (None, "pause_turn")


def test_annotated_models_have_json_schemas() -> None:
    from llmflow.codecs import AnnotatedLlmRequest

    request_schema = AnnotatedLlmRequest.model_json_schema()
    response_schema = AnnotatedLlmResponse.model_json_schema()
    assert request_schema["additionalProperties"] is False
    assert "messages" in request_schema["properties"]
    assert "finish_reason" in response_schema["properties"]


@st.composite
def chat_responses(draw: st.DrawFn) -> dict[str, Any]:
    from codec_strategies import argument_strings, ids, names, texts

    message: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | texts)}
    if draw(st.booleans()):
        message["refusal"] = draw(st.none() | texts)
    calls = draw(
        st.lists(
            st.builds(
                lambda i, n, a: {
                    "id": i,
                    "type": "function",
                    "function": {"name": n, "arguments": a},
                },
                ids,
                names,
                argument_strings(),
            ),
            max_size=3,
        )
    )
    if calls:
        message["tool_calls"] = calls
    finish = draw(
        st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter", "odd"])
    )
    usage = draw(
        st.none()
        | st.fixed_dictionaries(
            {"prompt_tokens": st.integers(0, 9999), "completion_tokens": st.integers(0, 9999)},
            optional={
                "prompt_tokens_details": st.fixed_dictionaries(
                    {}, optional={"cached_tokens": st.none() | st.integers(0, 99)}
                ),
                "completion_tokens_details": st.fixed_dictionaries(
                    {}, optional={"reasoning_tokens": st.integers(0, 99)}
                ),
            },
        )
    )
    return {
        "id": "chatcmpl-x",
        "model": draw(st.none() | st.just("gpt-4o")),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
    }


@settings(max_examples=300, deadline=None)
@given(chat_responses())
def test_annotate_response_equals_decode_response_dump_for_generated_chat_responses(
    response: dict[str, Any],
) -> None:
    annotation = CHAT.annotate_response(response)
    assert annotation == CHAT.decode_response(response).model_dump(mode="json", exclude_none=True)
    calls = response["choices"][0]["message"].get("tool_calls", [])
    assert [c["id"] for c in annotation["tool_calls"]] == [c["id"] for c in calls]
