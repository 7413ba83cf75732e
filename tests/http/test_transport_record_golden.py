"""The non-streaming transport path records exactly what it recorded before its speed-ups.

``golden_nonstreaming.json`` holds the event lines (ids and times masked) that
the tree of commit 687e82a (before the fourth round's changes to the
non-streaming path) recorded for the fixed calls below, sync and async: chat
completions with every kind of message, error statuses, an encoded answer, a
non-JSON body, answers not in the provider's shape, Anthropic, Responses,
embeddings, an Azure deployment, a body the inner transport streams. Every
line must stay byte-identical, and the client must get exactly the provider's
answer. Regenerate (only for an intended change of the record) with
``PYTHONPATH=src python tests/http/test_transport_record_golden.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2

import llmflow
from llmflow.http import AsyncTransport, Transport
from llmflow.testing import capture

GOLDEN = Path(__file__).with_name("golden_nonstreaming.json")

CHAT_BODY = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in English."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this picture?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "assistant", "content": "It is 18 C."},
        {"role": "function", "name": "legacy", "content": "ok"},
        {"role": "user", "content": "Thanks", "name": "ann"},
        {"role": "assistant", "content": ""},
    ],
    "temperature": 0.2,
    "max_tokens": 50,
    "stop": "END",
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather of a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "auto",
    "user": "u-1",
}
CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-2024",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Sunny.",
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Lyon"}'},
                    }
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 90,
        "completion_tokens": 12,
        "total_tokens": 102,
        "prompt_tokens_details": {"cached_tokens": 10},
    },
}
ERROR_ANSWER = {"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limited"}}
ANTHROPIC_BODY = {
    "model": "claude-x",
    "max_tokens": 100,
    "system": "Be brief.",
    "messages": [{"role": "user", "content": "Hi"}],
}
ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 5, "output_tokens": 2},
}
RESPONSES_BODY = {"model": "gpt-4o", "input": "Hi", "instructions": "Be brief."}
RESPONSES_ANSWER = {
    "id": "resp_1",
    "object": "response",
    "model": "gpt-4o",
    "status": "completed",
    "output": [
        {
            "type": "message",
            "id": "m1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
}
EMBEDDINGS_BODY = {"model": "text-embedding-3-small", "input": ["a", "b"]}
EMBEDDINGS_ANSWER = {
    "object": "list",
    "model": "text-embedding-3-small",
    "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i in (0, 1)],
    "usage": {"prompt_tokens": 2, "total_tokens": 2},
}

OPENAI = "https://api.openai.com/v1"
LOCAL = "http://127.0.0.1:9/v1"
HEADERS = {"user-agent": "golden", "authorization": "Bearer sk-golden-secret-0123456789"}


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


# (method, url, request headers, request body, status, answer headers, answer body, streamed)
CALLS: list[tuple[str, str, dict[str, str], bytes, int, dict[str, str], bytes, bool]] = [
    (
        "POST",
        f"{OPENAI}/chat/completions",
        {"x-stainless-retry-count": "0"},
        _json(CHAT_BODY),
        200,
        {"content-type": "application/json", "x-request-id": "req_1"},
        _json(CHAT_ANSWER),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {"x-stainless-retry-count": "1"},
        _json(CHAT_BODY),
        429,
        {"content-type": "application/json", "retry-after": "2", "request-id": "req_2"},
        _json(ERROR_ANSWER),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {},
        _json(CHAT_BODY),
        500,
        {"content-type": "text/plain", "retry-after-ms": "150"},
        b"upstream \xff failure",
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {},
        _json(CHAT_BODY),
        200,
        {"content-type": "application/json", "content-encoding": "gzip"},
        gzip.compress(_json(CHAT_ANSWER), mtime=0),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {},
        b"not json \xff",
        200,
        {"content-type": "application/json"},
        _json(CHAT_ANSWER),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {},
        _json(CHAT_BODY),
        200,
        {"content-type": "application/json"},
        _json({"unexpected": True}),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {},
        _json(CHAT_BODY),
        200,
        {"content-type": "text/plain"},
        b"plain text answer",
        False,
    ),
    (
        "POST",
        f"{LOCAL}/chat/completions",
        {"X-Request-Tag": "a", "x-request-tag": "b"},
        _json(CHAT_BODY),
        200,
        {"content-type": "application/json", "x-request-id": "r1", "X-Request-Id": "r2"},
        _json(CHAT_ANSWER),
        True,
    ),
    (
        "POST",
        "https://api.anthropic.com/v1/messages",
        {"x-api-key": "sk-ant-golden-secret-0123456789", "anthropic-version": "2023-06-01"},
        _json(ANTHROPIC_BODY),
        200,
        {"content-type": "application/json", "request-id": "req_a"},
        _json(ANTHROPIC_ANSWER),
        False,
    ),
    (
        "POST",
        f"{LOCAL}/responses",
        {},
        _json(RESPONSES_BODY),
        200,
        {"content-type": "application/json"},
        _json(RESPONSES_ANSWER),
        False,
    ),
    (
        "POST",
        f"{OPENAI}/embeddings",
        {},
        _json(EMBEDDINGS_BODY),
        200,
        {"content-type": "application/json", "x-request-id": "req_e"},
        _json(EMBEDDINGS_ANSWER),
        False,
    ),
    (
        "POST",
        "https://res.openai.azure.com/openai/deployments/d1/chat/completions?api-version=1",
        {"api-key": "golden-azure-key"},
        _json(CHAT_BODY),
        200,
        {"content-type": "application/json", "apim-request-id": "req_z"},
        _json(CHAT_ANSWER),
        False,
    ),
]


class _Parts(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A body the inner transport streams in two reads (not an in-memory ``ByteStream``)."""

    def __init__(self, body: bytes) -> None:
        self._parts = [body[:7], body[7:]]

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part


