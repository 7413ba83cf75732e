"""``replay``: re-run an agent offline from its recorded ATOF log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from _cost_support import (
    ANTHROPIC,
    CHAT,
    RESPONSES,
    anthropic_events,
    anthropic_request,
    anthropic_response,
    chat_chunks,
    chat_request,
    chat_response,
    drain,
    ends,
    responses_response,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import LlmRequest, testing
from llmflow.exporters import AtofFileExporter
from llmflow.middleware import ReplayError, ReplayMissError, replay
from llmflow.middleware._shapes import ReplayedStream, StreamTap, rechunk, tap


class ScriptedProvider:
    """Answers by the last user message; ``down`` makes every call fail like a dead network."""

    def __init__(self) -> None:
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("provider unreachable (offline run)")

    async def chat(self, request: LlmRequest) -> Any:
        self._check()
        last = request.content["messages"][-1]
        if last["role"] == "tool":
            return chat_response(f"Paris is {json.loads(last['content'])['sky']}.")
        return chat_response(None, tool_call=True)

    def claude_stream(self, request: LlmRequest) -> Any:
        self._check()

        async def events() -> Any:
            for event in anthropic_events():
                yield event

        return events()


def weather(args: Any) -> Any:
    return {"sky": "sunny", "city": args["city"]}


async def agent(provider: ScriptedProvider) -> list[Any]:
    """A small agent: plan (tool call) → tool → answer → streamed critique."""
    answers: list[Any] = []
    with llmflow.scope("trip-agent", category="agent"):
        plan = await llmflow.llm_call_execute(
            "plan", chat_request(), provider.chat, codec=CHAT, response_codec=CHAT
        )
        answers.append(plan)
        call = plan["choices"][0]["message"]["tool_calls"][0]
        result = await llmflow.tool_call_execute(
            "get_weather",
            json.loads(call["function"]["arguments"]),
            weather,
            tool_call_id=call["id"],
        )
        follow_up = chat_request()
        follow_up.content["messages"] += [
            plan["choices"][0]["message"],
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
        ]
        answer = await llmflow.llm_call_execute(
            "answer", follow_up, provider.chat, codec=CHAT, response_codec=CHAT
        )
        answers.append(answer)
        stream = await llmflow.llm_stream_call_execute(
            "critique",
            anthropic_request(answer["choices"][0]["message"]["content"]),
            provider.claude_stream,
            codec=ANTHROPIC,
            response_codec=ANTHROPIC,
        )
        answers.append(await drain(stream))
    return answers


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The tree: each span's name and category under its parent's name, in start order."""
    names = {e["uuid"]: e["name"] for e in events if e.get("scope_category") == "start"}
    return [
        (e["name"], e["category"], names.get(e["parent_uuid"]), tuple(e["attributes"]))
        for e in events
        if e.get("scope_category") == "start"
    ]


def fold(chunks: list[Any]) -> Any:
    accumulator = ANTHROPIC.stream_accumulator()
    for chunk in chunks:
        accumulator.collect(chunk)
    return accumulator.finalize()


@pytest.fixture
def recorded(tmp_path: Path, runtime: llmflow.Runtime, run_async: Any) -> tuple[Path, Any]:
    path = tmp_path / "run.jsonl"
    name = AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    provider = ScriptedProvider()
    answers = run_async(agent(provider))
    runtime.flush()
    runtime.remove_exporter(name)
    assert provider.calls == 3
    return path, answers


@pytest.mark.parametrize("match", ["request", "order"])
def test_an_agent_rerun_offline_gives_the_same_answers_and_tree(
    recorded: tuple[Path, Any], match: str, run_async: Any
) -> None:
    path, live_answers = recorded
    provider = ScriptedProvider()
    provider.down = True
    replayer = replay(path, match=match).register()  # type: ignore[arg-type]
    with testing.capture() as events:
        answers = run_async(agent(provider))
    assert provider.calls == 0
    assert answers[:2] == live_answers[:2]
    assert fold(answers[2]) == fold(live_answers[2])  # the stream, re-chunked from the log
    assert len(answers[2]) > 3
    recorded_events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    replayed_events = [e.to_dict() for e in events]
    assert shape(replayed_events) == shape(recorded_events)
    llm_ends = ends(events)
    assert len(llm_ends) == 3
    assert all(e.metadata["replay.source"].startswith(f"{path}:") for e in llm_ends)
    originals = [
        e for e in recorded_events if e["category"] == "llm" and e["scope_category"] == "end"
    ]
    for original, again in zip(originals, llm_ends, strict=True):
        assert again.data == original["data"]
        assert again.category_profile == original["category_profile"]
    assert (replayer.recorded, replayer.used, replayer.remaining) == (3, 3, 0)


