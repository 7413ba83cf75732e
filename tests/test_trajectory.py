"""An agent turn recorded with the public API becomes an agent trajectory.

The assistant message's tool call id pairs with the tool scope whose
``category_profile.tool_call_id`` is that id (SPEC §2, §10), and the NVIDIA
ATOF→ATIF converter (``nvidia-nat-atif``) turns the log into a trajectory whose
agent step carries the tool call and its observation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import llmflow
from _llm_support import assert_valid_stream
from llmflow import LlmRequest, testing
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter

Run = Callable[[Coroutine[Any, Any, Any]], Any]
CODEC = OpenAIChatCodec()
MODEL = "test-model"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_RESULT = {"city": "Porto", "temp_c": 17, "sky": "cloudy"}


def completion(message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


async def provider(request: LlmRequest) -> dict[str, Any]:
    """Asks for get_weather (id ``call_1``) first, then answers from the tool message."""
    last = request.content["messages"][-1]
    if last["role"] == "tool":
        text = f"Porto: {json.loads(last['content'])['temp_c']}°C."
        return completion({"role": "assistant", "content": text}, "stop")
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'},
    }
    return completion({"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls")


async def get_weather(args: dict[str, Any]) -> dict[str, Any]:
    return {**TOOL_RESULT, "city": args["city"]}


async def agent_turn() -> str:
    """One hand-built turn: LLM asks for a tool, the tool runs, the LLM answers."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Answer with live data."},
        {"role": "user", "content": "Weather in Porto?"},
    ]
    headers = {"authorization": "Bearer sk-test", "content-type": "application/json"}

    def request(**extra: Any) -> LlmRequest:
        return LlmRequest(headers, {"model": MODEL, "messages": list(messages), **extra})

    async with llmflow.scope("weather-agent", "agent"):
        first = await llmflow.llm_call_execute(
            "openai.chat",
            request(tools=[WEATHER_TOOL]),
            provider,
            model_name=MODEL,
            codec=CODEC,
            response_codec=CODEC,
        )
        assistant = first["choices"][0]["message"]
        messages.append(assistant)
        for call in assistant["tool_calls"]:
            result = await llmflow.tool_call_execute(
                call["function"]["name"],
                json.loads(call["function"]["arguments"]),
                get_weather,
                tool_call_id=call["id"],
            )
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)}
            )
        final = await llmflow.llm_call_execute(
            "openai.chat", request(), provider, model_name=MODEL, codec=CODEC, response_codec=CODEC
        )
    return str(final["choices"][0]["message"]["content"])


def test_assistant_tool_call_id_pairs_with_the_tool_scope_between_the_two_llm_calls(
    run_async: Run,
) -> None:
    with testing.capture() as events:
        answer = run_async(agent_turn())
    assert answer == "Porto: 17°C."
    assert_valid_stream(events)
    assert llmflow.atof.validate_stream([e.to_json() for e in events]) == []

    def index(category: str, phase: str, nth: int = 0) -> int:
        found = [
            i
            for i, e in enumerate(events)
            if e.category == category and e.scope_category == phase and e.kind == "scope"
        ]
        return found[nth]

    first_end = events[index("llm", "end", 0)]
    (call,) = first_end.data["choices"][0]["message"]["tool_calls"]  # type: ignore[index]
    tool_start, tool_end = events[index("tool", "start")], events[index("tool", "end")]
    assert call["id"] == "call_1"
    assert tool_start.category_profile == tool_end.category_profile == {"tool_call_id": "call_1"}
    assert tool_start.name == call["function"]["name"] == "get_weather"
    assert tool_start.data == json.loads(call["function"]["arguments"])
    assert tool_end.data == TOOL_RESULT
    # The codec annotation of the assistant message names the same id.
    annotated = first_end.category_profile["annotated_response"]  # type: ignore[index]
    assert "call_1" in json.dumps(annotated)

    second_start = events[index("llm", "start", 1)]
    assert index("llm", "end", 0) < index("tool", "start") < index("tool", "end")
    assert index("tool", "end") < index("llm", "start", 1)
    assert first_end.timestamp_us <= tool_start.timestamp_us
    assert tool_end.timestamp_us <= second_start.timestamp_us
    # The second request carries the tool message answering call_1.
    tool_message = second_start.data["content"]["messages"][-1]  # type: ignore[index]
    assert tool_message["tool_call_id"] == "call_1"
    # Everything happened inside the agent scope; credentials never reached the log.
    (agent,) = [e for e in events if e.category == "agent" and e.scope_category == "start"]
    assert {e.parent_uuid for e in events if e.category in ("llm", "tool")} == {agent.uuid}
    assert all(b"sk-test" not in e.to_json() for e in events)


