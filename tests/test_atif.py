"""to_atif: an ATOF log as an ATIF-v1.7 trajectory (SPEC §12).

Every document is validated with the ``nat.atif`` models. The ``nat_*`` tests
run NVIDIA NAT's own ATOF->ATIF converter on the same logs and pin down what
llmflow's conversion adds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nat.atif import Trajectory
from nat.atof.extractors import register_anthropic_messages_v1
from nat.atof.io import read_jsonl
from nat.atof.scripts.atof_to_atif_converter import ShapeMismatchError, convert

import llmflow
from _agent_run import (
    CHAT_REQUEST,
    CHAT_RESPONSE,
    FINAL_ANSWER,
    QUESTION,
    record_agent_run,
    record_sample_call,
    sample_calls,
)
from llmflow import AtofParseError, Event, LlmRequest
from llmflow.atif import to_atif
from llmflow.codecs import OpenAIChatCodec
from llmflow.testing import capture


def valid(document: dict[str, Any]) -> Trajectory:
    """The document validated by NAT's ATIF models (raises if it does not fit)."""
    return Trajectory.model_validate(document)


def steps_of(document: dict[str, Any], source: str) -> list[dict[str, Any]]:
    return [step for step in document["steps"] if step["source"] == source]


def write_log(events: list[Event], path: Path) -> Path:
    path.write_text("".join(event.to_json().decode() + "\n" for event in events))
    return path


def returning(payload: dict[str, Any]) -> Any:
    async def provider(request: LlmRequest) -> dict[str, Any]:
        return payload

    return provider


CHAT_FINAL = {
    "id": "chatcmpl-2",
    "object": "chat.completion",
    "created": 2,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Umbrella."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 200, "completion_tokens": 3, "total_tokens": 203},
}


def record_chat_only_run() -> list[Event]:
    """An OpenAI-chat-only run NAT's converter can read: tool call, sub-agent, final answer."""
    codec = OpenAIChatCodec()

    async def run() -> None:
        planner = llmflow.push_scope("planner", "agent", data={"query": QUESTION})
        await llmflow.llm_call_execute(
            "openai.chat",
            LlmRequest(headers={}, content=CHAT_REQUEST),
            returning(CHAT_RESPONSE),
            codec=codec,
            response_codec=codec,
            metadata={"cost.usd": 0.001},
        )
        await llmflow.tool_call_execute(
            "get_weather", {"city": "Paris"}, lambda a: {"temp_c": 14}, tool_call_id="call_w1"
        )
        with llmflow.scope("researcher", "agent", data={"task": "double-check"}):
            await llmflow.llm_call_execute(
                "openai.chat",
                LlmRequest(
                    headers={},
                    content={
                        **CHAT_REQUEST,
                        "messages": [{"role": "user", "content": "double-check"}],
                    },
                ),
                returning(CHAT_FINAL),
                codec=codec,
                response_codec=codec,
            )
        await llmflow.llm_call_execute(
            "openai.chat",
            LlmRequest(headers={}, content=CHAT_REQUEST),
            returning(CHAT_FINAL),
            codec=codec,
            response_codec=codec,
        )
        llmflow.pop_scope(planner, data={"answer": "Take an umbrella."})

    with capture() as events:
        asyncio.run(run())
    return list(events)


# -- the trajectory -------------------------------------------------------------------------


def test_trajectory_of_an_agent_run_validates_against_nat_atif_models():
    document = to_atif(record_agent_run())
    trajectory = valid(document)
    assert trajectory.schema_version == "ATIF-v1.7"
    assert trajectory.agent.name == "planner"
    assert [step.step_id for step in trajectory.steps] == list(range(1, len(trajectory.steps) + 1))


def test_the_agents_start_data_is_the_first_user_step_and_its_answer_the_last_agent_message():
    document = to_atif(record_agent_run())
    first = document["steps"][0]
    assert (first["source"], first["message"]) == ("user", QUESTION)
    assert steps_of(document, "agent")[-1]["message"] == FINAL_ANSWER


def test_a_final_answer_not_said_by_an_llm_call_is_kept_as_the_last_agent_step():
    document = to_atif(record_chat_only_run())
    last = document["steps"][-1]
    assert (last["source"], last["message"], last["llm_call_count"]) == (
        "agent",
        "Take an umbrella.",
        0,
    )