def test_replay_source_names_the_line_of_the_recorded_end(
    recorded: tuple[Path, Any], run_async: Any
) -> None:
    path, _ = recorded
    replay(path).register()
    with testing.capture() as events:
        run_async(agent(ScriptedProvider()))
    lines = path.read_bytes().splitlines()
    for end in ends(events):
        number = int(end.metadata["replay.source"].rsplit(":", 1)[1])
        line = orjson.loads(lines[number - 1])
        assert (line["name"], line["scope_category"]) == (end.name, "end")


def test_a_miss_is_an_error_naming_the_request(recorded: tuple[Path, Any]) -> None:
    path, _ = recorded
    replay(path).register()
    provider = ScriptedProvider()
    with pytest.raises(ReplayMissError) as caught:
        llmflow.llm_call_execute_sync(
            "new", chat_request("Is it raining in Oslo?"), provider.chat, codec=CHAT
        )
    message = str(caught.value)
    assert "'gpt-4o'" in message and "Is it raining in Oslo?" in message
    assert str(path) in message and "3 calls recorded" in message
    assert provider.calls == 0


def test_a_miss_makes_the_real_call_when_asked(recorded: tuple[Path, Any], run_async: Any) -> None:
    path, _ = recorded
    replay(path, on_miss="call").register()
    provider = ScriptedProvider()
    with testing.capture() as events:
        result = run_async(
            llmflow.llm_call_execute(
                "new", chat_request("Is it raining in Oslo?"), provider.chat, codec=CHAT
            )
        )
    assert result["choices"][0]["message"]["tool_calls"]
    assert provider.calls == 1
    (end,) = ends(events)
    assert "replay.source" not in (end.metadata or {})


def test_order_matching_runs_out_with_a_clear_error(
    recorded: tuple[Path, Any], run_async: Any
) -> None:
    path, _ = recorded
    replay(path, match="order").register()
    run_async(agent(ScriptedProvider()))
    with pytest.raises(ReplayMissError, match=r"by order.*3 replayed"):
        llmflow.llm_call_execute_sync("extra", chat_request(), lambda r: None, codec=CHAT)


def test_a_recorded_failure_is_raised_again(tmp_path: Path, runtime: llmflow.Runtime) -> None:
    path = tmp_path / "fail.jsonl"
    name = AtofFileExporter(path).register(runtime=runtime)

    def down(request: LlmRequest) -> Any:
        raise TimeoutError("read timed out")

    with pytest.raises(TimeoutError):
        llmflow.llm_call_execute_sync("llm", chat_request(), down, codec=CHAT)
    runtime.remove_exporter(name)
    replay(path).register()
    with pytest.raises(ReplayError, match=r"failed with TimeoutError: read timed out"):
        llmflow.llm_call_execute_sync("llm", chat_request(), down, codec=CHAT)


def test_a_missing_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match=r"path: replay log .*nope\.jsonl.* does not exist"):
        replay(tmp_path / "nope.jsonl")


def test_a_corrupt_line_is_named(recorded: tuple[Path, Any]) -> None:
    path, _ = recorded
    lines = path.read_bytes().splitlines()
    lines.insert(3, b'{"kind": "scope", "this is": not json')
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(ReplayError, match=r"line 4"):
        replay(path)


def test_a_cut_off_last_line_is_named(recorded: tuple[Path, Any]) -> None:
    path, _ = recorded
    data = path.read_bytes()
    count = data.count(b"\n")
    path.write_bytes(data[:-40])
    with pytest.raises(ReplayError, match=rf"line {count}\b"):
        replay(path)


