"""Issue 11, items 6-9: the entry points as real code uses them.

Provider errors are raised by the real openai/anthropic SDKs talking to
``llmflow.testing.FakeProvider`` over loopback with UNinstrumented clients, so
what the end event records comes from the SDK exception alone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import llmflow
from llmflow import LlmRequest, testing
from llmflow.atof import span_facts
from llmflow.testing import ErrorReply, FakeProvider, Reply

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def _chat_request() -> LlmRequest:
    return LlmRequest(
        {"content-type": "application/json"},
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )


def _messages_request() -> LlmRequest:
    return LlmRequest(
        {"content-type": "application/json"},
        {
            "model": "claude-fake-1",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi"}],
        },
    )


def _end(events: list[llmflow.Event]) -> llmflow.Event:
    (end,) = [e for e in events if e.category == "llm" and e.scope_category == "end"]
    return end


# -- item 6: provider SDK errors in end metadata -------------------------------------


def test_openai_429_records_status_error_code_request_id_and_retry_after(
    provider: FakeProvider, run_async: Any
) -> None:
    client = openai.AsyncOpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(429, message="Rate limit reached.", retry_after="7"))

    async def main() -> None:
        await llmflow.llm_call_execute(
            "chat", _chat_request(), lambda r: client.chat.completions.create(**r.content)
        )

    with testing.capture() as events, pytest.raises(openai.RateLimitError) as caught:
        run_async(main())
    metadata = _end(events).metadata
    assert metadata["http.status_code"] == 429
    assert metadata["provider.error_code"] == "rate_limit_exceeded"
    assert metadata["provider.request_id"] == caught.value.request_id
    assert metadata["provider.request_id"].startswith("req_fake_")
    assert metadata["http.retry_after"] == "7"
    assert metadata["exception.type"] == "openai.RateLimitError"


def test_openai_500_records_status_and_the_body_error_type(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(500))
    with testing.capture() as events, pytest.raises(openai.InternalServerError):
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: client.chat.completions.create(**r.content)
        )
    metadata = _end(events).metadata
    assert metadata["http.status_code"] == 500
    assert metadata["provider.error_code"] == "server_error"
    assert metadata["provider.request_id"].startswith("req_fake_")
    assert "http.retry_after" not in metadata


def test_anthropic_429_records_the_same_keys(provider: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="sk-ant-t", max_retries=0)
    provider.script(ErrorReply(429, retry_after="3"))
    with testing.capture() as events, pytest.raises(anthropic.RateLimitError) as caught:
        llmflow.llm_call_execute_sync(
            "chat", _messages_request(), lambda r: client.messages.create(**r.content)
        )
    metadata = _end(events).metadata
    assert metadata["http.status_code"] == 429
    assert metadata["provider.error_code"] == "rate_limit_error"
    assert metadata["provider.request_id"] == caught.value.request_id
    assert metadata["http.retry_after"] == "3"
    assert metadata["exception.type"] == "anthropic.RateLimitError"


def test_anthropic_500_keeps_the_facts_and_no_retry_after(provider: FakeProvider) -> None:
    client = anthropic.Anthropic(base_url=provider.base_url, api_key="sk-ant-t", max_retries=0)
    provider.script(ErrorReply(500))
    with testing.capture() as events, pytest.raises(anthropic.InternalServerError):
        llmflow.llm_call_execute_sync(
            "chat", _messages_request(), lambda r: client.messages.create(**r.content)
        )
    metadata = _end(events).metadata
    assert (metadata["http.status_code"], metadata["provider.error_code"]) == (500, "api_error")
    assert "http.retry_after" not in metadata


def test_retry_after_ms_is_recorded_when_retry_after_is_absent(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(429, headers={"retry-after-ms": "250"}))
    with testing.capture() as events, pytest.raises(openai.RateLimitError):
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: client.chat.completions.create(**r.content)
        )
    assert _end(events).metadata["http.retry_after"] == "250"


def test_provider_error_facts_are_scrubbed_of_credentials() -> None:
    class LeakyError(Exception):
        status_code = 401
        code = "invalid_api_key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
        request_id = "req_1"

    def fail(request: LlmRequest) -> None:
        raise LeakyError("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")

    with testing.capture() as events, pytest.raises(LeakyError):
        llmflow.llm_call_execute_sync("chat", _chat_request(), fail)
    metadata = _end(events).metadata
    assert metadata["http.status_code"] == 401
    assert "abcdefghijklmnop" not in str(metadata)
    assert metadata["provider.error_code"].startswith("invalid_api_key ")


def test_errors_without_an_http_status_record_only_the_exception() -> None:
    class Odd(Exception):
        code = "not-http"  # a ``code`` alone (SystemExit-like) is no HTTP fact

        @property
        def response(self) -> Any:
            raise RuntimeError("reading me fails")

    def fail(request: LlmRequest) -> None:
        raise Odd("boom")

    with testing.capture() as events, pytest.raises(Odd):
        llmflow.llm_call_execute_sync("chat", _chat_request(), fail)
    assert set(_end(events).metadata) == {"exception.type", "exception.message"}


def test_a_tool_failing_with_an_sdk_error_records_the_facts_too(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(503, retry_after="1"))
    with testing.capture() as events, pytest.raises(openai.APIStatusError):
        llmflow.tool_call_execute_sync(
            "summarize",
            {"text": "x"},
            lambda a: client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": a["text"]}]
            ),
        )
    (end,) = [e for e in events if e.scope_category == "end"]
    assert (end.metadata["http.status_code"], end.metadata["http.retry_after"]) == (503, "1")


def test_provider_facts_are_read_by_span_facts(provider: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(429, retry_after="2"))
    with testing.capture() as events, pytest.raises(openai.RateLimitError):
        llmflow.llm_call_execute_sync(
            "chat", _chat_request(), lambda r: client.chat.completions.create(**r.content)
        )
    start, end = [e for e in events if e.category == "llm"]
    facts = span_facts(start.to_dict(), end.to_dict())
    assert facts.status_code == 429


# -- item 7: manual spans: codec=, error=, with ------------------------------------


def test_llm_call_with_codec_annotates_the_request_and_the_end_uses_its_response_codec(
    provider: FakeProvider,
) -> None:
    from llmflow.codecs import OpenAIChatCodec

    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(Reply(text="hello", usage={"input_tokens": 11, "output_tokens": 3}))
    request = _chat_request()
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request, codec=OpenAIChatCodec())
        completion = client.chat.completions.create(**request.content)
        llmflow.llm_call_end(handle, completion)
    start, end = events
    assert start.data_schema == end.data_schema == OpenAIChatCodec().data_schema
    assert start.category_profile["model_name"] == "gpt-4o-mini"
    assert start.category_profile["annotated_request"]["messages"][0]["role"] == "user"
    annotated = end.category_profile["annotated_response"]
    assert annotated["usage"]["input_tokens"] == 11
    facts = span_facts(start.to_dict(), end.to_dict())
    assert (facts.model, facts.input_tokens, facts.output_tokens) == ("gpt-4o-mini", 11, 3)


def test_llm_call_rejects_a_codec_that_is_not_one_naming_the_parameter() -> None:
    with testing.capture() as events, pytest.raises(llmflow.ParameterTypeError, match=r"^codec:"):
        llmflow.llm_call("chat", _chat_request(), codec="openai")  # type: ignore[arg-type]
    assert events == []


def test_llm_call_end_error_records_what_the_managed_path_records(
    provider: FakeProvider,
) -> None:
    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(429, retry_after="5"), ErrorReply(429, retry_after="5"))
    request = _chat_request()
    with testing.capture() as managed, pytest.raises(openai.RateLimitError):
        llmflow.llm_call_execute_sync(
            "chat", request, lambda r: client.chat.completions.create(**r.content)
        )
    with testing.capture() as manual:
        handle = llmflow.llm_call("chat", request)
        try:
            client.chat.completions.create(**request.content)
        except openai.RateLimitError as exc:
            llmflow.llm_call_end(handle, error=exc)
    managed_end, manual_end = _end(managed).metadata, _end(manual).metadata
    assert managed_end.keys() == manual_end.keys()
    assert {k: v for k, v in manual_end.items() if k != "provider.request_id"} == {
        k: v for k, v in managed_end.items() if k != "provider.request_id"
    }
    assert manual_end["exception.type"] == "openai.RateLimitError"


def test_llm_call_end_error_must_be_an_exception_and_the_handle_stays_open() -> None:
    handle = llmflow.llm_call("chat", _chat_request())
    with pytest.raises(llmflow.ParameterTypeError, match=r"^error:"):
        llmflow.llm_call_end(handle, error="boom")  # type: ignore[arg-type]
    assert not handle.ended
    llmflow.llm_call_end(handle, error=ValueError("late"))
    assert handle.ended


def test_tool_call_end_error_records_exception_type_and_message() -> None:
    with testing.capture() as events:
        handle = llmflow.tool_call("search", {"q": "x"})
        llmflow.tool_call_end(handle, error=TimeoutError("search took too long"))
    end = events[-1]
    assert end.metadata == {
        "exception.type": "TimeoutError",
        "exception.message": "search took too long",
    }
    assert end.data is None


def test_with_llm_call_and_end_inside_records_one_normal_end() -> None:
    with testing.capture() as events:
        with llmflow.llm_call("chat", _chat_request()) as h:
            h.end({"text": "hi"})
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[1].data == {"text": "hi"}
    assert events[1].metadata is None


def test_an_exception_in_the_with_block_ends_the_call_with_it_and_propagates_unchanged() -> None:
    boom = KeyError("missing")
    with testing.capture() as events, pytest.raises(KeyError) as caught:
        with llmflow.llm_call("chat", _chat_request(), data={"fallback": 1}) as h:
            raise boom
    assert caught.value is boom
    assert h.ended
    end = events[-1]
    assert end.metadata == {"exception.type": "KeyError", "exception.message": "'missing'"}
    assert end.data == {"fallback": 1}


def test_leaving_the_with_block_without_end_records_a_handle_error() -> None:
    with testing.capture() as events:
        with llmflow.tool_call("search", {"q": "x"}) as t:
            pass
    assert t.ended
    end = events[-1]
    assert end.metadata["exception.type"] == "llmflow.HandleError"
    assert "without end()" in end.metadata["exception.message"]


def test_an_exception_after_end_inside_the_with_block_adds_no_second_end() -> None:
    with testing.capture() as events, pytest.raises(RuntimeError):
        with llmflow.tool_call("search", {"q": "x"}) as t:
            t.end(["result"])
            raise RuntimeError("after the end")
    assert [e.scope_category for e in events] == ["start", "end"]
    assert events[-1].metadata is None


def test_async_with_llm_call_ends_on_cancellation(run_async: Any) -> None:
    async def main() -> None:
        async with llmflow.llm_call("chat", _chat_request()):
            raise asyncio.CancelledError

    with testing.capture() as events, pytest.raises(asyncio.CancelledError):
        run_async(main())
    assert events[-1].metadata["exception.type"] == "asyncio.exceptions.CancelledError"


def test_the_with_block_does_not_change_the_current_scope() -> None:
    with llmflow.scope("agent") as agent, llmflow.llm_call("chat", _chat_request()) as h:
        assert llmflow.current_scope() is agent
        h.end()


# -- item 8: threads ------------------------------------------------------------------


def _echo(request: LlmRequest) -> dict[str, str]:
    return {"text": "ok"}


def test_propagate_makes_calls_in_pool_workers_children_of_the_callers_scope() -> None:
    def work(i: int) -> str | None:
        llmflow.llm_call_execute_sync(f"chat-{i}", _chat_request(), _echo)
        return llmflow.current_scope() and llmflow.current_scope().name  # type: ignore[union-attr]

    with testing.capture() as events:
        with llmflow.scope("agent") as agent, ThreadPoolExecutor(max_workers=4) as pool:
            seen = list(pool.map(llmflow.propagate(work), range(8)))
    assert seen == ["agent"] * 8
    starts = [e for e in events if e.category == "llm" and e.scope_category == "start"]
    assert len(starts) == 8
    assert {e.parent_uuid for e in starts} == {agent.uuid}


def test_without_propagate_pool_calls_are_orphans() -> None:
    with testing.capture() as events:
        with llmflow.scope("agent"), ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(llmflow.llm_call_execute_sync, "chat", _chat_request(), _echo).result()
    (start,) = [e for e in events if e.category == "llm" and e.scope_category == "start"]
    assert start.parent_uuid is None


def test_propagate_captures_the_scope_at_wrap_time_and_keeps_the_worker_from_leaking() -> None:
    with llmflow.scope("outer") as outer:
        wrapped = llmflow.propagate(lambda: llmflow.push_scope("leaked-in-worker"))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pushed = pool.submit(wrapped).result()
        assert pushed.parent_uuid == outer.uuid
        # the scope the worker pushed lived in a copy: neither the caller nor the
        # next call on the same worker thread sees it
        assert llmflow.current_scope() is None
        parent = pool.submit(wrapped).result().parent_uuid
    assert parent == outer.uuid


def test_propagate_runs_in_many_threads_at_once_and_returns_and_raises_like_fn() -> None:
    barrier = threading.Barrier(4)

    def work(x: int) -> int:
        barrier.wait(timeout=10)
        if x == 3:
            raise ValueError("three")
        return x * 2

    with llmflow.scope("agent"), ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(llmflow.propagate(work), x) for x in range(4)]
        assert [f.result() for f in futures[:3]] == [0, 2, 4]
        with pytest.raises(ValueError, match="three"):
            futures[3].result()
    assert llmflow.propagate(work).__name__ == "work"


def test_propagate_rejects_what_is_not_callable() -> None:
    with pytest.raises(llmflow.ParameterTypeError, match=r"^fn:"):
        llmflow.propagate(42)  # type: ignore[arg-type]


def test_propagate_with_run_in_executor_under_asyncio_and_uvloop(run_async: Any) -> None:
    async def main() -> tuple[str | None, str]:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1) as pool:
            async with llmflow.scope("agent") as agent:
                uuid = await loop.run_in_executor(
                    pool, llmflow.propagate(lambda: llmflow.mark("in-thread"))
                )
        return agent.uuid, uuid

    with testing.capture() as events:
        agent_uuid, mark_uuid = run_async(main())
    (mark,) = [e for e in events if e.uuid == mark_uuid]
    assert mark.parent_uuid == agent_uuid


# -- item 9: a scope's output ---------------------------------------------------------


def test_set_output_becomes_the_scope_end_data() -> None:
    with testing.capture() as events:
        with llmflow.scope("plan") as s:
            s.set_output({"steps": ["search", "answer"]})
    assert events[-1].scope_category == "end"
    assert events[-1].data == {"steps": ["search", "answer"]}


def test_set_output_is_validated_at_the_call_naming_data() -> None:
    with testing.capture() as events:
        with llmflow.scope("plan") as s:
            s.set_output({"ok": 1})
            with pytest.raises(llmflow.InvalidPayloadError, match="data"):
                s.set_output({"bad": object()})
    assert events[-1].data == {"ok": 1}


def test_set_output_survives_an_exception_and_pop_scope_data_wins() -> None:
    with testing.capture() as events, pytest.raises(RuntimeError):
        with llmflow.scope("plan") as s:
            s.set_output("partial")
            raise RuntimeError("stop")
    assert (events[-1].data, events[-1].metadata["exception.type"]) == ("partial", "RuntimeError")
    with testing.capture() as events:
        handle = llmflow.push_scope("plan")
        handle.set_output("from set_output")
        llmflow.pop_scope(handle, data="explicit")
    assert events[-1].data == "explicit"


def test_set_output_on_an_ended_scope_raises_scope_error() -> None:
    with llmflow.scope("plan") as s:
        pass
    with pytest.raises(llmflow.ScopeError):
        s.set_output({"late": True})


def test_params_objects_carry_codec_and_error() -> None:
    from llmflow.codecs import OpenAIChatCodec

    with testing.capture() as events:
        handle = llmflow.llm_call(
            llmflow.LlmCallParams(name="chat", request=_chat_request(), codec=OpenAIChatCodec())
        )
        llmflow.llm_call_end(handle, llmflow.EndLlmHandleParams(error=ValueError("bad answer")))
    start, end = events
    assert start.category_profile["model_name"] == "gpt-4o-mini"
    assert end.metadata["exception.type"] == "ValueError"


def test_a_stream_the_sdk_refuses_with_429_records_the_facts(provider: FakeProvider) -> None:
    from llmflow.codecs import OpenAIChatCodec

    client = openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key="sk-t", max_retries=0)
    provider.script(ErrorReply(429, retry_after="4"))
    with testing.capture() as events, pytest.raises(openai.RateLimitError):
        stream = llmflow.llm_stream_call_execute_sync(
            "chat",
            _chat_request(),
            lambda r: client.chat.completions.create(**r.content, stream=True),
            codec=OpenAIChatCodec(),
        )
        list(stream)
    metadata = _end(events).metadata
    assert (metadata["http.status_code"], metadata["http.retry_after"]) == (429, "4")
