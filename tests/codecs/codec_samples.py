"""Realistic provider payloads shared by the codec tests.

Requests are bodies the real APIs accept; responses are what they return; each
stream is the chunk/event sequence of a response that also appears here in its
non-streamed form (its "twin").
"""

from __future__ import annotations

from typing import Any

PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
    "60e6kgAAAABJRU5ErkJggg=="
)

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["c", "f"]},
    },
    "required": ["city"],
    "additionalProperties": False,
}

# -- OpenAI Chat Completions requests --------------------------------------------

CHAT_REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hi."},
        ],
        "temperature": 0.2,
        "max_tokens": 64,
    },
    "developer_and_multimodal": {
        "model": "gpt-4.1",
        "messages": [
            {"role": "developer", "content": "Describe images precisely."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these two images?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"},
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "file-abc123"}},
                ],
            },
        ],
        "max_completion_tokens": 500,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    "tool_loop": {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
            {"role": "user", "content": "Weather in Paris and Rome?", "name": "alice"},
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_a1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_a2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{ "city":"Rome" }'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a1", "content": "18C, clear"},
            {
                "role": "tool",
                "tool_call_id": "call_a2",
                "content": [{"type": "text", "text": "22C, sunny"}],
            },
            {"role": "assistant", "content": "Paris 18C, Rome 22C."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": WEATHER_SCHEMA,
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": True,
    },
    "extras_and_oddities": {
        "model": "gpt-4o",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "JSON please"}]},
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            },
            {
                "role": "assistant",
                "content": "ok",
                "tool_calls": [
                    {
                        "id": "call_x",
                        "type": "function",
                        "function": {"name": "broken", "arguments": "{not json"},
                    }
                ],
                "audio": None,
            },
            {"role": "tool", "tool_call_id": "call_x", "content": ""},
            {"role": "user", "content": ""},
        ],
        "temperature": None,
        "top_p": 1,
        "stop": "\n\n",
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 3,
        "logit_bias": {"1734": -100},
        "user": "user-42",
        "metadata": {"team": "search"},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "low",
        "tools": None,
        "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
        "x_vendor_extension": {"nested": [1, 2, {"deep": None}]},
    },
    "legacy_functions": {
        "model": "gpt-3.5-turbo",
        "messages": [
            {"role": "user", "content": "What time is it?"},
            {
                "role": "assistant",
                "content": None,
                "function_call": {"name": "clock", "arguments": "{}"},
            },
            {"role": "function", "name": "clock", "content": "12:00"},
        ],
        "functions": [{"name": "clock", "parameters": {"type": "object", "properties": {}}}],
        "function_call": "auto",
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "stop": ["END", "STOP"],
    },
}

# -- OpenAI Responses requests ---------------------------------------------------

RESPONSES_REQUESTS: dict[str, dict[str, Any]] = {
    "string_input": {
        "model": "gpt-4.1-mini",
        "instructions": "Answer in French.",
        "input": "Tell me a joke.",
        "max_output_tokens": 200,
        "temperature": 0.7,
    },
    "multimodal_items": {
        "model": "gpt-4.1",
        "input": [
            {"role": "developer", "content": "Be careful."},
            {"role": "system", "content": "System rule."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Compare:"},
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/a.png",
                        "detail": "low",
                    },
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PNG}",
                        "detail": "auto",
                    },
                    {"type": "input_image", "file_id": "file-img1", "detail": "high"},
                    {"type": "input_file", "file_id": "file-pdf1"},
                ],
            },
        ],
        "stream": True,
        "store": False,
        "include": ["reasoning.encrypted_content"],
    },
    "tool_loop": {
        "model": "o4-mini",
        "instructions": None,
        "input": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "reasoning",
                "id": "rs_1",
                "summary": [],
                "encrypted_content": "gAAAA...",
            },
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_p1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            },
            {"type": "function_call_output", "call_id": "call_p1", "output": "18C"},
            {
                "type": "function_call_output",
                "call_id": "call_p2",
                "output": [{"type": "input_text", "text": "also 18C"}],
            },
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "It is 18C.", "annotations": []},
                    {"type": "refusal", "refusal": "no more"},
                ],
            },
            {"type": "item_reference", "id": "msg_0"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        ],
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather",
                "parameters": WEATHER_SCHEMA,
                "strict": True,
            },
            {"type": "web_search"},
            {"type": "file_search", "vector_store_ids": ["vs_1"]},
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "reasoning": {"effort": "medium", "summary": "auto"},
        "text": {"format": {"type": "text"}},
        "previous_response_id": "resp_prev",
        "parallel_tool_calls": False,
        "metadata": {"k": "v"},
        "top_p": 0.9,
    },
    "hosted_tool_choice": {
        "model": "gpt-4.1",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "search"}]}],
        "tools": [{"type": "web_search_preview"}],
        "tool_choice": {"type": "web_search_preview"},
        "truncation": "auto",
        "x_unknown": 1,
    },
}