def test_an_event_that_is_not_atof_is_named(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('\n{"kind": "scope"}\n')
    with pytest.raises(ReplayError, match="line 2"):
        replay(path)


def test_match_by_request_needs_the_recorded_request(
    tmp_path: Path, runtime: llmflow.Runtime
) -> None:
    path = tmp_path / "sanitized.jsonl"
    name = AtofFileExporter(path).register(runtime=runtime)
    llmflow.guardrails.register_llm_sanitize_request("drop", 0, lambda r, ctx: None)
    llmflow.llm_call_execute_sync("llm", chat_request(), lambda r: chat_response(), codec=CHAT)
    runtime.remove_exporter(name)
    with pytest.raises(ReplayError, match=r"line 2.*no recorded request.*match='order'"):
        replay(path)
    assert replay(path, match="order").recorded == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"match": "fuzzy"}, ValueError, "match"),
        ({"on_miss": "ignore"}, ValueError, "on_miss"),
        ({"name": ""}, TypeError, "name"),
    ],
)
def test_bad_arguments_name_the_parameter(
    recorded: tuple[Path, Any], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        replay(recorded[0], **kwargs)


def test_a_path_that_is_not_a_path_is_refused() -> None:
    with pytest.raises(TypeError, match="path"):
        replay(42)  # type: ignore[arg-type]


# -- re-chunking a folded response --------------------------------------------------


def _fold_with(codec: Any, chunks: Any) -> Any:
    accumulator = codec.stream_accumulator()
    for chunk in chunks:
        accumulator.collect(chunk)
    return accumulator.finalize()


def test_rechunked_streams_fold_back_to_the_same_response() -> None:
    folded_chat = _fold_with(CHAT, chat_chunks())
    assert _fold_with(CHAT, rechunk(folded_chat, CHAT)) == folded_chat
    folded_claude = _fold_with(ANTHROPIC, anthropic_events())
    assert _fold_with(ANTHROPIC, rechunk(folded_claude, ANTHROPIC)) == folded_claude
    assert _fold_with(ANTHROPIC, rechunk(anthropic_response(), ANTHROPIC)) == anthropic_response()
    response = responses_response()
    assert _fold_with(RESPONSES, rechunk(response, RESPONSES)) == response
    assert RESPONSES.annotate_response(
        _fold_with(RESPONSES, rechunk(response, RESPONSES))
    ) == RESPONSES.annotate_response(response)


def test_a_folded_plain_response_re_streams_with_its_annotation_intact() -> None:
    response = chat_response(tool_call=True)
    again = _fold_with(CHAT, rechunk(response, CHAT))
    assert CHAT.annotate_response(again) == CHAT.annotate_response(response)


def test_rechunking_an_unknown_codec_is_refused() -> None:
    with pytest.raises(TypeError, match="codec"):
        rechunk({"text": "hi"}, object())


# -- stream plumbing: both iterator kinds ------------------------------------------


class Listener(StreamTap):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def chunk(self, chunk: Any) -> None:
        self.events.append(("chunk", chunk))

    def done(self) -> None:
        self.events.append("done")

    def failed(self, error: BaseException) -> None:
        self.events.append(("failed", type(error).__name__))

    def closed(self) -> None:
        self.events.append("closed")


def test_tap_keeps_a_sync_stream_sync_and_reports_its_end() -> None:
    listener = Listener()
    tapped = tap(iter([1, 2]), listener)
    assert not hasattr(tapped, "__anext__")
    assert list(tapped) == [1, 2]
    assert listener.events == [("chunk", 1), ("chunk", 2), "done"]


def test_tap_reports_an_early_close_and_closes_the_source() -> None:
    closed: list[bool] = []

    def source() -> Any:
        try:
            yield from (1, 2, 3)
        finally:
            closed.append(True)

    listener = Listener()
    tapped = tap(source(), listener)
    assert next(tapped) == 1
    tapped.close()
    assert listener.events == [("chunk", 1), "closed"]
    assert closed == [True]


def test_tap_reports_a_failing_async_source(run_async: Any) -> None:
    async def source() -> Any:
        yield 1
        raise ConnectionResetError("dropped")

    listener = Listener()

    async def main() -> None:
        with pytest.raises(ConnectionResetError):
            async for _ in tap(source(), listener):
                pass

    run_async(main())
    assert listener.events == [("chunk", 1), ("failed", "ConnectionResetError")]


def test_a_replayed_stream_is_both_a_sync_and_an_async_iterator(run_async: Any) -> None:
    assert list(ReplayedStream(iter([1, 2]))) == [1, 2]

    async def main() -> list[Any]:
        return [chunk async for chunk in ReplayedStream(iter([3, 4]))]

    assert run_async(main()) == [3, 4]


text = st.text(max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    content=st.one_of(st.none(), text),
    calls=st.lists(
        st.tuples(st.from_regex(r"call_[a-z0-9]{1,6}", fullmatch=True), text), max_size=3
    ),
    finish=st.sampled_from(["stop", "length", "tool_calls"]),
    usage=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_any_chat_response_survives_rechunking(
    content: str | None, calls: list[tuple[str, str]], finish: str, usage: int | None
) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": "f", "arguments": a}}
            for i, a in calls
        ]
    response = {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": None
        if usage is None
        else {"prompt_tokens": usage, "completion_tokens": 1, "total_tokens": usage + 1},
    }
    again = _fold_with(CHAT, rechunk(response, CHAT))
    assert again == response


# -- through the real openai SDK (llmflow.instrument + FakeProvider) ----------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _sdk_agent(client: Any) -> tuple[Any, ...]:
    with llmflow.scope("sdk-agent", category="agent"):
        ask = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=ask, tools=[WEATHER_TOOL]
        )
        call = first.choices[0].message.tool_calls[0]
        result = llmflow.tool_call_execute_sync(
            "get_weather", json.loads(call.function.arguments), weather, tool_call_id=call.id
        )
        follow_up = [
            *ask,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)},
        ]
        second = client.chat.completions.create(model="gpt-4o-mini", messages=follow_up)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Say it slowly."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces = [
            c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
        ]
    return first.model_dump(), second.model_dump(), pieces


