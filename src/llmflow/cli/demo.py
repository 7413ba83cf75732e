"""The llmflow demo: a small trip-planning agent written with the real provider SDKs.

Run with ``python -m llmflow demo [PATH]``. The agent uses an ``openai`` and an
``anthropic`` client, each instrumented with one line (``llmflow.instrument``),
against :class:`llmflow.testing.FakeProvider` on 127.0.0.1, so it needs no
network and no API key. It uses the middleware library as an application
would: ``middleware.retry`` (the SDKs' own ``max_retries=0``), a
``CostRecorder`` that prices every call, and a ``Budget`` on the agent's scope.

The model asks for two tools, which run concurrently; the next call meets a
429 that llmflow's retry waits out (one span, two attempts); a research call
streams from Anthropic; a packing-list call finds Anthropic overloaded until
the retry gives up; a prompt asking for a password is refused by a guardrail,
which the SDK sees as its own ``BadRequestError``. Everything is recorded as
ATOF JSONL at PATH, which the demo then validates and prints as a call tree.

The SDKs come with the ``cli`` extra (``pip install 'llmflow[cli]'``).
"""

from __future__ import annotations

import argparse
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
from llmflow.middleware import Budget, CostRecorder, retry
from llmflow.testing import ErrorReply, FakeProvider, Reply, ToolCall

from .show import render_tree

__all__ = ["register", "run", "run_demo"]

MODEL = "gpt-4o-mini"
CLAUDE = "claude-3-5-haiku-latest"
API_KEY = "sk-demo-not-recorded"
BUDGET_USD = 0.05
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
FORECASTS = {"Lisbon": "19°C and sunny", "Porto": "16°C, light rain"}


def _script(provider: FakeProvider) -> None:
    """What the fake models answer, in the order the agent asks."""
    provider.script(
        Reply(
            text=None,
            tool_calls=[
                ToolCall("get_weather", {"city": "Lisbon"}, id="call_weather_1"),
                ToolCall("get_weather", {"city": "Porto"}, id="call_weather_2"),
            ],
            usage={"input_tokens": 96, "output_tokens": 36},
        ),
        ErrorReply(429, message="Rate limit reached for gpt-4o-mini.", retry_after="0.02"),
        Reply(
            text="Lisbon is 19°C and sunny, Porto 16°C with light rain: pack a light jacket.",
            usage={"input_tokens": 158, "output_tokens": 21, "cached_tokens": 64},
        ),
        Reply(
            text="Three facts about Lisbon: it is old, sunny and walkable.",
            usage={"input_tokens": 22, "output_tokens": 12},
        ),
        *[ErrorReply(529, message="Overloaded") for _ in range(RETRY_ATTEMPTS)],
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


RETRY_ATTEMPTS = 3


def _register_middleware() -> CostRecorder:
    for kind in ("mark", "scope_start"):
        events.register_sanitizer(kind, "redact-emails", 10, redact_event_emails)
    events.register_metadata_injector("service", 10, lambda event: {"service": "trip-demo"})
    guardrails.register_llm_conditional_execution("block-secrets", 10, block_secrets)
    intercepts.register_llm_request("tag-call", 10, tag_call)
    guardrails.register_llm_sanitize_request("redact-emails", 10, redact_emails)
    # The SDK clients are built with max_retries=0: llmflow retries, in one span per call.
    policy = retry(RETRY_ATTEMPTS, base_delay=0.02, max_delay=0.5, deadline=10)
    intercepts.register_llm_execution("retry", 10, policy)
    intercepts.register_llm_stream_execution("retry", 10, policy.stream)
    return CostRecorder().register()  # cost.usd on every LLM end event


# -- the agent, written as users write agents ----------------------------------------


async def get_weather(args: dict[str, Any]) -> ToolExecutionResult:
    """The demo tool: a canned forecast, annotated for observers."""
    await asyncio.sleep(0.002)
    return ToolExecutionResult(FORECASTS[args["city"]], annotation={"source": "demo-forecast"})


async def _run_tool(call: Any) -> dict[str, Any]:
    args = orjson.loads(call.function.arguments)
    result = await tool_call_execute(call.function.name, args, get_weather, tool_call_id=call.id)
    return {"role": "tool", "tool_call_id": call.id, "content": result}


async def _plan_trip(gpt: Any, question: str) -> str:
    messages: list[Any] = [
        {"role": "system", "content": "You plan trips. Use tools for live data."},
        {"role": "user", "content": question},
    ]
    mark("user_input", data={"role": "user", "content": question})
    first = await gpt.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER_TOOL])
    message = first.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    # The model asked for two forecasts at once: run them concurrently.
    messages += await asyncio.gather(*[_run_tool(call) for call in message.tool_calls or []])
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


async def _packing_list(claude: Any) -> str:
    import anthropic

    try:
        reply = await claude.messages.create(
            model=CLAUDE,
            max_tokens=300,
            messages=[{"role": "user", "content": "A packing list for Lisbon and Porto"}],
        )
    except anthropic.APIStatusError as exc:  # still overloaded after every retry
        return f"no packing list: {type(exc).__name__} (HTTP {exc.status_code})"
    return str(reply.content[0].text)


async def _workflow(base_url: str) -> list[str]:
    import anthropic
    import openai

    gpt = llmflow.instrument(
        openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
    )
    claude = llmflow.instrument(
        anthropic.AsyncAnthropic(base_url=base_url, api_key=API_KEY, max_retries=0)
    )
    notes: list[str] = []
    async with scope("trip-planner", "agent", data={"user": "ana@example.com"}) as agent:
        budget = Budget(max_cost_usd=BUDGET_USD).register(scope=agent)
        notes.append(
            await _plan_trip(gpt, "Weather in Lisbon and Porto? Mail me at ana@example.com")
        )
        notes.append(await _research(claude, "Lisbon"))
        notes.append(await _packing_list(claude))
        try:
            await gpt.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "What is my password?"}]
            )
        except openai.BadRequestError as exc:
            notes.append(f"refused by the SDK as {type(exc).__name__}: {exc.message}")
        notes.append(
            f"budget: ${budget.spent_usd:.6f} of ${BUDGET_USD} spent "
            f"({budget.spent_tokens} tokens in {budget.calls} calls)"
        )
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
        costs = _register_middleware()
        with FakeProvider() as provider:
            _script(provider)
            notes = asyncio.run(_workflow(provider.base_url))
        runtime.flush()
        costs.deregister()
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


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow demo`` to its parser."""
    parser.add_argument("path", nargs="?", default="llmflow-demo.atof.jsonl")


def run(args: argparse.Namespace) -> int:
    """Run ``demo``; returns the exit code."""
    return run_demo(Path(args.path))
