"""The llmflow demo: a small trip-planning agent against a deterministic provider.

Run with ``python -m llmflow demo [PATH]``. It registers a guardrail, request
and execution intercepts and sanitizers, then runs an agent turn (the model
asks for a tool, the tool answers, the model replies), concurrent streamed
research calls, a call the guardrail rejects and a call that fails after a
retry. Everything is recorded as ATOF JSONL at PATH, which the demo then
validates and prints as a call tree.

The provider is an in-process function that returns OpenAI Chat Completions
shaped bodies, so the demo needs no network and no API key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from llmflow import events, guardrails, intercepts
from llmflow._errors import GuardrailRejected
from llmflow._event import Event
from llmflow._llm import llm_call_execute, llm_stream_call_execute
from llmflow._runtime import Runtime
from llmflow._scope import mark, scope
from llmflow._tool import ToolExecutionResult, tool_call_execute
from llmflow._types import LlmRequest
from llmflow.atof import validate_stream
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter

from .show import render_tree

__all__ = ["run_demo"]

MODEL = "demo-gpt-mini"
CODEC = OpenAIChatCodec()
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


# -- a deterministic OpenAI-shaped provider ------------------------------------------


def _completion(call_id: int, message: dict[str, Any], finish: str, prompt: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-demo-{call_id}",
        "object": "chat.completion",
        "created": 1_763_700_000,
        "model": MODEL,
        "system_fingerprint": "fp_demo",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": 12,
            "total_tokens": prompt + 12,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


class DemoProvider:
    """Answers like a chat model: asks for the weather tool, then replies."""

    def __init__(self) -> None:
        self.calls = 0
        self.flaky_failures = 0

    async def chat(self, request: LlmRequest) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(0.002)
        messages = request.content["messages"]
        last = messages[-1]
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4 + 8
        if "flaky" in str(last.get("content")):
            self.flaky_failures += 1
            raise TimeoutError("upstream timed out after 30 s")
        if last["role"] == "tool":
            text = f"It is {last['content']} in Lisbon: pack a light jacket."
            return _completion(self.calls, {"role": "assistant", "content": text}, "stop", prompt)
        if request.content.get("tools"):
            call = {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return _completion(self.calls, message, "tool_calls", prompt)
        return _completion(
            self.calls, {"role": "assistant", "content": "Here is a plan."}, "stop", prompt
        )

    async def chat_stream(self, request: LlmRequest) -> AsyncIterator[dict[str, Any]]:
        topic = request.content["messages"][-1]["content"]
        words = f"Three facts about {topic}: old, sunny, walkable.".split()
        base = {
            "id": f"chatcmpl-demo-stream-{topic}",
            "object": "chat.completion.chunk",
            "created": 1_763_700_000,
            "model": MODEL,
        }
        yield {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
        for word in words:
            await asyncio.sleep(0)
            yield {
                **base,
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 9, "completion_tokens": 8, "total_tokens": 17},
        }


# -- middleware ---------------------------------------------------------------------


def block_secrets(request: LlmRequest) -> str | None:
    """Guardrail: refuse prompts that ask for credentials."""
    text = str(request.content.get("messages", "")).lower()
    return "prompt asks for a password" if "password" in text else None


def tag_and_cap(request: LlmRequest, ctx: Any) -> LlmRequest:
    """Request intercept: tag the call and cap max_tokens at 256."""
    content = {**request.content, "max_tokens": min(request.content.get("max_tokens", 256), 256)}
    return LlmRequest({**request.headers, "x-llmflow-demo": ctx.name}, content)


async def retry_timeouts(request: LlmRequest, call_next: Any) -> Any:
    """Execution intercept: retry once on TimeoutError."""
    try:
        return await call_next(request)
    except TimeoutError:
        mark("retry", data={"reason": "TimeoutError", "attempt": 2})
        return await call_next(request)


def redact_emails(request: LlmRequest, ctx: Any) -> LlmRequest:
    """Sanitizer: hide e-mail addresses in the recorded copy of requests."""
    messages = [
        {**m, "content": _EMAIL.sub("<email>", m["content"])}
        if isinstance(m.get("content"), str)
        else m
        for m in request.content.get("messages", [])
    ]
    return LlmRequest(request.headers, {**request.content, "messages": messages})


def drop_fingerprint(response: Any, ctx: Any) -> Any:
    """Sanitizer: drop provider-internal fields from the recorded response."""
    if isinstance(response, dict):
        return {k: v for k, v in response.items() if k != "system_fingerprint"}
    return response


def redact_event_emails(event: Event) -> dict[str, Any] | None:
    """Event sanitizer: the same redaction for marks and scope payloads."""
    if event.data is None:
        return None
    text = orjson.dumps(event.data).decode()
    if not _EMAIL.search(text):
        return None
    return {"data": orjson.loads(_EMAIL.sub("<email>", text))}


def _register_middleware() -> None:
    for kind in ("mark", "scope_start"):
        events.register_sanitizer(kind, "redact-emails", 10, redact_event_emails)
    events.register_metadata_injector("service", 10, lambda event: {"service": "trip-demo"})
    guardrails.register_llm_conditional_execution("block-secrets", 10, block_secrets)
    intercepts.register_llm_request("tag-and-cap", 10, tag_and_cap)
    intercepts.register_llm_execution("retry-timeouts", 10, retry_timeouts)
    guardrails.register_llm_sanitize_request("redact-emails", 10, redact_emails)
    guardrails.register_llm_sanitize_response("drop-fingerprint", 10, drop_fingerprint)


# -- the workflow -------------------------------------------------------------------


def _request(messages: list[dict[str, Any]], **extra: Any) -> LlmRequest:
    headers = {"authorization": "Bearer sk-demo-not-recorded", "content-type": "application/json"}
    return LlmRequest(headers, {"model": MODEL, "messages": messages, **extra})


async def get_weather(args: dict[str, Any]) -> ToolExecutionResult:
    """The demo tool: a canned forecast, annotated for observers."""
    await asyncio.sleep(0.001)
    return ToolExecutionResult("19°C and sunny", annotation={"source": "demo-forecast"})


async def _agent_turn(provider: DemoProvider, question: str) -> str:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You plan trips. Use tools for live data."},
        {"role": "user", "content": question},
    ]
    mark("user_input", data={"role": "user", "content": question})
    first = await llm_call_execute(
        "openai.chat",
        _request(messages, tools=[_WEATHER_TOOL]),
        provider.chat,
        model_name=MODEL,
        response_codec=CODEC,
    )
    assistant = first["choices"][0]["message"]
    messages.append(assistant)
    for call in assistant.get("tool_calls") or []:
        args = orjson.loads(call["function"]["arguments"])
        result = await tool_call_execute(
            call["function"]["name"], args, get_weather, tool_call_id=call["id"]
        )
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    final = await llm_call_execute(
        "openai.chat", _request(messages), provider.chat, model_name=MODEL, response_codec=CODEC
    )
    return str(final["choices"][0]["message"]["content"])


async def _research(provider: DemoProvider, topic: str) -> str:
    async with scope(f"research:{topic}", "function", attributes=["parallel"]):
        stream = await llm_stream_call_execute(
            "openai.chat.stream",
            _request([{"role": "user", "content": topic}], stream=True),
            provider.chat_stream,
            model_name=MODEL,
            response_codec=CODEC,
        )
        return "".join(
            [
                choice["delta"].get("content") or ""
                async for chunk in stream
                for choice in chunk.get("choices", [])
            ]
        )


async def _workflow(provider: DemoProvider) -> list[str]:
    notes: list[str] = []
    async with scope("trip-planner", "agent", data={"user": "ana@example.com"}):
        notes.append(await _agent_turn(provider, "Weather in Lisbon? Mail me at ana@example.com"))
        facts = await asyncio.gather(
            *(_research(provider, topic) for topic in ("Lisbon", "Porto", "Sintra"))
        )
        notes.extend(facts)
        try:
            await llm_call_execute(
                "openai.chat",
                _request([{"role": "user", "content": "What is my password?"}]),
                provider.chat,
                model_name=MODEL,
            )
        except GuardrailRejected as exc:
            notes.append(f"rejected: {exc.reason}")
        try:
            await llm_call_execute(
                "openai.chat",
                _request([{"role": "user", "content": "a flaky question"}]),
                provider.chat,
                model_name=MODEL,
                response_codec=CODEC,
            )
        except TimeoutError as exc:
            notes.append(f"failed after retry: {exc}")
    return notes


def run_demo(path: Path) -> int:
    """Run the demo workflow, write its ATOF log to ``path``, print a summary.

    Returns the process exit code: 0 when the log validates.
    """
    runtime = Runtime()
    previous = runtime.install()
    try:
        exporter = AtofFileExporter(path, mode="overwrite")
        exporter.register(runtime=runtime)
        _register_middleware()
        provider = DemoProvider()
        notes = asyncio.run(_workflow(provider))
        runtime.flush()
        diagnostics = runtime.diagnostics()
    finally:
        runtime.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    violations = validate_stream(path)
    lines = path.read_text(encoding="utf-8").count("\n")
    print(f"llmflow demo: wrote {lines} ATOF events to {path.resolve()}")
    print()
    print(render_tree(path))
    print()
    for note in notes:
        print(f"  · {note.strip()}")
    print()
    print(f"validate_stream: {'valid' if not violations else f'{len(violations)} violation(s)'}")
    for violation in violations:
        print(f"  {violation}")
    print(f"diagnostics: {diagnostics.to_dict()}")
    return 0 if not violations else 1