def test_every_llm_step_has_metrics_with_cached_tokens_and_cost():
    document = to_atif(record_agent_run())
    chat = steps_of(document, "agent")[0]
    assert chat["model_name"] == "gpt-4o-2024-08-06"
    assert chat["metrics"] == {
        "prompt_tokens": 120,
        "completion_tokens": 15,
        "cached_tokens": 80,
        "cost_usd": 0.0012,
        "extra": {"duration_us": chat["metrics"]["extra"]["duration_us"]},
    }
    final = steps_of(document, "agent")[-1]
    assert final["metrics"]["extra"]["reasoning_tokens"] == 7


def test_final_metrics_add_up_every_call_including_the_sub_agents():
    document = to_atif(record_agent_run())
    final = valid(document).final_metrics
    assert final is not None
    # chat 120 + anthropic (30+10) + anthropic 50 + responses 40
    assert final.total_prompt_tokens == 120 + 40 + 50 + 40
    assert final.total_completion_tokens == 15 + 20 + 6 + 19
    assert final.total_cached_tokens == 80 + 10 + 0
    assert final.total_cost_usd == pytest.approx(0.0012 + 0.0005 + 0.0003)
    assert final.total_steps == len(document["steps"])
    assert final.extra == {
        "total_reasoning_tokens": 7,
        "llm_calls": 4,
        "tool_calls": 2,
        "errors": 0,
    }


def test_a_nested_agent_scope_is_an_embedded_sub_agent_trajectory():
    document = to_atif(record_agent_run())
    (researcher,) = document["subagent_trajectories"]
    sub = valid(researcher)
    assert sub.agent.name == "researcher"
    assert sub.session_id == document["session_id"]  # run-scoped: shared with the parent
    assert sub.agent.model_name == "claude-sonnet-4-5-20250929"
    (delegation,) = [
        step
        for step in document["steps"]
        if step.get("tool_calls") and step["tool_calls"][0]["function_name"] == "researcher"
    ]
    (result,) = delegation["observation"]["results"]
    assert result["subagent_trajectory_ref"] == [{"trajectory_id": sub.trajectory_id}]
    assert result["content"] == "Yes, it is raining."
    assert delegation["llm_call_count"] == 0
    sub_steps = researcher["steps"]
    assert sub_steps[0]["message"] == "Is it raining in Paris?"
    thinking = [s for s in sub_steps if s.get("reasoning_content")]
    assert thinking[0]["reasoning_content"] == "I should look it up."
    assert researcher["final_metrics"]["total_prompt_tokens"] == 90


def test_an_agent_called_through_a_tool_is_referenced_from_the_tool_observation():
    codec = OpenAIChatCodec()
    asks_helper = {
        **CHAT_RESPONSE,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_h",
                            "type": "function",
                            "function": {"name": "helper", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }

    async def run() -> None:
        with llmflow.scope("boss", "agent"):
            await llmflow.llm_call_execute(
                "openai.chat",
                LlmRequest(headers={}, content=CHAT_REQUEST),
                returning(asks_helper),
                codec=codec,
                response_codec=codec,
            )

            async def helper(args: Any) -> str:
                with llmflow.scope("helper-agent", "agent"):
                    await llmflow.llm_call_execute(
                        "openai.chat",
                        LlmRequest(headers={}, content=CHAT_REQUEST),
                        returning(CHAT_FINAL),
                        codec=codec,
                        response_codec=codec,
                    )
                return "Umbrella."

            await llmflow.tool_call_execute("helper", {}, helper, tool_call_id="call_h")

    with capture() as events:
        asyncio.run(run())
    document = to_atif(list(events))
    valid(document)
    (step,) = [s for s in steps_of(document, "agent") if s.get("observation")]
    (result,) = step["observation"]["results"]
    assert result["source_call_id"] == "call_h"
    assert result["content"] == "Umbrella."
    (sub,) = document["subagent_trajectories"]
    assert result["subagent_trajectory_ref"] == [{"trajectory_id": sub["trajectory_id"]}]


def test_tool_observations_are_matched_by_tool_call_id_not_by_order():
    codec = OpenAIChatCodec()
    two_calls = {
        **CHAT_RESPONSE,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{c}",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": f'{{"city": "{c}"}}'},
                        }
                        for c in ("a", "b")
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }

    async def run() -> None:
        with llmflow.scope("agent", "agent"):
            await llmflow.llm_call_execute(
                "openai.chat",
                LlmRequest(headers={}, content=CHAT_REQUEST),
                returning(two_calls),
                codec=codec,
                response_codec=codec,
            )
            await llmflow.llm_call_execute(  # an unrelated call in between
                "openai.chat",
                LlmRequest(headers={}, content=CHAT_REQUEST),
                returning(CHAT_FINAL),
                codec=codec,
                response_codec=codec,
            )
            for city in ("b", "a"):  # results come back in the other order
                await llmflow.tool_call_execute(
                    "get_weather",
                    {"city": city},
                    lambda a: f"sunny in {a['city']}",
                    tool_call_id=f"call_{city}",
                )

    with capture() as events:
        asyncio.run(run())
    document = to_atif(list(events))
    valid(document)
    asking = steps_of(document, "agent")[0]
    results = {r["source_call_id"]: r["content"] for r in asking["observation"]["results"]}
    assert results == {"call_a": "sunny in a", "call_b": "sunny in b"}
    assert "observation" not in steps_of(document, "agent")[1]