def test_an_openai_sdk_run_replays_offline_once_the_provider_is_gone(
    tmp_path: Path, runtime: llmflow.Runtime
) -> None:
    openai = pytest.importorskip("openai")
    from llmflow.testing import FakeProvider, Reply, ToolCall

    path = tmp_path / "sdk.jsonl"
    name = AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    server = FakeProvider().start()
    server.script(
        Reply(text=None, tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="call_w")]),
        Reply(text="Sunny in Paris."),
        Reply(text="It is sunny in Paris today", chunks=4),
    )
    client = llmflow.instrument(
        openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
    )
    try:
        live = _sdk_agent(client)
    finally:
        server.stop()
    runtime.flush()
    runtime.remove_exporter(name)
    assert len(server.requests) == 3
    assert "".join(live[2]) == "It is sunny in Paris today" and len(live[2]) > 1

    with pytest.raises(openai.APIConnectionError):  # the provider really is gone
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )

    replay(path).register()
    with testing.capture() as events:
        offline = _sdk_agent(client)
    assert offline[:2] == live[:2]
    assert "".join(offline[2]) == "".join(live[2])
    recorded_events = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    replayed = [e.to_dict() for e in events]
    assert shape(replayed) == shape(recorded_events)
    llm_ends = ends(events)
    assert len(llm_ends) == 3
    assert all("replay.source" in e.metadata for e in llm_ends)


def test_the_sync_stream_twin_replays_chunk_by_chunk(
    tmp_path: Path, runtime: llmflow.Runtime
) -> None:
    path = tmp_path / "sync.jsonl"
    name = AtofFileExporter(path).register(runtime=runtime)

    def live(request: LlmRequest) -> Any:
        return iter(anthropic_events())

    def run(func: Any) -> list[Any]:
        return list(
            llmflow.llm_stream_call_execute_sync(
                "claude", anthropic_request(), func, codec=ANTHROPIC, response_codec=ANTHROPIC
            )
        )

    recorded = run(live)
    runtime.remove_exporter(name)
    replay(path).register()

    def gone(request: LlmRequest) -> Any:
        raise ConnectionError("offline")

    replayed = run(gone)
    assert len(replayed) > 5
    assert fold(replayed) == fold(recorded)
