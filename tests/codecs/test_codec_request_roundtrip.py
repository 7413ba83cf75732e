"""SPEC §6: encoding the decoding of a valid request returns an equal request."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from codec_samples import ANTHROPIC_REQUESTS, CHAT_REQUESTS, RESPONSES_REQUESTS
from codec_strategies import anthropic_requests, chat_requests, responses_requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmflow._types import LlmRequest
from llmflow.codecs import (
    AnnotatedLlmRequest,
    AnthropicMessagesCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)
from llmflow.codecs._codec import ProviderCodec

CASES: list[tuple[ProviderCodec, str, dict[str, Any]]] = [
    *((OpenAIChatCodec(), name, body) for name, body in CHAT_REQUESTS.items()),
    *((OpenAIResponsesCodec(), name, body) for name, body in RESPONSES_REQUESTS.items()),
    *((AnthropicMessagesCodec(), name, body) for name, body in ANTHROPIC_REQUESTS.items()),
]
HEADERS = {"authorization": "Bearer sk-test", "x-trace": "1", "anthropic-version": "2023-06-01"}


def _ids(case: tuple[ProviderCodec, str, dict[str, Any]]) -> str:
    return f"{case[0].data_schema.name}:{case[1]}"


def assert_round_trip(codec: ProviderCodec, body: dict[str, Any]) -> AnnotatedLlmRequest:
    pristine = copy.deepcopy(body)
    request = LlmRequest(headers=dict(HEADERS), content=body)
    annotated = codec.decode(request)
    encoded = codec.encode(annotated, request)
    assert encoded == request
    assert encoded.content == pristine
    assert body == pristine, "codecs never mutate their input"
    assert codec.annotate_request(request) == annotated.model_dump(mode="json", exclude_none=True)
    return annotated


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_round_trip_returns_an_equal_request_for_every_sample(
    case: tuple[ProviderCodec, str, dict[str, Any]],
) -> None:
    codec, _, body = case
    assert_round_trip(codec, body)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_round_trip_accepts_a_plain_body_dict_and_returns_it_without_headers(
    case: tuple[ProviderCodec, str, dict[str, Any]],
) -> None:
    codec, _, body = case
    encoded = codec.encode(codec.decode(body), body)
    assert encoded == LlmRequest(headers={}, content=body)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_round_trip_survives_a_json_trip_of_the_annotation(
    case: tuple[ProviderCodec, str, dict[str, Any]],
) -> None:
    codec, _, body = case
    annotated = codec.decode(body)
    revived = AnnotatedLlmRequest.model_validate_json(annotated.model_dump_json(exclude_none=True))
    assert codec.encode(revived, body).content == body


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(chat_requests())
def test_round_trip_holds_for_generated_chat_completions_requests(body: dict[str, Any]) -> None:
    assert_round_trip(OpenAIChatCodec(), body)


@_SETTINGS
@given(responses_requests())
def test_round_trip_holds_for_generated_responses_requests(body: dict[str, Any]) -> None:
    assert_round_trip(OpenAIResponsesCodec(), body)


@_SETTINGS
@given(anthropic_requests())
def test_round_trip_holds_for_generated_anthropic_requests(body: dict[str, Any]) -> None:
    assert_round_trip(AnthropicMessagesCodec(), body)


@_SETTINGS
@given(st.data())
def test_rebuilt_messages_decode_to_the_same_annotation(data: st.DataObject) -> None:
    """Elements that cannot be reused verbatim are rebuilt to say the same thing."""
    codec: ProviderCodec = data.draw(
        st.sampled_from([OpenAIChatCodec(), OpenAIResponsesCodec(), AnthropicMessagesCodec()])
    )
    strategy = {
        "openai/chat-completions": chat_requests(),
        "openai/responses": responses_requests(),
        "anthropic/messages": anthropic_requests(),
    }[codec.data_schema.name]
    body = data.draw(strategy)
    annotated = codec.decode(body)
    # an original without messages forces every message to be rebuilt
    empty = {**body, "messages": []} if "messages" in body else {**body, "input": []}
    rebuilt = codec.encode(annotated, empty).content
    assert codec.decode(rebuilt).messages == annotated.messages