def test_a_tool_no_model_asked_for_is_a_step_that_makes_the_call_itself():
    with capture() as events:
        with llmflow.scope("script", "agent"):
            llmflow.tool_call_execute_sync("cleanup", {"all": True}, lambda a: "done")
    document = to_atif(list(events))
    valid(document)
    (step,) = document["steps"]
    assert step["llm_call_count"] == 0
    (call,) = step["tool_calls"]
    assert (call["function_name"], call["arguments"]) == ("cleanup", {"all": True})
    assert step["observation"]["results"][0] == {
        "source_call_id": call["tool_call_id"],
        "content": "done",
    }


def test_payloads_without_annotations_are_decoded_with_the_codecs():
    annotated = to_atif(record_agent_run())
    decoded = to_atif(record_agent_run(annotate_responses=False))
    valid(decoded)

    def shape(document: dict[str, Any]) -> list[Any]:
        return [
            (
                s["source"],
                s["message"],
                s.get("metrics", {}).get("prompt_tokens"),
                [c["function_name"] for c in s.get("tool_calls") or ()],
            )
            for s in document["steps"]
        ]

    assert shape(decoded) == shape(annotated)
    assert decoded["final_metrics"]["total_prompt_tokens"] == 250


def test_a_failed_llm_call_is_an_agent_step_marked_as_an_error():
    def provider(request: LlmRequest) -> Any:
        raise ConnectionError("reset by peer")

    with capture() as events:
        with llmflow.scope("agent", "agent"), pytest.raises(ConnectionError):
            llmflow.llm_call_execute_sync(
                "openai.chat",
                LlmRequest(headers={}, content=CHAT_REQUEST),
                provider,
                codec=OpenAIChatCodec(),
            )
    document = to_atif(list(events))
    valid(document)
    (step,) = steps_of(document, "agent")
    assert step["extra"]["error"] == {"type": "ConnectionError", "message": "reset by peer"}
    assert step["extra"]["invocation"]["status"] == "error"
    assert document["final_metrics"]["extra"]["errors"] == 1


def test_marks_with_a_role_become_steps_of_that_source():
    with capture() as events:
        with llmflow.scope("chat", "agent"):
            llmflow.mark("user.turn", data={"role": "user", "content": "hello"})
            llmflow.mark("checkpoint", data={"n": 1})
    document = to_atif(list(events))
    valid(document)
    assert [(s["source"], s["message"]) for s in document["steps"]] == [
        ("user", "hello"),
        ("system", "checkpoint"),
    ]
    assert document["steps"][1]["extra"]["mark"]["data"] == {"n": 1}


def test_to_atif_reads_a_jsonl_path_dicts_and_events_alike(tmp_path):
    events = record_agent_run()
    path = write_log(events, tmp_path / "run.jsonl")
    from_events = to_atif(events)
    assert to_atif(path) == from_events
    assert to_atif(str(path)) == from_events
    assert to_atif([event.to_dict() for event in events]) == from_events


def test_log_order_does_not_matter():
    events = record_agent_run()
    assert to_atif(list(reversed(events))) == to_atif(events)