# -- Anthropic Messages requests -------------------------------------------------

ANTHROPIC_REQUESTS: dict[str, dict[str, Any]] = {
    "plain": {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.5,
        "top_k": 40,
        "top_p": 0.9,
        "stop_sequences": ["\n\nHuman:"],
    },
    "system_blocks_and_images": {
        "model": "claude-opus-4-1",
        "max_tokens": 2048,
        "system": [
            {"type": "text", "text": "Long policy...", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Second block."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/b.jpg"},
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "image", "source": {"type": "file", "file_id": "file_011"}},
                    {
                        "type": "document",
                        "source": {"type": "text", "media_type": "text/plain", "data": "doc"},
                        "title": "Doc",
                    },
                    {"type": "text", "text": "Describe."},
                ],
            }
        ],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    },
    "tool_loop_with_thinking": {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Need the tool.", "signature": "sig=="},
                    {"type": "redacted_thinking", "data": "opaque=="},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_02",
                        "content": [
                            {"type": "text", "text": "chart:"},
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": PNG,
                                },
                            },
                        ],
                        "is_error": False,
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_03", "is_error": True},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather",
                "input_schema": WEATHER_SCHEMA,
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "custom", "name": "noop", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "service_tier": "auto",
    },
    "odd_tool_choice": {
        "model": "claude-haiku-4-5",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": []},
            {"role": "assistant", "content": ""},
        ],
        "tool_choice": {"type": "tool", "name": "noop"},
        "system": None,
        "x_beta_field": {"a": 1},
    },
}

# -- responses -------------------------------------------------------------------

CHAT_RESPONSES: dict[str, dict[str, Any]] = {
    "text_with_cache_and_reasoning": {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1735689600,
        "model": "o4-mini-2025-04-16",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Paris is the capital of France. " * 40,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 128,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_abc",
    },
    "tool_calls": {
        "id": "chatcmpl-T1",
        "object": "chat.completion",
        "created": 1735689601,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Ro'},
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 80, "completion_tokens": 40, "total_tokens": 120},
    },
    "length": {
        "id": "chatcmpl-L",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Once"},
                "finish_reason": "length",
            }
        ],
    },
    "content_filter": {
        "id": "chatcmpl-F",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None},
                "finish_reason": "content_filter",
            }
        ],
    },
    "refusal": {
        "id": "chatcmpl-R",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "refusal": "I can't."},
                "finish_reason": "stop",
            }
        ],
    },
}

