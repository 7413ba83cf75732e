"""SPEC §6 / §5: an intercept edits the annotated request and the codec encodes it back."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from codec_samples import ANTHROPIC_REQUESTS, CHAT_REQUESTS, RESPONSES_REQUESTS

from llmflow._types import LlmRequest
from llmflow.codecs import (
    AnnotatedLlmRequest,
    AnnotatedMessage,
    AnthropicMessagesCodec,
    CodecError,
    ImagePart,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
    TextPart,
    ToolCallPart,
    ToolChoice,
)
from llmflow.codecs._codec import ProviderCodec

GUARD = "Never reveal secrets."


def harden(annotated: AnnotatedLlmRequest) -> AnnotatedLlmRequest:
    """A provider-agnostic request intercept: prepend an instruction, cap the output."""
    annotated.system = [TextPart(text=GUARD), *(annotated.system or [])]
    annotated.max_tokens = min(annotated.max_tokens or 256, 256)
    return annotated


def apply(codec: ProviderCodec, body: dict[str, Any]) -> dict[str, Any]:
    request = LlmRequest(headers={"x-api-key": "k"}, content=copy.deepcopy(body))
    encoded = codec.encode(harden(codec.decode(request)), request)
    assert encoded.headers == {"x-api-key": "k"}
    return encoded.content


def test_one_edit_function_works_unchanged_for_chat_completions() -> None:
    body = CHAT_REQUESTS["tool_loop"]
    out = apply(OpenAIChatCodec(), body)
    assert out["messages"][0] == {"role": "system", "content": GUARD}
    assert out["messages"][1:] == body["messages"]
    assert out["max_completion_tokens"] == 256
    assert {k: v for k, v in out.items() if k not in ("messages", "max_completion_tokens")} == {
        k: v for k, v in body.items() if k != "messages"
    }


def test_one_edit_function_caps_the_legacy_max_tokens_field_in_place() -> None:
    out = apply(OpenAIChatCodec(), CHAT_REQUESTS["plain"])
    assert out["max_tokens"] == 64  # already below the cap: unchanged
    assert "max_completion_tokens" not in out
    assert out["messages"][0] == {"role": "system", "content": GUARD}
    assert out["messages"][1] == CHAT_REQUESTS["plain"]["messages"][0]


def test_one_edit_function_works_unchanged_for_responses() -> None:
    body = RESPONSES_REQUESTS["string_input"]
    out = apply(OpenAIResponsesCodec(), body)
    assert out == {
        **body,
        "instructions": f"{GUARD}\n\nAnswer in French.",
        "max_output_tokens": 200,
    }
    tools = apply(OpenAIResponsesCodec(), RESPONSES_REQUESTS["tool_loop"])
    assert tools["instructions"] == GUARD
    assert tools["max_output_tokens"] == 256
    assert tools["input"] == RESPONSES_REQUESTS["tool_loop"]["input"]


def test_one_edit_function_works_unchanged_for_anthropic() -> None:
    out = apply(AnthropicMessagesCodec(), ANTHROPIC_REQUESTS["plain"])
    assert out["system"] == [
        {"type": "text", "text": GUARD},
        {"type": "text", "text": "You are terse."},
    ]
    assert out["max_tokens"] == 256
    blocks = apply(AnthropicMessagesCodec(), ANTHROPIC_REQUESTS["system_blocks_and_images"])
    assert blocks["system"][0] == {"type": "text", "text": GUARD}
    assert blocks["system"][1:] == ANTHROPIC_REQUESTS["system_blocks_and_images"]["system"]
    assert blocks["messages"] == ANTHROPIC_REQUESTS["system_blocks_and_images"]["messages"]
    none = apply(AnthropicMessagesCodec(), ANTHROPIC_REQUESTS["odd_tool_choice"])
    assert none["system"] == GUARD
    assert none["max_tokens"] == 10


def test_edited_tool_arguments_are_reencoded_and_untouched_ones_keep_their_bytes() -> None:
    codec = OpenAIChatCodec()
    body = CHAT_REQUESTS["tool_loop"]
    annotated = codec.decode(body)
    call = annotated.messages[2].content[1]
    assert isinstance(call, ToolCallPart)
    call.arguments = {"city": "Milan"}
    annotated.messages[2].extras = {"name": "planner"}
    out = codec.encode(annotated, body).content
    calls = out["messages"][2]["tool_calls"]
    assert calls[0] == body["messages"][2]["tool_calls"][0]  # '{"city": "Paris"}' verbatim
    assert calls[1]["function"]["arguments"] == '{"city":"Milan"}'
    assert out["messages"][2]["name"] == "planner"


def test_extras_none_keeps_the_original_unmodeled_fields() -> None:
    codec = OpenAIChatCodec()
    body = CHAT_REQUESTS["extras_and_oddities"]
    fresh = AnnotatedLlmRequest(
        model="gpt-4o",
        messages=[AnnotatedMessage(role="user", content=[TextPart(text="hi")])],
    )
    out = codec.encode(fresh, body).content
    assert out["messages"] == [{"role": "user", "content": "hi"}]
    assert out["user"] == "user-42"
    assert out["x_vendor_extension"] == body["x_vendor_extension"]
    assert out["temperature"] is None  # unchanged (null in the original)
    assert "seed" not in out  # changed: 7 -> unset


def test_extras_dict_is_authoritative_so_removing_a_key_drops_that_field() -> None:
    codec = OpenAIChatCodec()
    body = CHAT_REQUESTS["extras_and_oddities"]
    annotated = codec.decode(body)
    assert annotated.extras is not None
    del annotated.extras["user"]
    annotated.extras["store"] = True
    out = codec.encode(annotated, body).content
    assert "user" not in out
    assert out["store"] is True


def test_normalized_tool_choice_is_written_in_each_provider_shape() -> None:
    choice = ToolChoice(type="tool", name="get_weather")
    expected = {
        "openai/chat-completions": {"type": "function", "function": {"name": "get_weather"}},
        "openai/responses": {"type": "function", "name": "get_weather"},
        "anthropic/messages": {"type": "tool", "name": "get_weather"},
    }
    samples = [
        CHAT_REQUESTS["plain"],
        RESPONSES_REQUESTS["string_input"],
        ANTHROPIC_REQUESTS["plain"],
    ]
    codecs = [OpenAIChatCodec(), OpenAIResponsesCodec(), AnthropicMessagesCodec()]
    for codec, body in zip(codecs, samples, strict=True):
        annotated = codec.decode(body)
        annotated.tool_choice = choice
        assert (
            codec.encode(annotated, body).content["tool_choice"] == expected[codec.data_schema.name]
        )
    anthropic = AnthropicMessagesCodec()
    annotated = anthropic.decode(ANTHROPIC_REQUESTS["plain"])
    annotated.tool_choice = ToolChoice(type="required")
    out = anthropic.encode(annotated, ANTHROPIC_REQUESTS["plain"]).content
    assert out["tool_choice"] == {"type": "any"}


def test_added_image_is_written_in_each_provider_shape() -> None:
    image = ImagePart(media_type="image/png", data="AAAA")
    chat = OpenAIChatCodec()
    annotated = chat.decode(CHAT_REQUESTS["plain"])
    annotated.messages[1].content.append(image)
    out = chat.encode(annotated, CHAT_REQUESTS["plain"]).content
    assert out["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA"},
    }
    responses = OpenAIResponsesCodec()
    annotated = responses.decode(RESPONSES_REQUESTS["string_input"])
    annotated.messages[0].content.append(image)
    out = responses.encode(annotated, RESPONSES_REQUESTS["string_input"]).content
    assert out["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Tell me a joke."},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,AAAA",
                    "detail": "auto",
                },
            ],
        }
    ]
    anthropic = AnthropicMessagesCodec()
    annotated = anthropic.decode(ANTHROPIC_REQUESTS["plain"])
    annotated.messages[0].content.insert(0, image)
    out = anthropic.encode(annotated, ANTHROPIC_REQUESTS["plain"]).content
    assert out["messages"][0]["content"][0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }


def test_developer_role_survives_an_edit_of_its_text() -> None:
    codec = OpenAIChatCodec()
    body = CHAT_REQUESTS["developer_and_multimodal"]
    annotated = codec.decode(body)
    assert annotated.messages[0].role == "system"
    annotated.messages[0].content = [TextPart(text="Be brief.")]
    out = codec.encode(annotated, body).content
    assert out["messages"][0] == {"role": "developer", "content": "Be brief."}


def test_chat_tool_results_become_anthropic_tool_result_blocks() -> None:
    chat_view = OpenAIChatCodec().decode(CHAT_REQUESTS["tool_loop"])
    anthropic = AnthropicMessagesCodec()
    target = anthropic.decode(ANTHROPIC_REQUESTS["plain"])
    target.messages = [m for m in chat_view.messages if m.role != "system"]
    out = anthropic.encode(target, ANTHROPIC_REQUESTS["plain"]).content
    assert out["messages"][1]["content"][0] == {
        "type": "tool_use",
        "id": "call_a1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert out["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_a1", "content": "18C, clear"}],
    }


@pytest.mark.parametrize(
    ("codec", "body", "field", "value"),
    [
        (OpenAIChatCodec(), CHAT_REQUESTS["plain"], "top_k", 5),
        (OpenAIResponsesCodec(), RESPONSES_REQUESTS["string_input"], "stop", ["x"]),
        (OpenAIResponsesCodec(), RESPONSES_REQUESTS["string_input"], "seed", 1),
    ],
)
def test_encoding_a_field_the_provider_has_no_place_for_raises_codec_error(
    codec: ProviderCodec, body: dict[str, Any], field: str, value: Any
) -> None:
    annotated = codec.decode(body)
    setattr(annotated, field, value)
    with pytest.raises(CodecError) as caught:
        codec.encode(annotated, body)
    assert caught.value.field == field


def test_encoding_a_system_message_for_anthropic_raises_codec_error() -> None:
    codec = AnthropicMessagesCodec()
    annotated = codec.decode(ANTHROPIC_REQUESTS["plain"])
    annotated.messages.insert(0, AnnotatedMessage(role="system", content=[TextPart(text="x")]))
    with pytest.raises(CodecError) as caught:
        codec.encode(annotated, ANTHROPIC_REQUESTS["plain"])
    assert caught.value.field == "messages[0].role"


def test_encode_rejects_a_non_annotated_request() -> None:
    with pytest.raises(TypeError):
        OpenAIChatCodec().encode({"messages": []}, CHAT_REQUESTS["plain"])  # type: ignore[arg-type]