def test_several_top_level_scopes_share_one_trajectory_of_their_steps():
    codec = OpenAIChatCodec()
    with capture() as events:
        for _ in range(2):
            llmflow.llm_call_execute_sync(
                "openai.chat",
                LlmRequest(headers={}, content=CHAT_REQUEST),
                lambda r: CHAT_FINAL,
                codec=codec,
                response_codec=codec,
            )
    document = to_atif(list(events))
    valid(document)
    assert document["agent"]["name"] == "llmflow"
    assert len(steps_of(document, "agent")) == 2
    assert document["final_metrics"]["total_prompt_tokens"] == 400


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(TypeError, match="events"):
        to_atif(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="events"):
        to_atif([object()])  # type: ignore[list-item]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"kind": "scope"}\n')
    with pytest.raises(AtofParseError) as caught:
        to_atif(broken)
    assert caught.value.line == 1


def test_an_empty_log_is_an_empty_valid_trajectory():
    document = to_atif([])
    valid(document)
    assert document["steps"] == []
    assert document["final_metrics"]["total_steps"] == 0


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    plan=st.lists(
        st.tuples(st.sampled_from(["llm", "tool", "agent", "mark"]), st.integers(0, 3)),
        max_size=10,
    )
)
def test_any_nesting_of_agents_tools_and_calls_gives_a_valid_trajectory(plan):
    codec = OpenAIChatCodec()
    with capture() as events:
        root = llmflow.push_scope("root", "agent", data="go")
        stack = [root]
        for index, (kind, depth) in enumerate(plan):
            while len(stack) > 1 + min(depth, len(stack) - 1):
                llmflow.pop_scope(stack.pop())
            if kind == "agent":
                stack.append(llmflow.push_scope(f"agent{index}", "agent", data={"i": index}))
            elif kind == "llm":
                llmflow.llm_call_execute_sync(
                    "openai.chat",
                    LlmRequest(headers={}, content=CHAT_REQUEST),
                    lambda r: CHAT_RESPONSE,
                    codec=codec,
                    response_codec=codec,
                )
            elif kind == "tool":
                llmflow.tool_call_execute_sync(
                    "get_weather", {"city": "x"}, lambda a: 1, tool_call_id="call_w1"
                )
            else:
                llmflow.mark(f"m{index}", data={"i": index})
        while stack:
            llmflow.pop_scope(stack.pop())
    document = to_atif(list(events))
    valid(document)
    calls = sum(kind == "llm" for kind, _ in plan)
    assert document["final_metrics"]["extra"]["llm_calls"] == calls
    assert document["final_metrics"]["total_prompt_tokens"] == 120 * calls


# -- what NAT's own converter does with the same logs --------------------------------------


@pytest.fixture
def quiet_nat(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="nat")


def test_nat_converter_fails_on_anthropic_and_responses_payloads_that_llmflow_reads(
    tmp_path, quiet_nat
):
    path = write_log(record_agent_run(), tmp_path / "run.jsonl")
    with pytest.raises(ShapeMismatchError):
        convert(read_jsonl(path))
    register_anthropic_messages_v1()  # even with NAT's Anthropic extractor registered
    with pytest.raises(ValueError):
        convert(read_jsonl(path))
    valid(to_atif(path))


def test_nat_converter_on_a_chat_only_run_lacks_what_llmflow_adds(tmp_path, quiet_nat):
    events = record_chat_only_run()
    path = write_log(events, tmp_path / "run.jsonl")
    theirs = convert(read_jsonl(path)).model_dump(exclude_none=True, mode="json")
    ours = to_atif(path)
    valid(ours)
    # metrics: none per step, no totals
    assert all("metrics" not in step for step in theirs["steps"])
    assert "final_metrics" not in theirs
    assert steps_of(ours, "agent")[0]["metrics"]["cached_tokens"] == 80
    assert ours["final_metrics"]["total_cost_usd"] == pytest.approx(0.001)
    # model: the requested one (or the call name) instead of the model that answered
    assert theirs["agent"]["model_name"] in ("gpt-4o", "openai.chat")
    assert ours["agent"]["model_name"] == "gpt-4o-2024-08-06"
    # the final answer of the agent scope is dropped
    assert all(step["message"] != "Take an umbrella." for step in theirs["steps"])
    assert ours["steps"][-1]["message"] == "Take an umbrella."
    # the sub-agent is flattened into the parent's steps, not nested
    assert "subagent_trajectories" not in theirs
    assert [s["message"] for s in theirs["steps"]].count("Umbrella.") == 2
    assert [sub["agent"]["name"] for sub in ours["subagent_trajectories"]] == ["researcher"]
    assert [s["message"] for s in ours["steps"]].count("Umbrella.") == 1


