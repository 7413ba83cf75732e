"""The entry points take what real SDK code hands them (issue 11 items 1-4).

Real openai 3.x / anthropic 2.x objects, built with the SDKs' own
``construct``/``model_validate``, go through the managed and manual entry
points: their JSON form is recorded, the caller gets the original object,
sentinels are omitted, bad parts are named by path, credentials in bodies are
stripped and the model name comes from the (intercepted) request.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion, ChatCompletionMessage

import llmflow
from llmflow import LlmRequest, guardrails, intercepts, testing
from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2, "output_tokens": 1},
}


def _chat_request(**extra: Any) -> LlmRequest:
    return LlmRequest(
        {"content-type": "application/json"},
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **extra},
    )


def _llm(events: list[llmflow.Event]) -> list[llmflow.Event]:
    return [e for e in events if e.category == "llm"]


def test_a_pydantic_sdk_response_is_recorded_as_its_json_form_and_returned_unchanged() -> None:
    completion = ChatCompletion.model_validate(COMPLETION)
    with testing.capture() as events:
        result = llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: completion, codec=OpenAIChatCodec()
        )
    assert result is completion
    end = _llm(events)[1]
    assert end.data == completion.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert end.category_profile["annotated_response"]["usage"]["input_tokens"] == 3
    assert "llm_sanitize_response:snapshot" not in llmflow.diagnostics().failures


def test_an_anthropic_message_passed_to_llm_call_end_is_recorded() -> None:
    message = Message.model_validate(MESSAGE)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", LlmRequest({}, {"model": "claude-x", "messages": []}))
        llmflow.llm_call_end(handle, message, response_codec=AnthropicMessagesCodec())
    end = _llm(events)[1]
    assert end.data["content"] == [{"type": "text", "text": "hi"}]
    assert end.category_profile["annotated_response"]["usage"]["output_tokens"] == 1


def test_a_sanitizer_receives_the_json_form_of_an_sdk_response() -> None:
    seen: list[Any] = []
    guardrails.register_llm_sanitize_response("see", 0, lambda resp, ctx: seen.append(resp) or resp)
    completion = ChatCompletion.model_validate(COMPLETION)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", _chat_request(), lambda r: completion)
    assert type(seen[0]) is dict
    assert _llm(events)[1].data["id"] == "chatcmpl-1"


def test_sdk_objects_inside_the_request_are_recorded_and_the_provider_gets_the_original() -> None:
    assistant = ChatCompletionMessage.model_validate({"role": "assistant", "content": "earlier"})
    request = _chat_request()
    request.content["messages"].append(assistant)
    sent: list[Any] = []
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request, lambda r: sent.append(r) or COMPLETION)
    assert sent[0].content["messages"][1] is assistant
    recorded = _llm(events)[0].data["content"]["messages"]
    assert recorded[1] == {"role": "assistant", "content": "earlier"}


def test_the_sdks_not_given_sentinels_are_omitted_from_the_record() -> None:
    request = _chat_request(temperature=openai.NOT_GIVEN, top_p=openai.omit, seed=7)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request, lambda r: COMPLETION)
    content = _llm(events)[0].data["content"]
    assert "temperature" not in content and "top_p" not in content
    assert content["seed"] == 7


def test_a_part_that_cannot_be_serialized_is_named_by_its_path() -> None:
    request = _chat_request()
    request.content["messages"] += [{"role": "user"}, {"role": "user"}, {"content": {1, 2}}]
    with testing.capture() as events:
        with pytest.raises(llmflow.InvalidPayloadError, match=r"request\.content\.messages\[3\]"):
            llmflow.llm_call_execute_sync("chat", request, lambda r: COMPLETION)
    assert events == []


def test_sdk_objects_as_tool_args_and_results_are_recorded() -> None:
    args = ChatCompletionMessage.model_validate({"role": "assistant", "content": "x"})
    with testing.capture() as events:
        result = llmflow.tool_call_execute_sync("t", args, lambda a: a)
    assert result is args
    start, end = [e for e in events if e.category == "tool"]
    assert start.data == end.data == {"role": "assistant", "content": "x"}


def test_per_call_credentials_in_the_body_are_stripped_from_the_record() -> None:
    request = _chat_request(
        api_key="sk-live-secret-0123456789",
        extra_headers={"Authorization": "Bearer sk-x", "X-Trace": "t1"},
        timeout=30,
    )
    sent: list[Any] = []
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request, lambda r: sent.append(r) or COMPLETION)
    recorded = _llm(events)[0].data["content"]
    assert "api_key" not in recorded
    assert recorded["extra_headers"] == {"X-Trace": "t1"}
    assert recorded["timeout"] == 30
    assert sent[0].content["api_key"] == "sk-live-secret-0123456789"
    assert b"sk-live-secret" not in b"".join(e.to_json() for e in events)


def test_tool_arguments_lose_top_level_credential_fields() -> None:
    with testing.capture() as events:
        llmflow.tool_call_execute_sync("login", {"user": "a", "password": "p"}, lambda a: "ok")
    assert next(e.data for e in events if e.category == "tool") == {"user": "a"}


def test_model_name_defaults_to_the_intercepted_requests_model_via_the_codec() -> None:
    def route(request: LlmRequest, ctx: Any) -> LlmRequest:
        return LlmRequest(request.headers, {**request.content, "model": "gpt-4o"})

    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: COMPLETION, codec=OpenAIChatCodec()
        )
        intercepts.register_llm_request("route", 0, route)
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: COMPLETION, codec=OpenAIChatCodec()
        )
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: COMPLETION, codec=OpenAIChatCodec(), model_name="x"
        )
    starts = [e for e in _llm(events) if e.scope_category == "start"]
    assert [e.category_profile["model_name"] for e in starts] == ["gpt-4o-mini", "gpt-4o", "x"]


def test_codec_without_response_codec_uses_the_same_providers_response_codec() -> None:
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: COMPLETION, codec=OpenAIChatCodec()
        )
    end = _llm(events)[1]
    assert end.data_schema == OpenAIChatCodec().data_schema
    assert end.category_profile["annotated_response"]["usage"]["output_tokens"] == 1


def test_plain_dicts_are_recorded_byte_for_byte_as_before() -> None:
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", _chat_request(), lambda r: COMPLETION)
    assert orjson.loads(_llm(events)[1].to_json())["data"] == COMPLETION


def test_body_credentials_are_stripped_before_sanitizers_see_the_request() -> None:
    seen: list[Any] = []
    guardrails.register_llm_sanitize_request("see", 0, lambda req, ctx: seen.append(req) or req)
    intercepts.register_llm_request("same", 0, lambda req, ctx: req)
    request = _chat_request(api_key="sk-live-secret-0123456789")
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request, lambda r: COMPLETION)
    assert "api_key" not in seen[0].content
    assert "api_key" not in _llm(events)[0].data["content"]
    assert request.content["api_key"] == "sk-live-secret-0123456789"
