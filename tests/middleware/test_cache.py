"""``ResponseCache``: keys from the normalized request, folded streams, TTL, broken files."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _cost_support import (
    ANTHROPIC,
    CHAT,
    RESPONSES,
    FakeProvider,
    anthropic_events,
    anthropic_request,
    anthropic_response,
    chat_chunks,
    chat_request,
    chat_response,
    drain,
    ends,
    responses_request,
    responses_response,
)

import llmflow
from llmflow import LlmRequest, testing
from llmflow.middleware import CostRecorder, ResponseCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(request: LlmRequest, provider: Any, codec: Any = CHAT) -> Any:
    return llmflow.llm_call_execute_sync(
        "llm", request, provider, codec=codec, response_codec=codec
    )


def test_a_repeated_request_is_answered_from_memory_and_recorded() -> None:
    cache = ResponseCache().register()
    provider = FakeProvider(chat_response())
    with testing.capture() as events:
        first = call(chat_request(), provider)
        second = call(chat_request(), provider)
    assert first == second
    assert provider.calls == 1
    assert [e.metadata["cache.hit"] for e in ends(events)] == [False, True]
    assert (cache.hits, cache.misses) == (1, 1)
    miss, hit = ends(events)
    assert hit.data == miss.data
    assert hit.category_profile == miss.category_profile


def test_the_key_ignores_headers_caller_ids_and_the_stream_flag() -> None:
    cache = ResponseCache()
    base = cache.key(chat_request())
    other_headers = chat_request()
    other_headers.headers["authorization"] = "Bearer other"
    assert cache.key(other_headers) == base
    assert cache.key(chat_request(user="alice", metadata={"run": "7"})) == base
    assert cache.key(chat_request(stream=True, stream_options={"include_usage": True})) == base


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.9},
        {"model": "gpt-4o-mini"},
        {"tools": []},
        {"response_format": {"type": "json_object"}},
        {"seed": 3},
    ],
)
def test_the_key_changes_with_what_the_request_asks(change: dict[str, Any]) -> None:
    cache = ResponseCache()
    assert cache.key(chat_request(**change)) != cache.key(chat_request())
    assert cache.key(chat_request("another question")) != cache.key(chat_request())


def test_reasoning_and_tool_calls_survive_a_hit_anthropic() -> None:
    ResponseCache().register()
    provider = FakeProvider(anthropic_response())
    with testing.capture() as events:
        call(anthropic_request(), provider, ANTHROPIC)
        cached = call(anthropic_request(), provider, ANTHROPIC)
    assert provider.calls == 1
    assert cached == anthropic_response()
    miss, hit = ends(events)
    annotated = hit.category_profile["annotated_response"]
    assert annotated == miss.category_profile["annotated_response"]
    decoded = ANTHROPIC.decode_response(cached)
    assert decoded.tool_calls[0].name == "lookup"
    assert decoded.tool_calls[0].arguments == {"q": "paris"}
    assert any(p.type == "reasoning" for m in decoded.messages for p in m.content)


def test_reasoning_and_tool_calls_survive_a_hit_responses() -> None:
    ResponseCache().register()
    provider = FakeProvider(responses_response())
    call(responses_request(), provider, RESPONSES)
    cached = call(responses_request(), provider, RESPONSES)
    assert provider.calls == 1
    decoded = RESPONSES.decode_response(cached)
    assert decoded.tool_calls[0].id == "call_7"
    assert decoded.usage is not None and decoded.usage.reasoning_tokens == 400
    assert any(p.type == "reasoning" for m in decoded.messages for p in m.content)


def test_async_calls_are_cached_too(run_async: Any) -> None:
    ResponseCache().register()
    provider = FakeProvider(chat_response())

    async def main() -> tuple[Any, Any]:
        first = await llmflow.llm_call_execute("llm", chat_request(), provider.acall)
        second = await llmflow.llm_call_execute("llm", chat_request(), provider.acall)
        return first, second

    first, second = run_async(main())
    assert first == second and provider.calls == 1


def test_an_sdk_object_comes_back_as_the_same_class() -> None:
    openai_types = pytest.importorskip("openai.types.chat")
    completion = openai_types.ChatCompletion.model_validate(chat_response())
    ResponseCache().register()
    provider = FakeProvider(completion)
    call(chat_request(), provider)
    again = call(chat_request(), provider)
    assert provider.calls == 1
    assert isinstance(again, openai_types.ChatCompletion)
    assert again == completion


def test_a_result_that_is_not_json_is_passed_on_uncached(runtime: llmflow.Runtime) -> None:
    ResponseCache().register()
    provider = FakeProvider(None)
    provider.answer = {"when": object()}
    llmflow.llm_call_execute_sync("llm", chat_request(), provider)
    llmflow.llm_call_execute_sync("llm", chat_request(), provider)
    assert provider.calls == 2
    assert runtime.diagnostics().failures["cache:llmflow.cache"] == 2


# -- streams ------------------------------------------------------------------------


async def _stream(request: LlmRequest, provider: FakeProvider, codec: Any) -> list[Any]:
    stream = await llmflow.llm_stream_call_execute(
        "s", request, provider.stream, codec=codec, response_codec=codec
    )
    return await drain(stream)


def _fold(codec: Any, chunks: list[Any]) -> Any:
    accumulator = codec.stream_accumulator()
    for chunk in chunks:
        accumulator.collect(chunk)
    return accumulator.finalize()


@pytest.mark.parametrize(
    ("codec", "request_of", "chunks"),
    [
        (CHAT, lambda: chat_request(stream=True), chat_chunks),
        (ANTHROPIC, anthropic_request, anthropic_events),
    ],
    ids=["openai-chat", "anthropic"],
)
def test_a_stream_is_stored_folded_and_replayed_as_a_stream(
    codec: Any, request_of: Any, chunks: Any, run_async: Any
) -> None:
    ResponseCache().register()
    provider = FakeProvider(None, chunks=chunks())

    async def main() -> tuple[list[Any], list[Any]]:
        return await _stream(request_of(), provider, codec), await _stream(
            request_of(), provider, codec
        )

    with testing.capture() as events:
        live, replayed = run_async(main())
    assert provider.calls == 1
    assert len(replayed) > 1  # chunk by chunk, not one blob
    assert _fold(codec, replayed) == _fold(codec, live)
    miss, hit = ends(events)
    assert (miss.metadata["cache.hit"], hit.metadata["cache.hit"]) == (False, True)
    assert hit.data == miss.data
    assert hit.category_profile["annotated_response"] == miss.category_profile["annotated_response"]
    assert hit.category_profile["annotated_response"]["tool_calls"]


def test_a_stream_closed_early_is_not_stored(run_async: Any) -> None:
    ResponseCache().register()
    provider = FakeProvider(None, chunks=chat_chunks())

    async def main() -> None:
        stream = await llmflow.llm_stream_call_execute(
            "s", chat_request(stream=True), provider.stream, response_codec=CHAT
        )
        await stream.__anext__()
        await stream.aclose()
        await _stream(chat_request(stream=True), provider, CHAT)

    run_async(main())
    assert provider.calls == 2


def test_plain_and_streamed_calls_are_cached_apart(run_async: Any) -> None:
    ResponseCache().register()
    provider = FakeProvider(chat_response(), chunks=chat_chunks())
    call(chat_request(), provider)
    run_async(_stream(chat_request(), provider, CHAT))
    assert provider.calls == 2


# -- TTL and backends ---------------------------------------------------------------


def test_entries_expire_after_the_ttl() -> None:
    clock = Clock()
    ResponseCache(ttl=60, clock=clock).register()
    provider = FakeProvider(chat_response())
    call(chat_request(), provider)
    clock.now += 59
    call(chat_request(), provider)
    assert provider.calls == 1
    clock.now += 2
    call(chat_request(), provider)
    assert provider.calls == 2


def test_memory_backend_evicts_the_least_recently_used() -> None:
    ResponseCache(max_entries=2).register()
    provider = FakeProvider(chat_response())
    for text in ("a", "b", "a", "c", "a", "b"):
        call(chat_request(text), provider)
    assert provider.calls == 4  # a, b, c, then b again after it was evicted


def test_a_sqlite_file_is_shared_between_instances(tmp_path: Path, run_async: Any) -> None:
    path = tmp_path / "cache.sqlite"
    first = ResponseCache(path, name="one").register()
    provider = FakeProvider(anthropic_response(), chunks=anthropic_events())
    call(anthropic_request(), provider, ANTHROPIC)
    run_async(_stream(anthropic_request(), provider, ANTHROPIC))
    first.deregister()
    first.close()
    ResponseCache(path, name="two").register()
    call(anthropic_request(), provider, ANTHROPIC)
    replayed = run_async(_stream(anthropic_request(), provider, ANTHROPIC))
    assert provider.calls == 2  # once plain, once streamed: both served from the file after
    assert _fold(ANTHROPIC, replayed)["content"][0]["type"] == "thinking"


def test_sqlite_entries_expire(tmp_path: Path) -> None:
    clock = Clock()
    ResponseCache(tmp_path / "c.sqlite", ttl=1, clock=clock).register()
    provider = FakeProvider(chat_response())
    call(chat_request(), provider)
    clock.now += 5
    call(chat_request(), provider)
    assert provider.calls == 2


def test_a_corrupt_cache_file_disables_the_cache_with_a_warning(
    tmp_path: Path, runtime: llmflow.Runtime
) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    with pytest.warns(RuntimeWarning, match="caching is disabled"):
        cache = ResponseCache(path)
    assert not cache.enabled
    cache.register()
    provider = FakeProvider(chat_response())
    with testing.capture() as events:
        call(chat_request(), provider)
        call(chat_request(), provider)
    assert provider.calls == 2
    assert all("cache.hit" not in (e.metadata or {}) for e in ends(events))
    assert runtime.diagnostics().failures["cache:llmflow.cache"] == 1


def test_an_unopenable_cache_path_disables_the_cache(tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match="cannot open cache file"):
        cache = ResponseCache(tmp_path)  # a directory
    assert not cache.enabled


def test_a_cache_file_broken_while_running_disables_the_cache(
    tmp_path: Path, runtime: llmflow.Runtime
) -> None:
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path).register()
    provider = FakeProvider(chat_response())
    call(chat_request(), provider)
    db = sqlite3.connect(path)
    db.execute("DROP TABLE llmflow_cache")
    db.commit()
    db.close()
    with pytest.warns(RuntimeWarning, match="cannot read"):
        result = call(chat_request(), provider)
    assert result == chat_response()
    assert provider.calls == 2
    assert not cache.enabled


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": -5}, ValueError, "ttl"),
        ({"ttl": "1h"}, ValueError, "ttl"),
        ({"max_entries": 0}, ValueError, "max_entries"),
        ({"backend": 42}, TypeError, "backend"),
        ({"name": ""}, TypeError, "name"),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        ResponseCache(**kwargs)


def test_a_cache_hit_costs_nothing(runtime: llmflow.Runtime) -> None:
    CostRecorder().register(runtime=runtime)
    ResponseCache().register()
    provider = FakeProvider(chat_response())
    with testing.capture() as events:
        call(chat_request(), provider)
        call(chat_request(), provider)
    miss, hit = ends(events)
    assert miss.metadata["cost.usd"] > 0
    assert (hit.metadata["cost.usd"], hit.metadata["cost.source"]) == (0.0, "llmflow.cache")


def test_a_cache_on_a_scope_serves_only_under_it() -> None:
    provider = FakeProvider(chat_response())
    with llmflow.scope("agent") as agent:
        ResponseCache().register(scope=agent)
        call(chat_request(), provider)
        call(chat_request(), provider)
    call(chat_request(), provider)
    assert provider.calls == 2


def test_stream_intercepts_see_their_call_as_the_current_scope(run_async: Any) -> None:
    seen: list[Any] = []

    def spy(request: LlmRequest, next_: Any) -> Any:
        seen.append(llmflow.current_scope())
        return next_(request)

    llmflow.intercepts.register_llm_stream_execution("spy", 0, spy)
    provider = FakeProvider(None, chunks=chat_chunks())

    async def main() -> Any:
        with llmflow.scope("agent") as agent:
            await _stream(chat_request(stream=True), provider, CHAT)
            assert llmflow.current_scope() is agent
        return agent

    with testing.capture() as events:
        run_async(main())
    (start,) = [e for e in events if e.category == "llm" and e.scope_category == "start"]
    assert [s.uuid for s in seen] == [start.uuid]


def test_openai_sdk_calls_are_answered_from_the_cache_plain_and_streamed() -> None:
    openai = pytest.importorskip("openai")
    from llmflow.testing import FakeProvider as Loopback
    from llmflow.testing import Reply, ToolCall

    ResponseCache().register()
    ask = [{"role": "user", "content": "Weather?"}]
    with Loopback() as server, testing.capture() as events:
        server.script(
            Reply(text=None, tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]),
            Reply(text="Rain in Oslo all week", chunks=3),
        )
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        answers = [client.chat.completions.create(model="gpt-4o", messages=ask) for _ in range(2)]
        texts = [
            "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(model="gpt-4o", messages=ask, stream=True)
                if c.choices
            )
            for _ in range(2)
        ]
        assert len(server.requests) == 2
    assert answers[0] == answers[1]
    assert answers[1].choices[0].message.tool_calls[0].function.name == "get_weather"
    assert texts == ["Rain in Oslo all week"] * 2
    assert [e.metadata["cache.hit"] for e in ends(events)] == [False, True, False, True]


def test_the_sync_stream_twin_is_cached_metered_and_replayed_too(tmp_path: Path) -> None:
    from llmflow.middleware import Budget

    def provider(request: LlmRequest) -> Any:
        provider.calls += 1  # type: ignore[attr-defined]
        return iter(chat_chunks(prompt=60, completion=40))

    provider.calls = 0  # type: ignore[attr-defined]
    budget = Budget(max_tokens=100_000).register()
    ResponseCache().register()
    with testing.capture() as events:
        runs = [
            list(
                llmflow.llm_stream_call_execute_sync(
                    "s", chat_request(stream=True), provider, codec=CHAT, response_codec=CHAT
                )
            )
            for _ in range(2)
        ]
    assert provider.calls == 1  # type: ignore[attr-defined]
    assert _fold(CHAT, runs[1]) == _fold(CHAT, runs[0])
    assert [e.metadata["cache.hit"] for e in ends(events)] == [False, True]
    assert budget.spent_tokens == 100  # the hit cost nothing
    assert budget.calls == 2
