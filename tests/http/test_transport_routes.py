"""Every route x JSON/SSE x sync/async client records one managed call per attempt (SPEC §11)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _http_support import Factory, only_pair, pairs

import llmflow
from llmflow.atof import span_facts
from llmflow.testing import FakeProvider, Reply, ToolCall, capture

USAGE = {"input_tokens": 30, "output_tokens": 9, "cached_tokens": 4, "reasoning_tokens": 2}
WEATHER = ToolCall("get_weather", {"city": "Paris"}, id="call_w1")


def openai_chat(client: Any, stream: bool, asynchronous: bool) -> Any:
    kwargs: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
    }
    if stream:
        kwargs.update(stream=True, stream_options={"include_usage": True})
    if not asynchronous:
        result = client.chat.completions.create(**kwargs)
        return list(result) if stream else result

    async def go() -> Any:
        result = await client.chat.completions.create(**kwargs)
        return [c async for c in result] if stream else result

    return go


def openai_responses(client: Any, stream: bool, asynchronous: bool) -> Any:
    kwargs: dict[str, Any] = {"model": "gpt-4.1", "input": "weather in Paris?", "stream": stream}
    if not asynchronous:
        result = client.responses.create(**kwargs)
        return list(result) if stream else result

    async def go() -> Any:
        result = await client.responses.create(**kwargs)
        return [c async for c in result] if stream else result

    return go


def anthropic_messages(client: Any, stream: bool, asynchronous: bool) -> Any:
    kwargs: dict[str, Any] = {
        "model": "claude-fake-1",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "stream": stream,
    }
    if not asynchronous:
        result = client.messages.create(**kwargs)
        return list(result) if stream else result

    async def go() -> Any:
        result = await client.messages.create(**kwargs)
        return [c async for c in result] if stream else result

    return go


ROUTES = {
    "openai.chat": ("openai", openai_chat, "gpt-4o-mini", "openai/chat-completions"),
    "openai.responses": ("openai", openai_responses, "gpt-4.1", "openai/responses"),
    "anthropic.messages": ("anthropic", anthropic_messages, "claude-fake-1", "anthropic/messages"),
}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_each_route_records_one_call_with_model_tokens_tool_call_and_wire_metadata(
    route: str,
    stream: bool,
    asynchronous: bool,
    provider: FakeProvider,
    make_openai: Factory,
    make_anthropic: Factory,
) -> None:
    sdk, call, model, schema = ROUTES[route]
    client = (make_openai if sdk == "openai" else make_anthropic)(asynchronous=asynchronous)
    provider.script(Reply(text="Sunny.", tool_calls=[WEATHER], usage=USAGE))
    with capture() as events:
        result = call(client, stream, asynchronous)
        if asynchronous:
            asyncio.run(result())
    start, end = only_pair(events)
    assert start.name == end.name == route
    assert ("streaming" in start.attributes) is stream
    assert "remote" in start.attributes
    assert start.data_schema is not None and start.data_schema.name == schema
    assert start.data["content"]["model"] == model
    facts = span_facts(start.to_dict(), end.to_dict())
    assert (facts.model, facts.provider, facts.status_code, facts.attempt) == (model, sdk, 200, 0)
    assert facts.input_tokens == 30 and facts.output_tokens == 9 and facts.cached_tokens == 4
    assert end.metadata["provider.request_id"].startswith("req_fake_")
    annotated = end.category_profile["annotated_response"]
    assert annotated["tool_calls"][0]["name"] == "get_weather"
    assert annotated["tool_calls"][0]["arguments"] == {"city": "Paris"}
    assert annotated["messages"][0]["content"][0]["text"] == "Sunny."
    if stream:
        assert end.metadata["stream.time_to_first_chunk_us"] >= 0
        assert "cancelled" not in end.metadata
    assert llmflow.diagnostics().failures == {}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_embeddings_are_an_embedder_scope_without_the_vectors(
    asynchronous: bool, make_openai: Factory
) -> None:
    client = make_openai(asynchronous=asynchronous)

    async def go() -> Any:
        return await client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])

    with capture() as events:
        result = (
            asyncio.run(go())
            if asynchronous
            else client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
        )
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert pairs(events) == []
    start, end = only_pair(events, "embedder")
    assert start.name == "openai.embeddings"
    assert start.data["content"]["input"] == ["a b", "c"]
    assert end.metadata["http.status_code"] == 200
    assert end.metadata["provider.name"] == "openai"
    assert all("embedding" not in item for item in end.data["data"])
    assert end.data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_azure_deployment_path_is_the_chat_route_with_the_azure_provider(
    provider: FakeProvider,
) -> None:
    import openai

    client = llmflow.instrument(
        openai.AzureOpenAI(
            azure_endpoint=provider.base_url,
            azure_deployment="my-gpt",
            api_key="azure-SECRET",
            api_version="2024-10-21",
            max_retries=0,
        )
    )
    with capture() as events:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    start, end = only_pair(events)
    assert provider.requests[0].path.startswith("/openai/deployments/my-gpt/chat/completions")
    assert start.name == "openai.chat"
    assert end.metadata["provider.name"] == "azure.ai.openai"
    assert "azure-SECRET" not in str([e.to_dict() for e in events])


def test_one_sdk_call_with_tools_and_a_tool_result_round_trip(
    provider: FakeProvider, make_openai: Factory
) -> None:
    client = make_openai()
    provider.script(Reply(text=None, tool_calls=[WEATHER]), Reply(text="It is sunny in Paris."))
    messages: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    with capture() as events:
        first = client.chat.completions.create(model="m", messages=messages)
        call = first.choices[0].message.tool_calls[0]
        messages += [
            first.choices[0].message,
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ]
        second = client.chat.completions.create(model="m", messages=messages)
    assert second.choices[0].message.content == "It is sunny in Paris."
    (_, end1), (start2, _) = pairs(events)
    assert end1.category_profile["annotated_response"]["finish_reason"] == "tool_calls"
    sent = start2.data["content"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_w1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"}