# -- an agent loop over the real provider SDKs, through llmflow.instrument ----------------------


def test_an_instrumented_sdk_agent_loop_becomes_a_trajectory():
    import anthropic
    import openai

    from llmflow.testing import FakeProvider
    from llmflow.testing._fake_provider import Reply, ToolCall

    with FakeProvider() as fake, capture() as events:
        fake.script(
            Reply(
                text=None,
                tool_calls=[ToolCall("get_weather", {"city": "Oslo"}, id="call_9")],
                usage={"input_tokens": 30, "output_tokens": 4, "cached_tokens": 10},
            ),
            Reply(text="Snow.", usage={"input_tokens": 45, "output_tokens": 8}, model="claude-x"),
            Reply(text="Wear boots.", usage={"input_tokens": 70, "output_tokens": 3}),
        )
        oai = llmflow.instrument(
            openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        claude = llmflow.instrument(
            anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0)
        )
        agent = llmflow.push_scope("travel", "agent", data={"query": "Oslo today?"})
        messages: Any = [{"role": "user", "content": "Oslo today?"}]
        first = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
        call = first.choices[0].message.tool_calls[0]
        with llmflow.scope("forecaster", "agent", data="forecast for Oslo"):
            forecast = claude.messages.create(
                model="claude-x",
                max_tokens=50,
                messages=[{"role": "user", "content": "forecast for Oslo"}],
            )
        weather = llmflow.tool_call_execute_sync(
            call.function.name,
            {"city": "Oslo"},
            lambda a: forecast.content[0].text,
            tool_call_id=call.id,
        )
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": weather},
        ]
        final = oai.chat.completions.create(model="gpt-4o-mini", messages=messages)
        llmflow.pop_scope(agent, data={"answer": final.choices[0].message.content})
    document = to_atif(list(events))
    valid(document)
    agent_steps = steps_of(document, "agent")
    asking = agent_steps[0]
    assert asking["tool_calls"][0]["tool_call_id"] == "call_9"
    assert asking["observation"]["results"][0]["content"] == "Snow."
    assert asking["metrics"]["prompt_tokens"] == 30
    assert asking["metrics"]["cached_tokens"] == 10
    assert agent_steps[-1]["message"] == "Wear boots."
    (forecaster,) = document["subagent_trajectories"]
    assert forecaster["steps"][-1]["message"] == "Snow."
    assert document["final_metrics"]["total_prompt_tokens"] == 30 + 45 + 70


@pytest.mark.parametrize(
    ("codec", "request_body", "response"),
    [pytest.param(*call[1:], id=call[0]) for call in sample_calls()],
)
def test_every_codec_sample_gives_a_valid_trajectory_with_its_output(codec, request_body, response):
    document = to_atif(record_sample_call(codec, request_body, response))
    trajectory = valid(document)
    (step,) = [s for s in trajectory.steps if s.llm_call_count == 1]
    annotated = codec().decode_response(response)
    assert step.message == (annotated.text if isinstance(step.message, str) else step.message)
    assert [c.tool_call_id for c in step.tool_calls or ()] == [c.id for c in annotated.tool_calls]
    if annotated.usage is not None and annotated.usage.input_tokens is not None:
        assert step.metrics is not None
        assert step.metrics.prompt_tokens == annotated.usage.input_tokens


def test_a_failed_tool_is_an_observation_saying_what_failed():
    def broken(args: Any) -> Any:
        raise PermissionError("no access to /etc")

    with capture() as events, llmflow.scope("agent", "agent"), pytest.raises(PermissionError):
        llmflow.tool_call_execute_sync("read_file", {"path": "/etc"}, broken, tool_call_id="c1")
    document = to_atif(list(events))
    valid(document)
    (result,) = document["steps"][0]["observation"]["results"]
    assert result["content"] == "PermissionError: no access to /etc"
    assert result["extra"]["error"] == {"type": "PermissionError", "message": "no access to /etc"}
    assert document["final_metrics"]["extra"]["errors"] == 1


def test_a_dict_that_is_not_atof_is_reported_with_its_position():
    events = [event.to_dict() for event in record_agent_run()]
    del events[3]["timestamp"]
    with pytest.raises(AtofParseError) as caught:
        to_atif(events)
    assert caught.value.line == 4
