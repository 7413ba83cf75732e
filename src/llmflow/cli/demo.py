"""The llmflow demo: a small trip-planning agent written with the real provider SDKs.

Run with ``python -m llmflow demo [PATH]``. The agent uses an ``openai`` and an
``anthropic`` client, each instrumented with one line (``llmflow.instrument``),
against :class:`llmflow.testing.FakeProvider` on 127.0.0.1, so it needs no
network and no API key. It asks the model, which calls a tool; the second call
meets a 429 that the SDK retries; a research call streams from Anthropic; a
prompt asking for a password is refused by a guardrail, which the SDK sees as
its own ``BadRequestError``. Everything is recorded as ATOF JSONL at PATH,
which the demo then validates and prints as a call tree.

The SDKs come with the ``cli`` extra (``pip install 'llmflow[cli]'``).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson

import llmflow
from llmflow import events, guardrails, intercepts
from llmflow._event import Event
from llmflow._runtime import Runtime
from llmflow._scope import mark, scope
from llmflow._tool import ToolExecutionResult, tool_call_execute
from llmflow._types import LlmRequest
from llmflow.atof import validate_stream
from llmflow.exporters import AtofFileExporter
from llmflow.testing import ErrorReply, FakeProvider, Reply, ToolCall

from .show import render_tree

__all__ = ["run_demo"]

MODEL = "gpt-4o-mini"
CLAUDE = "claude-haiku-demo"
API_KEY = "sk-demo-not-recorded"
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
WEATHER_TOOL = {
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


def _script(provider: FakeProvider) -> None:
    """What the fake models answer, in the order the agent asks."""
    provider.script(
        Reply(
            text=None,
            tool_calls=[ToolCall("get_weather", {"city": "Lisbon"}, id="call_weather_1")],
            usage={"input_tokens": 96, "output_tokens": 18},
        ),
        ErrorReply(429, message="Rate limit reached for gpt-4o-mini.", retry_after="0.01"),
        Reply(
            text="It is 19°C and sunny in Lisbon: pack a light jacket.",
            usage={"input_tokens": 131, "output_tokens": 14, "cached_tokens": 64},
        ),
        Reply(
            text="Three facts about Lisbon: it is old, sunny and walkable.",
            usage={"input_tokens": 22, "output_tokens": 12},
        ),
    )


# -- middleware ---------------------------------------------------------------------


def block_secrets(request: LlmRequest) -> str | None:
    """Guardrail: refuse prompts that ask for credentials."""
    text = str(request.content.get("messages", "")).lower()
    return "prompt asks for a password" if "password" in text else None


def tag_call(request: LlmRequest, ctx: Any) -> LlmRequest:
    """Request intercept: tell the provider which call this is (a header; the body is kept)."""
    return LlmRequest({**request.headers, "x-llmflow-call": ctx.name}, request.content)


def redact_emails(request: LlmRequest, ctx: Any) -> LlmRequest:
    """Sanitizer: hide e-mail addresses in the recorded copy of requests."""
    messages = [
        {**m, "content": _EMAIL.sub("<email>", m["content"])}
        if isinstance(m.get("content"), str)
        else m
        for m in request.content.get("messages", [])
    ]
    return LlmRequest(request.headers, {**request.content, "messages": messages})


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
    intercepts.register_llm_request("tag-call", 10, tag_call)
    guardrails.register_llm_sanitize_request("redact-emails", 10, redact_emails)


# -- the agent, written as users write agents ----------------------------------------


async def get_weather(args: dict[str, Any]) -> ToolExecutionResult:
    """The demo tool: a canned forecast, annotated for observers."""
    await asyncio.sleep(0.001)
    return ToolExecutionResult("19°C and sunny", annotation={"source": "demo-forecast"})


async def _plan_trip(gpt: Any, question: str) -> str:
    messages: list[Any] = [
        {"role": "system", "content": "You plan trips. Use tools for live data."},
        {"role": "user", "content": question},
    ]
    mark("user_input", data={"role": "user", "content": question})
    first = await gpt.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls or []:
        args = orjson.loads(call.function.arguments)
        result = await tool_call_execute(
            call.function.name, args, get_weather, tool_call_id=call.id
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    final = await gpt.chat.completions.create(model=MODEL, messages=messages)  # 429, retried
    return str(final.choices[0].message.content)


async def _research(claude: Any, topic: str) -> str:
    async with (
        scope(f"research:{topic}", "function"),
        claude.messages.stream(
            model=CLAUDE,
            max_tokens=200,
            messages=[{"role": "user", "content": f"Three facts about {topic}"}],
        ) as stream,
    ):
        return "".join([text async for text in stream.text_stream])


async def _workflow(base_url: str) -> list[str]:
    import anthropic
    import openai

    gpt = llmflow.instrument(
        openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=2)
    )
    claude = llmflow.instrument(anthropic.AsyncAnthropic(base_url=base_url, api_key=API_KEY))
    notes: list[str] = []
    async with scope("trip-planner", "agent", data={"user": "ana@example.com"}):
        notes.append(await _plan_trip(gpt, "Weather in Lisbon? Mail me at ana@example.com"))
        notes.append(await _research(claude, "Lisbon"))
        try:
            await gpt.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "What is my password?"}]
            )
        except openai.BadRequestError as exc:
            notes.append(f"refused by the SDK as {type(exc).__name__}: {exc.message}")
    await gpt.close()
    await claude.close()
    return notes


def run_demo(path: Path) -> int:
    """Run the demo agent, write its ATOF log to ``path``, print the call tree.

    Returns the process exit code: 0 when the log validates. Raises
    ``ImportError`` naming the ``cli`` extra when the SDKs are missing.
    """
    try:
        import anthropic  # noqa: F401
        import openai  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the demo uses the openai and anthropic SDKs ({exc.name} is missing): "
            "pip install 'llmflow[cli]'"
        ) from exc
    runtime = Runtime()
    previous = runtime.install()
    try:
        AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
        _register_middleware()
        with FakeProvider() as provider:
            _script(provider)
            notes = asyncio.run(_workflow(provider.base_url))
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