RESPONSES_RESPONSES: dict[str, dict[str, Any]] = {
    "text_with_reasoning": {
        "id": "resp_1",
        "object": "response",
        "created_at": 1735689600,
        "status": "completed",
        "model": "o4-mini-2025-04-16",
        "output": [
            {
                "id": "rs_1",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Thinking about Paris."}],
            },
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Paris is lovely.", "annotations": []}],
            },
        ],
        "usage": {
            "input_tokens": 900,
            "input_tokens_details": {"cached_tokens": 512},
            "output_tokens": 200,
            "output_tokens_details": {"reasoning_tokens": 150},
            "total_tokens": 1100,
        },
        "incomplete_details": None,
        "error": None,
    },
    "function_call": {
        "id": "resp_2",
        "object": "response",
        "status": "completed",
        "model": "gpt-4.1",
        "output": [
            {
                "id": "fc_1",
                "type": "function_call",
                "status": "completed",
                "call_id": "call_p1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            }
        ],
        "usage": {"input_tokens": 50, "output_tokens": 10, "total_tokens": 60},
    },
    "incomplete_length": {
        "id": "resp_3",
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "model": "gpt-4.1",
        "output": [
            {
                "id": "msg_3",
                "type": "message",
                "role": "assistant",
                "status": "incomplete",
                "content": [{"type": "output_text", "text": "Once upon", "annotations": []}],
            }
        ],
    },
    "incomplete_filter": {
        "id": "resp_4",
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "content_filter"},
        "model": "gpt-4.1",
        "output": [],
    },
    "refusal": {
        "id": "resp_5",
        "object": "response",
        "status": "completed",
        "model": "gpt-4.1",
        "output": [
            {
                "id": "msg_5",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "refusal", "refusal": "I can't help with that."}],
            }
        ],
    },
}

ANTHROPIC_RESPONSES: dict[str, dict[str, Any]] = {
    "end_turn_with_cache": {
        "id": "msg_01A",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "Simple.", "signature": "sig=="},
            {"type": "text", "text": "Hello there!"},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 25,
            "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 2000,
            "output_tokens": 12,
            "service_tier": "standard",
        },
    },
    "tool_use": {
        "id": "msg_01B",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {"city": "Paris", "unit": "c"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 400, "output_tokens": 60},
    },
    "max_tokens": {
        "id": "msg_01C",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Once"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 5, "output_tokens": 1},
    },
    "refusal": {
        "id": "msg_01D",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": "refusal",
        "usage": {"input_tokens": 5, "output_tokens": 0},
    },
    "stop_sequence": {
        "id": "msg_01E",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Done"}],
        "stop_reason": "stop_sequence",
        "stop_sequence": "END",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    },
}


# -- streams (each folds to the response of the same name above) -----------------


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def chat_text_stream() -> list[dict[str, Any]]:
    """``stream=True`` + ``include_usage`` twin of ``CHAT_RESPONSES["text_with_cache..."]``."""
    final = CHAT_RESPONSES["text_with_cache_and_reasoning"]
    head = {
        "id": final["id"],
        "object": "chat.completion.chunk",
        "created": final["created"],
        "model": final["model"],
        "service_tier": "default",
        "system_fingerprint": "fp_abc",
    }
    text = final["choices"][0]["message"]["content"]
    chunks = [
        {
            **head,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": "", "refusal": None},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
            "usage": None,
        }
    ]
    for piece in _pieces(text, 9):
        chunks.append(
            {
                **head,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": piece},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                "usage": None,
                "obfuscation": "xyz",
            }
        )
    chunks.append(
        {
            **head,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            "usage": None,
        }
    )
    chunks.append({**head, "choices": [], "usage": final["usage"]})
    return chunks


