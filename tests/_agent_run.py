"""A realistic agent run recorded through the real llmflow entry points.

Shared by the OpenTelemetry and ATIF tests. The run:

* root agent ``planner`` (``push_scope``/``pop_scope``; the user question is
  its start data, the final answer its end data);
* an OpenAI Chat Completions call that asks for the ``get_weather`` tool
  (``call_w1``; 120 prompt tokens, 80 of them cached; cost 0.0012 USD);
* the ``get_weather`` tool (``tool_call_execute``);
* a sub-agent ``researcher`` (``scope(..., "agent")``) making an Anthropic
  Messages call with a ``tool_use`` (``toolu_1``; thinking included) and the
  ``lookup`` tool, then a final Anthropic answer;
* an OpenAI Responses call giving the final answer (reasoning tokens 7).

Provider functions are fakes returning the providers' real JSON shapes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import llmflow
from llmflow import Event, LlmRequest
from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec, OpenAIResponsesCodec
from llmflow.testing import capture

QUESTION = "What should I wear in Paris today?"
FINAL_ANSWER = "Take an umbrella: 14 C and rain in Paris."

CHAT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You plan outfits."},
        {"role": "user", "content": QUESTION},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "temperature": 0.2,
    "top_p": 0.9,
    "max_tokens": 256,
}
CHAT_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_w1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 15,
        "total_tokens": 135,
        "prompt_tokens_details": {"cached_tokens": 80},
    },
}
ANTHROPIC_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 512,
    "system": "You research facts.",
    "messages": [{"role": "user", "content": "Is it raining in Paris?"}],
}
ANTHROPIC_TOOL_RESPONSE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "I should look it up.", "signature": "sig"},
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "Paris rain"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 30,
        "output_tokens": 20,
        "cache_read_input_tokens": 10,
        "cache_creation_input_tokens": 0,
    },
}
ANTHROPIC_FINAL_RESPONSE: dict[str, Any] = {
    "id": "msg_2",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Yes, it is raining."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 50, "output_tokens": 6},
}
RESPONSES_REQUEST: dict[str, Any] = {
    "model": "o4-mini",
    "instructions": "Answer briefly.",
    "input": [{"role": "user", "content": "Weather: 14 C, rain. What to wear?"}],
}
RESPONSES_RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "o4-mini-2025-04-16",
    "output": [
        {
            "type": "message",
            "id": "msg_r1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": FINAL_ANSWER, "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 40,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 19,
        "output_tokens_details": {"reasoning_tokens": 7},
        "total_tokens": 59,
    },
}


def _returning(payload: dict[str, Any]) -> Any:
    async def provider(request: LlmRequest) -> dict[str, Any]:
        return payload

    return provider


async def _agent_run(*, annotate_responses: bool) -> None:
    chat, anthropic, responses = (
        OpenAIChatCodec(),
        AnthropicMessagesCodec(),
        OpenAIResponsesCodec(),
    )

    def codecs(codec: Any) -> dict[str, Any]:
        return {"codec": codec, "response_codec": codec if annotate_responses else None}

    planner = llmflow.push_scope("planner", "agent", data={"query": QUESTION})
    await llmflow.llm_call_execute(
        "openai.chat",
        LlmRequest(headers={"authorization": "Bearer sk-secret"}, content=CHAT_REQUEST),
        _returning(CHAT_RESPONSE),
        metadata={"cost.usd": 0.0012},
        **codecs(chat),
    )
    await llmflow.tool_call_execute(
        "get_weather",
        {"city": "Paris"},
        lambda args: {"temp_c": 14, "rain": True},
        tool_call_id="call_w1",
    )
    with llmflow.scope("researcher", "agent", data={"task": "Is it raining in Paris?"}):
        await llmflow.llm_call_execute(
            "anthropic.messages",
            LlmRequest(headers={}, content=ANTHROPIC_REQUEST),
            _returning(ANTHROPIC_TOOL_RESPONSE),
            metadata={"cost.usd": 0.0005},
            **codecs(anthropic),
        )
        await llmflow.tool_call_execute(
            "lookup", {"q": "Paris rain"}, lambda args: "rain until 18:00", tool_call_id="toolu_1"
        )
        await llmflow.llm_call_execute(
            "anthropic.messages",
            LlmRequest(headers={}, content=ANTHROPIC_REQUEST),
            _returning(ANTHROPIC_FINAL_RESPONSE),
            **codecs(anthropic),
        )
    llmflow.mark("plan.checkpoint", data={"step": "answering"})
    await llmflow.llm_call_execute(
        "openai.responses",
        LlmRequest(headers={}, content=RESPONSES_REQUEST),
        _returning(RESPONSES_RESPONSE),
        metadata={"cost.usd": 0.0003},
        **codecs(responses),
    )
    llmflow.pop_scope(planner, data={"answer": FINAL_ANSWER})


def record_agent_run(*, annotate_responses: bool = True) -> list[Event]:
    """Run the agent above and return its events (emission order)."""
    with capture() as events:
        asyncio.run(_agent_run(annotate_responses=annotate_responses))
    return list(events)


def by_name(events: list[Event], name: str) -> list[Event]:
    return [event for event in events if event.name == name]


def codec_samples() -> Any:
    """``tests/codecs/codec_samples.py`` (the codecs' realistic payloads), loaded once."""
    import importlib.util
    import sys
    from pathlib import Path

    module = sys.modules.get("codec_samples")
    if module is None:
        path = Path(__file__).parent / "codecs" / "codec_samples.py"
        spec = importlib.util.spec_from_file_location("codec_samples", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["codec_samples"] = module
        spec.loader.exec_module(module)
    return module


def sample_calls() -> list[tuple[str, Any, dict[str, Any], dict[str, Any]]]:
    """Every (request, response) sample pair of each built-in codec, as pytest ids + payloads."""
    samples = codec_samples()
    apis = (
        ("chat", OpenAIChatCodec, samples.CHAT_REQUESTS, samples.CHAT_RESPONSES),
        (
            "responses",
            OpenAIResponsesCodec,
            samples.RESPONSES_REQUESTS,
            samples.RESPONSES_RESPONSES,
        ),
        (
            "anthropic",
            AnthropicMessagesCodec,
            samples.ANTHROPIC_REQUESTS,
            samples.ANTHROPIC_RESPONSES,
        ),
    )
    calls = []
    for api, codec, requests, responses in apis:
        for name, request in requests.items():
            calls.append((f"{api}-request-{name}", codec, request, next(iter(responses.values()))))
        for name, response in responses.items():
            calls.append((f"{api}-response-{name}", codec, next(iter(requests.values())), response))
    return calls


def record_sample_call(
    codec: Any, request: dict[str, Any], response: dict[str, Any]
) -> list[Event]:
    """One agent scope holding one managed call of ``codec``'s API with these payloads."""
    with capture() as events, llmflow.scope("sample-agent", "agent", data="go"):
        llmflow.llm_call_execute_sync(
            "sample.call",
            LlmRequest(headers={}, content=request),
            lambda r: response,
            codec=codec(),
            response_codec=codec(),
        )
    return list(events)