def _answer(index: int) -> httpx2.Response:
    _, _, _, _, status, headers, body, streamed = CALLS[index]
    if streamed:
        return httpx2.Response(status, headers=headers, stream=_Parts(body))
    return httpx2.Response(status, headers=headers, content=body)


def _handler(request: httpx2.Request) -> httpx2.Response:
    return _answer(int(request.headers["x-call"]))


def _request_args(index: int) -> tuple[str, str, dict[str, str], bytes]:
    method, url, headers, body, *_ = CALLS[index]
    return method, url, {**HEADERS, **headers, "x-call": str(index)}, body


_MASK = re.compile(rb'"(uuid|parent_uuid|timestamp)":("[^"]*"|null|\d+)')


def _masked(events: list[llmflow.Event]) -> list[str]:
    return [_MASK.sub(rb'"\1":"*"', e.json_line()).decode() for e in events]


def _seen(response: httpx2.Response) -> list[Any]:
    return [response.status_code, response.headers.multi_items(), response.content.hex()]


def record_sync() -> tuple[list[str], list[list[Any]]]:
    """The masked event lines of every call through ``Transport``, and what the client got."""
    client = httpx2.Client(transport=Transport(httpx2.MockTransport(_handler)))
    seen = []
    with capture() as events:
        for index in range(len(CALLS)):
            method, url, headers, body = _request_args(index)
            seen.append(_seen(client.request(method, url, headers=headers, content=body)))
    return _masked(events), seen


def record_async() -> tuple[list[str], list[list[Any]]]:
    """:func:`record_sync` through ``AsyncTransport``."""

    async def run() -> list[list[Any]]:
        transport = AsyncTransport(httpx2.MockTransport(_handler))
        async with httpx2.AsyncClient(transport=transport) as client:
            seen = []
            for index in range(len(CALLS)):
                method, url, headers, body = _request_args(index)
                response = await client.request(method, url, headers=headers, content=body)
                seen.append(_seen(response))
            return seen

    with capture() as events:
        seen = asyncio.run(run())
    return _masked(events), seen


def _plain_answers() -> list[list[Any]]:
    """What an uninstrumented client gets for the same calls."""
    client = httpx2.Client(transport=httpx2.MockTransport(_handler))
    return [
        _seen(
            client.request(
                *_request_args(index)[:2],
                headers=_request_args(index)[2],
                content=_request_args(index)[3],
            )
        )
        for index in range(len(CALLS))
    ]


def test_the_sync_record_is_byte_identical_to_the_golden_one() -> None:
    lines, seen = record_sync()
    assert lines == json.loads(GOLDEN.read_text())["sync"]
    assert seen == _plain_answers()


def test_the_async_record_is_byte_identical_to_the_golden_one() -> None:
    lines, seen = record_async()
    assert lines == json.loads(GOLDEN.read_text())["async"]
    assert seen == _plain_answers()


if __name__ == "__main__":
    runtime = llmflow.Runtime()
    runtime.install()
    sync_lines, _ = record_sync()
    async_lines, _ = record_async()
    GOLDEN.write_text(json.dumps({"sync": sync_lines, "async": async_lines}, indent=1) + "\n")
    runtime.shutdown()
