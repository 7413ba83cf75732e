"""What goes over the wire is the SDK's, unless middleware changes it (SPEC §11)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from _http_support import Factory, only_pair, pairs

import llmflow
from llmflow import LlmRequest, intercepts
from llmflow.atof import validate_stream
from llmflow.exporters import AtofFileExporter
from llmflow.http import DEFAULT_ROUTES, Route, Transport
from llmflow.testing import FakeProvider, RawReply, Reply, ToolCall, capture

MESSAGES = [{"role": "user", "content": "hello"}]


def chat(client: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gpt-4o")
    return client.chat.completions.create(messages=MESSAGES, **kwargs)


def test_server_receives_the_same_bytes_as_from_an_uninstrumented_client(
    provider: FakeProvider, make_openai: Factory
) -> None:
    chat(make_openai(instrumented=False), temperature=0.2, tools=[])
    chat(make_openai(), temperature=0.2, tools=[])
    plain, recorded = provider.requests
    assert recorded.body == plain.body
    assert (recorded.method, recorded.path) == (plain.method, plain.path)
    volatile = {"x-stainless-read-timeout", "x-stainless-timeout"}
    assert {k: v for k, v in recorded.headers.items() if k not in volatile} == {
        k: v for k, v in plain.headers.items() if k not in volatile
    }


def test_a_request_intercept_rewriting_the_model_reaches_the_server_and_the_record(
    provider: FakeProvider, make_openai: Factory
) -> None:
    def cheaper(request: LlmRequest, ctx: Any) -> LlmRequest:
        return LlmRequest(request.headers, {**request.content, "model": "gpt-4o-mini"})

    intercepts.register_llm_request("cheaper", 0, cheaper)
    with capture() as events:
        done = chat(make_openai())
    assert done.model == "gpt-4o-mini"  # FakeProvider answers with the model it received
    (received,) = provider.requests
    assert received.json()["model"] == "gpt-4o-mini"
    assert received.headers["content-length"] == str(len(received.body))
    start, _ = only_pair(events)
    assert start.category_profile["model_name"] == "gpt-4o-mini"
    assert start.data["content"]["model"] == "gpt-4o-mini"


def test_an_annotated_edit_is_encoded_back_into_the_provider_shape(
    provider: FakeProvider, make_anthropic: Factory
) -> None:
    def shorter(request: LlmRequest, ctx: Any) -> Any:
        return ctx.annotated.model_copy(update={"max_tokens": 7})

    intercepts.register_llm_request("shorter", 0, shorter)
    make_anthropic().messages.create(model="c", max_tokens=100, messages=MESSAGES)
    assert provider.requests[0].json()["max_tokens"] == 7


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_credentials_never_reach_the_log(
    stream: bool,
    tmp_path: Path,
    provider: FakeProvider,
    make_openai: Factory,
    make_anthropic: Factory,
    runtime: llmflow.Runtime,
) -> None:
    path = tmp_path / "log.jsonl"
    AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    chat(make_openai(default_headers={"Cookie": "session=SECRET-cookie"}), stream=stream)
    list(chat(make_openai(), stream=True)) if stream else None
    make_anthropic().messages.create(
        model="c",
        max_tokens=5,
        messages=MESSAGES,
        stream=stream,
        extra_headers={"X-Api-Key": "sk-SECRET-extra"},
    )
    runtime.flush()
    text = path.read_text()
    assert "SECRET" not in text
    assert "Bearer" not in text
    assert provider.requests[0].headers["authorization"] == "Bearer sk-SECRET-openai"


def test_instrumenting_twice_records_once_and_keeps_the_settings(
    provider: FakeProvider, make_openai: Factory
) -> None:
    once = make_openai(timeout=12.5, max_retries=4, default_headers={"X-Team": "search"})
    twice = llmflow.instrument(once)
    assert twice is once
    assert type(once) is openai.OpenAI
    assert (once.timeout, once.max_retries) == (12.5, 4)
    assert str(once.base_url) == provider.base_url + "/v1/"
    nested = httpx2.Client(transport=Transport(Transport()))
    client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="k", http_client=nested)
    with capture() as events:
        chat(twice)
        chat(client)
    assert len(pairs(events)) == 2
    assert provider.requests[0].headers["x-team"] == "search"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_instrumenting_an_httpx2_client_keeps_its_settings_and_records_routes_only(
    asynchronous: bool, provider: FakeProvider
) -> None:
    cls = httpx2.AsyncClient if asynchronous else httpx2.Client
    plain = cls(base_url=provider.base_url, headers={"X-App": "a"}, timeout=3.0)
    client = llmflow.instrument(plain)
    assert type(client) is cls and client is not plain
    assert (client.base_url, client.timeout, client.headers["x-app"]) == (
        plain.base_url,
        plain.timeout,
        "a",
    )
    body = {"model": "m", "messages": MESSAGES}

    async def go() -> list[int]:
        a = await client.get("/v1/models")  # type: ignore[misc]
        b = await client.post("/v1/chat/completions", json=body)  # type: ignore[misc]
        return [a.status_code, b.status_code]

    with capture() as events:
        if asynchronous:
            codes = asyncio.run(go())
        else:
            codes = [client.get("/v1/models").status_code]
            codes.append(client.post("/v1/chat/completions", json=body).status_code)
    assert codes == [404, 200]
    start, _ = only_pair(events)  # the GET passed through with no event
    assert start.name == "openai.chat"
    assert [r.path for r in provider.requests] == ["/v1/models", "/v1/chat/completions"]


def test_user_routes_replace_or_extend_the_defaults(provider: FakeProvider) -> None:
    route = Route("custom.complete", r"/v1/custom/chat/completions$", DEFAULT_ROUTES[0].codec)
    client = httpx2.Client(
        base_url=provider.base_url, transport=Transport(routes=[route, *DEFAULT_ROUTES])
    )
    with capture() as events:
        client.post("/v1/custom/chat/completions", json={"model": "m", "messages": MESSAGES})
    start, end = only_pair(events)
    assert start.name == "custom.complete"
    assert end.category_profile["annotated_response"]["model"] == "m"
    with pytest.raises(TypeError, match="routes"):
        Transport(routes=["/chat"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="path"):
        Route("x", "(")


def test_early_break_out_of_a_stream_ends_the_call_once_cancelled_with_the_partial_response(
    provider: FakeProvider, make_openai: Factory
) -> None:
    provider.script(Reply(text="one two three four five six"))
    with capture() as events:
        with chat(make_openai(), stream=True) as stream:
            for chunk in stream:
                if chunk.choices[0].delta.content == " two":
                    break
    _, end = only_pair(events)
    assert end.metadata["cancelled"] is True
    text = end.data["choices"][0]["message"]["content"]
    assert text.startswith("one two") and "six" not in text


def test_early_break_out_of_an_async_anthropic_stream_ends_the_call_once(
    provider: FakeProvider, make_anthropic: Factory
) -> None:
    provider.script(Reply(text="alpha beta gamma delta", chunk_delay=0.01))
    client = make_anthropic(asynchronous=True)

    async def go() -> None:
        async with client.messages.stream(model="c", max_tokens=9, messages=MESSAGES) as stream:
            async for text in stream.text_stream:
                if text.strip() == "beta":
                    break

    with capture() as events:
        asyncio.run(go())
    _, end = only_pair(events)
    assert end.metadata["cancelled"] is True
    assert end.data["content"][0]["text"].startswith("alpha beta")


def test_sse_chunks_reach_the_sdk_before_the_stream_ends(
    provider: FakeProvider, make_openai: Factory
) -> None:
    provider.script(Reply(text="a b c d", chunk_delay=0.3))
    import time

    stream = chat(make_openai(), stream=True)
    began = time.monotonic()
    next(iter(stream))
    next(iter(stream))
    assert time.monotonic() - began < 0.5  # two chunks long before the 1.2 s stream ends
    stream.close()


def test_a_stream_intercept_replacing_chunks_is_encoded_for_the_sdk(
    provider: FakeProvider, make_openai: Factory
) -> None:
    def shout(request: LlmRequest, next_: Any) -> Any:
        for chunk in next_():
            choices = [
                {**c, "delta": {"content": c["delta"]["content"].upper()}}
                if c["delta"].get("content")
                else c
                for c in chunk.get("choices", [])
            ]
            yield {**chunk, "choices": choices}

    intercepts.register_llm_stream_execution("shout", 0, shout)
    provider.script(Reply(text="quiet words"))
    with capture() as events:
        text = "".join(c.choices[0].delta.content or "" for c in chat(make_openai(), stream=True))
    assert text == "QUIET WORDS"
    _, end = only_pair(events)
    assert end.data["choices"][0]["message"]["content"] == "QUIET WORDS"


@pytest.mark.parametrize(
    ("reply", "seen"),
    [
        (RawReply(body=b"<html>bad gateway</html>", headers={"content-type": "text/html"}), "html"),
        (RawReply(body=b'{"unexpected": true}'), "shape"),
        (RawReply(body=b"\xff\xfe not utf-8", headers={"content-type": "text/plain"}), "bytes"),
    ],
)
def test_a_response_the_codec_cannot_read_reaches_the_caller_unchanged_and_is_counted(
    reply: RawReply, seen: str, provider: FakeProvider, runtime: llmflow.Runtime
) -> None:
    provider.script(reply)
    client = llmflow.instrument(httpx2.Client(base_url=provider.base_url))
    with capture() as events:
        response = client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    assert response.content == reply.body
    assert response.headers["content-type"] == reply.headers["content-type"]
    _, end = only_pair(events)
    assert end.data is not None  # the raw payload is kept
    assert runtime.diagnostics().failure_count("codec:") == 1


def test_a_non_json_request_body_goes_through_unchanged_and_is_counted(
    provider: FakeProvider, runtime: llmflow.Runtime
) -> None:
    client = llmflow.instrument(httpx2.Client(base_url=provider.base_url))
    with capture() as events:
        client.post("/v1/chat/completions", content=b"model=m&text=hi")
    assert provider.requests[0].body == b"model=m&text=hi"
    start, _ = only_pair(events)
    assert start.data["content"] == {"llmflow.raw_body": "model=m&text=hi"}
    assert runtime.diagnostics().failure_count("codec:") >= 1


def test_a_malformed_sse_frame_is_passed_through_and_counted(
    provider: FakeProvider, runtime: llmflow.Runtime, make_openai: Factory
) -> None:
    good = (
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    )
    parts = [good, b"data: {not json\n\n", b"data: [DONE]\n\n"]
    provider.script(
        RawReply(headers={"content-type": "text/event-stream"}, parts=parts, chunked=True)
    )
    client = llmflow.instrument(httpx2.Client(base_url=provider.base_url))
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with capture() as events:
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            received = response.read()
    assert received == b"".join(parts)
    _, end = only_pair(events)
    assert end.data["choices"][0]["message"]["content"] == "hi"
    assert runtime.diagnostics().failure_count("codec:") == 1


def test_logs_of_every_route_pass_validate_stream(
    tmp_path: Path,
    provider: FakeProvider,
    make_openai: Factory,
    make_anthropic: Factory,
    runtime: llmflow.Runtime,
) -> None:
    path = tmp_path / "wire.atof.jsonl"
    AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    provider.script(Reply(text="x", tool_calls=[ToolCall("f", {"a": 1})]))
    openai_client, anthropic_client = make_openai(), make_anthropic()
    with llmflow.scope("agent", category="agent"):
        chat(openai_client)
        list(chat(openai_client, stream=True))
        openai_client.responses.create(model="m", input="x")
        openai_client.embeddings.create(model="e", input="x")
        anthropic_client.messages.create(model="c", max_tokens=5, messages=MESSAGES)
    runtime.flush()
    assert validate_stream(path) == []
    assert len(re.findall(r'"scope_category":"start"', path.read_text())) == 6


def test_an_instrumented_openai_agent_turn_converts_with_nats_atof_to_atif_converter(
    tmp_path: Path, provider: FakeProvider, make_openai: Factory, runtime: llmflow.Runtime
) -> None:
    converter = pytest.importorskip("nat.atof.scripts.atof_to_atif_converter")
    path = tmp_path / "turn.atof.jsonl"
    AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    client = make_openai()
    provider.script(
        Reply(text=None, tool_calls=[ToolCall("get_weather", {"city": "Porto"}, id="call_p")]),
        Reply(text="Porto: 17°C."),
    )
    messages: list[Any] = [{"role": "user", "content": "Weather in Porto?"}]
    with llmflow.scope("weather-agent", category="agent"):
        first = client.chat.completions.create(model="gpt-4o", messages=messages)
        call = first.choices[0].message.tool_calls[0]
        result = llmflow.tool_call_execute_sync(
            "get_weather", {"city": "Porto"}, lambda args: "17°C", tool_call_id=call.id
        )
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        client.chat.completions.create(model="gpt-4o", messages=messages)
    runtime.flush()
    assert validate_stream(path) == []
    trajectory = converter.convert_file(path)
    agent_steps = [s for s in trajectory.steps if s.source == "agent"]
    assert [c.tool_call_id for c in agent_steps[0].tool_calls] == ["call_p"]
    assert agent_steps[-1].message == "Porto: 17°C."
