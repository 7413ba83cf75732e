"""Provider-shaped payloads and fake providers for the cost, budget, cache and replay tests.

The responses and streams are written by hand in each provider's wire shape
(not produced by llmflow), so folding and re-chunking are tested against
independent data.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

from llmflow import LlmRequest
from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec, OpenAIResponsesCodec

CHAT = OpenAIChatCodec()
ANTHROPIC = AnthropicMessagesCodec()
RESPONSES = OpenAIResponsesCodec()


def chat_request(text: str = "What is the weather in Paris?", **extra: Any) -> LlmRequest:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": text},
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
        **extra,
    }
    return LlmRequest({"authorization": "Bearer sk-secret", "x-request-id": "r1"}, body)


def chat_response(
    text: str | None = "It is sunny.",
    *,
    model: str = "gpt-4o-2024-08-06",
    prompt: int = 1000,
    completion: int = 200,
    cached: int = 0,
    reasoning: int = 0,
    tool_call: bool = False,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if tool_call:
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_call else "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        },
    }


def chat_chunks(*, prompt: int = 1000, completion: int = 200) -> list[dict[str, Any]]:
    head = {"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 1700000001}
    head["model"] = "gpt-4o-2024-08-06"
    return [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "It is "}}]},
        {**head, "choices": [{"index": 0, "delta": {"content": "sunny."}}]},
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_9",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ],
        },
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": 1}'}}]},
                }
            ],
        },
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        {
            **head,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        },
    ]


def anthropic_request(text: str = "Think, then call the tool.") -> LlmRequest:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are careful.",
        "messages": [{"role": "user", "content": text}],
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
    }
    return LlmRequest({"x-api-key": "sk-ant-secret", "anthropic-version": "2023-06-01"}, body)


def anthropic_response(
    *, input_tokens: int = 300, read: int = 600, created: int = 100, output: int = 150
) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "The user wants a lookup.", "signature": "sig=="},
            {"type": "text", "text": "Looking it up."},
            {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "paris"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": created,
            "output_tokens": output,
        },
    }


def anthropic_events() -> list[dict[str, Any]]:
    start = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 300,
            "cache_read_input_tokens": 600,
            "cache_creation_input_tokens": 100,
            "output_tokens": 1,
        },
    }
    return [
        {"type": "message_start", "message": start},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "The user wants "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "a lookup."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig=="},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": "pa'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'ris"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 150},
        },
        {"type": "message_stop"},
    ]


def responses_request(text: str = "Plan the trip.") -> LlmRequest:
    body = {"model": "o3-mini", "input": text, "reasoning": {"effort": "low", "summary": "auto"}}
    return LlmRequest({"authorization": "Bearer sk-x"}, body)


def responses_response() -> dict[str, Any]:
    return {
        "id": "resp_1",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": "o3-mini-2025-01-31",
        "output": [
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "Check the calendar first."}],
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_7",
                "name": "calendar",
                "arguments": '{"month": 5}',
                "status": "completed",
            },
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
            },
        ],
        "usage": {
            "input_tokens": 800,
            "input_tokens_details": {"cached_tokens": 200},
            "output_tokens": 500,
            "output_tokens_details": {"reasoning_tokens": 400},
            "total_tokens": 1300,
        },
    }


class FakeProvider:
    """A provider function (plain or streaming) that counts its calls and can be switched off."""

    def __init__(self, answer: Any, *, chunks: list[Any] | None = None) -> None:
        self.answer = answer
        self.chunks = chunks
        self.calls = 0
        self.down = False

    def __call__(self, request: LlmRequest) -> Any:
        self.calls += 1
        if self.down:
            raise ConnectionError("provider is down")
        return copy.deepcopy(self.answer)

    async def acall(self, request: LlmRequest) -> Any:
        await asyncio.sleep(0)
        return self(request)

    def stream(self, request: LlmRequest) -> AsyncIterator[Any]:
        self.calls += 1
        if self.down:
            raise ConnectionError("provider is down")
        chunks = copy.deepcopy(self.chunks or [])

        async def gen() -> AsyncIterator[Any]:
            for chunk in chunks:
                await asyncio.sleep(0)
                yield chunk

        return gen()


def ends(events: list[Any], category: str = "llm") -> list[Any]:
    return [e for e in events if e.category == category and e.scope_category == "end"]


async def drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [chunk async for chunk in stream]


Provider = Callable[[LlmRequest], Any]