def _observations(trajectory: Any) -> dict[str, Any]:
    """``source_call_id`` → (agent step, observation content) over all steps."""
    paired: dict[str, Any] = {}
    for step in trajectory.steps:
        if step.observation is None:
            continue
        for result in step.observation.results:
            paired[result.source_call_id] = (step, result.content)
    return paired


def test_agent_turn_log_converts_to_an_atif_trajectory_with_the_tool_call_and_observation(
    run_async: Run, runtime: llmflow.Runtime, tmp_path: Path
) -> None:
    converter = pytest.importorskip("nat.atof.scripts.atof_to_atif_converter")
    path = tmp_path / "turn.atof.jsonl"
    AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    run_async(agent_turn())
    runtime.flush()
    assert llmflow.atof.validate_stream(path) == []

    trajectory = converter.convert_file(path)

    assert trajectory.agent.name == "weather-agent"
    assert trajectory.agent.model_name == MODEL
    step, content = _observations(trajectory)["call_1"]
    assert step.source == "agent"
    assert [(c.tool_call_id, c.function_name, c.arguments) for c in step.tool_calls] == [
        ("call_1", "get_weather", {"city": "Porto"})
    ]
    assert json.loads(content) == TOOL_RESULT
    final = [s for s in trajectory.steps if s.source == "agent"][-1]
    assert final.message == "Porto: 17°C."
    assert [s.message for s in trajectory.steps if s.source == "user"] == ["Weather in Porto?"]


def test_demo_log_converts_with_both_weather_calls_paired_to_their_observations(
    runtime: llmflow.Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    converter = pytest.importorskip("nat.atof.scripts.atof_to_atif_converter")
    from llmflow.cli.demo import run_demo

    path = tmp_path / "demo.jsonl"
    assert run_demo(path) == 0
    assert "validate_stream: valid" in capsys.readouterr().out
    # NAT's converter reads only OpenAI chat payloads on LLM ends (it raises
    # ShapeMismatchError on the demo's Anthropic stream); llmflow.atif covers all three.
    # Give it the log without the Anthropic call's pair.
    lines = path.read_bytes().splitlines()
    anthropic = {json.loads(x)["uuid"] for x in lines if b'"name":"anthropic.messages"' in x}
    openai_only = tmp_path / "demo-openai.jsonl"
    openai_only.write_bytes(
        b"".join(x + b"\n" for x in lines if json.loads(x)["uuid"] not in anthropic)
    )

    trajectory = converter.convert_file(openai_only)

    paired = _observations(trajectory)
    step, content = paired["call_weather_1"]
    assert step.source == "agent"
    assert [c.tool_call_id for c in step.tool_calls] == ["call_weather_1", "call_weather_2"]
    assert [c.function_name for c in step.tool_calls] == ["get_weather", "get_weather"]
    assert content == "19°C and sunny"
    assert paired["call_weather_2"] == (step, "16°C, light rain")
    # The demo installs and shuts down its own runtime; the fixture's is the default again.
    assert llmflow.get_runtime() is runtime and not runtime.closed
    with testing.capture() as events:
        llmflow.mark("still-recording")
    assert [e.name for e in events] == ["still-recording"]