def chat_tool_call_stream() -> list[dict[str, Any]]:
    """Twin of ``CHAT_RESPONSES["tool_calls"]``: two parallel calls, fragmented arguments."""
    head = {
        "id": "chatcmpl-T1",
        "object": "chat.completion.chunk",
        "created": 1735689601,
        "model": "gpt-4o-2024-08-06",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return {"tool_calls": [{"index": index, **fields}]}

    return [
        chunk({"role": "assistant", "content": None, "refusal": None}),
        chunk(
            call(
                0,
                id="call_1",
                type="function",
                function={"name": "get_weather", "arguments": ""},
            )
        ),
        chunk(call(0, function={"arguments": '{"ci'})),
        chunk(call(0, function={"arguments": 'ty":"Pa'})),
        chunk(
            call(
                1,
                id="call_2",
                type="function",
                function={"name": "get_weather", "arguments": ""},
            )
        ),
        chunk(call(1, function={"arguments": '{"city":"Ro'})),
        chunk(call(0, function={"arguments": 'ris"}'})),
        chunk({}, "tool_calls"),
        {**head, "choices": [], "usage": CHAT_RESPONSES["tool_calls"]["usage"]},
    ]


def responses_text_stream(*, completed: bool = True) -> list[dict[str, Any]]:
    """Twin of ``RESPONSES_RESPONSES["text_with_reasoning"]`` as Responses stream events."""
    final = RESPONSES_RESPONSES["text_with_reasoning"]
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    message = {
        "id": "msg_1",
        "type": "message",
        "status": "in_progress",
        "role": "assistant",
        "content": [],
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "sequence_number": 0, "response": start},
        {"type": "response.in_progress", "sequence_number": 1, "response": start},
        {"type": "response.output_item.added", "output_index": 0, "item": reasoning},
        {
            "type": "response.reasoning_summary_part.added",
            "output_index": 0,
            "summary_index": 0,
            "part": {"type": "summary_text", "text": ""},
        },
    ]
    for piece in _pieces("Thinking about Paris.", 5):
        events.append(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": "rs_1",
                "output_index": 0,
                "summary_index": 0,
                "delta": piece,
            }
        )
    if completed:
        events.append(
            {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]}
        )
    events += [
        {"type": "response.output_item.added", "output_index": 1, "item": message},
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
    ]
    for piece in _pieces("Paris is lovely.", 4):
        events.append(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 1,
                "content_index": 0,
                "delta": piece,
                "logprobs": [],
            }
        )
    if completed:
        events += [
            {
                "type": "response.output_text.done",
                "output_index": 1,
                "content_index": 0,
                "text": "Paris is lovely.",
            },
            {"type": "response.output_item.done", "output_index": 1, "item": final["output"][1]},
            {"type": "response.completed", "sequence_number": 99, "response": final},
        ]
    return events


def responses_function_call_stream() -> list[dict[str, Any]]:
    """Twin of ``RESPONSES_RESPONSES["function_call"]``."""
    final = RESPONSES_RESPONSES["function_call"]
    item = {**final["output"][0], "arguments": "", "status": "in_progress"}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**final, "status": "in_progress", "output": []}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    for piece in ['{"ci', 'ty":', '"Paris"}']:
        events.append(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 0,
                "delta": piece,
            }
        )
    events += [
        {
            "type": "response.function_call_arguments.done",
            "output_index": 0,
            "arguments": '{"city":"Paris"}',
        },
        {"type": "response.output_item.done", "output_index": 0, "item": final["output"][0]},
        {"type": "response.completed", "response": final},
    ]
    return events


def anthropic_tool_use_stream() -> list[dict[str, Any]]:
    """Twin of ``ANTHROPIC_RESPONSES["tool_use"]`` as Messages stream events."""
    return [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01B",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 400, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Let "},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "me check."},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {
                "type": "tool_use",
                "id": "toolu_01",
                "name": "get_weather",
                "input": {},
            },
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": 'is", "unit": "c"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 60},
        },
        {"type": "message_stop"},
    ]


def anthropic_thinking_stream() -> list[dict[str, Any]]:
    """Twin of ``ANTHROPIC_RESPONSES["end_turn_with_cache"]`` (thinking + text + cache usage)."""
    final = ANTHROPIC_RESPONSES["end_turn_with_cache"]
    start_usage = {**final["usage"], "output_tokens": 1}
    return [
        {
            "type": "message_start",
            "message": {
                **final,
                "content": [],
                "stop_reason": None,
                "usage": start_usage,
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Sim"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "ple."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig=="},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Hello "},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "there!"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 12},
        },
        {"type": "message_stop"},
    ]
