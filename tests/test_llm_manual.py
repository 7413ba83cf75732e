"""SPEC §4.1-4.2: manual LLM spans (``llm_call`` / ``llm_call_end``) and params objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import llmflow
import llmflow._scope
from _llm_support import (
    CREDENTIAL_HEADERS,
    TinyCodec,
    TinyRequest,
    TinyResponse,
    assert_valid_stream,
    llm_events,
    request,
    response,
)
from llmflow import (
    CreateLlmHandleParams,
    EndLlmHandleParams,
    HandleError,
    LlmAttributes,
    LlmCallEndParams,
    LlmCallParams,
    LlmHandle,
    LlmRequest,
    guardrails,
    testing,
)

# -- §4.1 llm_call -------------------------------------------------------------------


def test_llm_call_emits_one_llm_start_whose_data_is_the_request() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request())
    (start,) = events
    assert (start.kind, start.scope_category, start.category) == ("scope", "start", "llm")
    assert start.name == "chat"
    assert start.uuid == handle.uuid
    assert start.data == {
        "headers": {"content-type": "application/json"},
        "content": {"model": "tiny-1", "messages": ["hello"]},
    }
    assert start.data_schema is None


def test_llm_call_model_name_goes_to_category_profile() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), model_name="tiny-1")
        llmflow.llm_call_end(handle, response())
    assert handle.model_name == "tiny-1"
    assert [e.category_profile for e in events] == [{"model_name": "tiny-1"}] * 2


def test_llm_call_without_model_name_has_no_category_profile() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request())
    assert handle.model_name is None
    assert events[0].category_profile is None


def test_llm_call_handle_data_is_kept_on_the_handle_not_emitted_on_start() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), data={"conversation": 7})
    assert handle.data == {"conversation": 7}
    assert events[0].data["content"] == {"model": "tiny-1", "messages": ["hello"]}
    assert "conversation" not in events[0].to_json().decode()


def test_llm_call_handle_exposes_its_fields() -> None:
    stamp = datetime(2030, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    with llmflow.scope("agent", "agent") as outer:
        handle = llmflow.llm_call(
            "chat",
            request(),
            attributes=[LlmAttributes.REMOTE | LlmAttributes.PARALLEL, "custom-flag"],
            data={"d": 1},
            metadata={"m": 1},
            model_name="tiny-1",
            timestamp=stamp,
        )
        llmflow.llm_call_end(handle, response())
    assert handle.name == "chat"
    assert handle.started_at == stamp
    assert handle.data == {"d": 1}
    assert handle.metadata == {"m": 1}
    assert handle.attributes == ("custom-flag", "parallel", "remote")
    assert handle.parent_uuid == outer.uuid
    assert handle.model_name == "tiny-1"
    assert isinstance(handle.uuid, str) and len(handle.uuid) == 36


def test_llm_call_parent_defaults_to_the_innermost_scope_and_can_be_explicit() -> None:
    with testing.capture() as events:
        with llmflow.scope("outer") as outer, llmflow.scope("inner"):
            nested = llmflow.llm_call("nested", request())
            explicit = llmflow.llm_call("explicit", request(), parent=outer)
            by_uuid = llmflow.llm_call("by-uuid", request(), parent=outer.uuid)
            for handle in (nested, explicit, by_uuid):
                llmflow.llm_call_end(handle, response())
        orphan = llmflow.llm_call("orphan", request())
        llmflow.llm_call_end(orphan, response())
    inner_uuid = next(e.uuid for e in events if e.name == "inner")
    assert nested.parent_uuid == inner_uuid
    assert explicit.parent_uuid == outer.uuid == by_uuid.parent_uuid
    assert orphan.parent_uuid is None
    assert_valid_stream(events)


def test_llm_call_attributes_are_sorted_deduplicated_and_shared_by_the_end() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call(
            "chat", request(), attributes=["stateful", LlmAttributes.STREAMING, "stateful"]
        )
        llmflow.llm_call_end(handle, response())
    assert [e.attributes for e in events] == [("stateful", "streaming")] * 2


def test_llm_call_annotated_request_goes_to_category_profile() -> None:
    annotated = TinyRequest(model="tiny-1", messages=["hello"])
    with testing.capture() as events:
        llmflow.llm_call("a", request(), annotated_request=annotated, model_name="tiny-1")
        llmflow.llm_call("b", request(), annotated_request={"model": "x"})
    assert events[0].category_profile == {
        "model_name": "tiny-1",
        "annotated_request": {"model": "tiny-1", "messages": ["hello"]},
    }
    assert events[1].category_profile == {"annotated_request": {"model": "x"}}


def test_llm_call_runs_no_intercept_or_guardrail() -> None:
    calls: list[str] = []
    guardrails.register_llm_conditional_execution("deny", 0, lambda r: calls.append("g") or "no")
    llmflow.intercepts.register_llm_request("rewrite", 0, lambda r, ctx: calls.append("i") or r)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request())
        llmflow.llm_call_end(handle, response())
    assert calls == []
    assert [e.category for e in events] == ["llm", "llm"]


def test_llm_call_strips_credential_headers_from_the_event_but_not_the_request() -> None:
    headers = {
        name.upper() if i % 2 else name.title(): "secret"
        for i, name in enumerate(CREDENTIAL_HEADERS)
    }
    real = LlmRequest({**headers, "x-trace": "t"}, {"model": "m", "messages": []})
    with testing.capture() as events:
        llmflow.llm_call("chat", real)
    assert events[0].data["headers"] == {"x-trace": "t"}
    assert real.headers == {**headers, "x-trace": "t"}


def test_credential_stripping_is_right_for_every_header_set_it_has_seen() -> None:
    # Which keys to drop is cached per key sequence; the cache must never leak a
    # credential into the event of a request whose keys differ.
    seen = []
    with testing.capture() as events:
        for headers in (
            {"accept": "json"},
            {"accept": "json", "X-Api-Key": "k"},
            {"X-Api-Key": "k", "accept": "json"},
            {"accept": "json"},
            {"accept": "json", "X-Api-Key": "k"},
        ):
            llmflow.llm_call("chat", LlmRequest(headers, {}))
            seen.append(headers)
    assert [e.data["headers"] for e in events] == [{"accept": "json"}] * 5
    assert seen[1] == {"accept": "json", "X-Api-Key": "k"}  # the real request keeps it


def test_a_non_string_header_name_is_a_clear_error_and_emits_nothing() -> None:
    with testing.capture() as events:
        with pytest.raises(
            llmflow.InvalidPayloadError,
            match=r"^request: expected a JSON-serializable value at request\.headers\[1\]",
        ):
            llmflow.llm_call("chat", LlmRequest({1: "x"}, {}))  # type: ignore[dict-item]
    assert events == []


# -- §4.2 llm_call_end ---------------------------------------------------------------


def test_llm_call_end_emits_one_end_whose_data_is_the_response() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), attributes=["remote"])
        llmflow.llm_call_end(handle, response("done"))
    start, end = events
    assert (end.scope_category, end.category, end.name) == ("end", "llm", "chat")
    assert end.uuid == start.uuid
    assert end.parent_uuid == start.parent_uuid
    assert end.attributes == start.attributes == ("remote",)
    assert end.data == {"id": "r-1", "text": "done"}
    assert end.metadata is None
    assert handle.ended
    assert_valid_stream(events)


def test_llm_call_end_data_falls_back_to_given_data_when_response_is_null() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), data={"from": "handle"})
        llmflow.llm_call_end(handle, None, data={"from": "end"})
    assert events[-1].data == {"from": "end"}


def test_llm_call_end_data_falls_back_to_handle_data_when_response_is_null() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), data={"from": "handle"})
        llmflow.llm_call_end(handle, None)
    assert events[-1].data == {"from": "handle"}


def test_llm_call_end_data_falls_back_when_the_sanitized_response_is_null() -> None:
    guardrails.register_llm_sanitize_response("drop", 0, lambda resp, ctx: None)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), data={"from": "handle"})
        llmflow.llm_call_end(handle, response())
    assert events[-1].data == {"from": "handle"}


def test_llm_call_end_given_data_is_ignored_when_the_response_is_not_null() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), data={"from": "handle"})
        llmflow.llm_call_end(handle, response(), data={"from": "end"})
    assert events[-1].data == response()


def test_llm_call_end_metadata_is_handle_metadata_with_end_metadata_merged_over() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), metadata={"a": 1, "b": 1})
        llmflow.llm_call_end(handle, response(), metadata={"b": 2, "c": 3})
    assert events[0].metadata == {"a": 1, "b": 1}
    assert events[1].metadata == {"a": 1, "b": 2, "c": 3}
    assert handle.metadata == {"a": 1, "b": 1}


def test_llm_call_end_response_codec_annotates_the_sanitized_response() -> None:
    seen: list[Any] = []

    def redact(resp: Any, ctx: Any) -> Any:
        seen.append(ctx.codec)
        return {**resp, "text": "[redacted]"}

    guardrails.register_llm_sanitize_response("redact", 0, redact)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), model_name="tiny-1")
        llmflow.llm_call_end(handle, response("secret"), response_codec=TinyCodec())
    end = events[-1]
    assert end.data == {"id": "r-1", "text": "[redacted]"}
    assert end.data_schema == TinyCodec.data_schema
    assert end.category_profile == {
        "model_name": "tiny-1",
        "annotated_response": {"id": "r-1", "text": "[redacted]"},
    }
    assert seen == [TinyCodec.data_schema]


def test_llm_call_end_explicit_annotated_response_wins_over_the_codec() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request())
        llmflow.llm_call_end(
            handle,
            response(),
            annotated_response=TinyResponse(id="given", text="given"),
            response_codec=TinyCodec(),
        )
    assert events[-1].category_profile == {"annotated_response": {"id": "given", "text": "given"}}


def test_llm_call_end_without_timestamp_ends_now() -> None:
    before = llmflow._scope.now_us()
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), timestamp=before - 5_000)
        llmflow.llm_call_end(handle, response())
    after = llmflow._scope.now_us()
    assert before <= events[-1].timestamp_us <= after


def test_llm_call_end_explicit_timestamp_is_used() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), timestamp=start)
        llmflow.llm_call_end(handle, response(), timestamp=end)
    assert [e.timestamp for e in events] == [
        "2030-01-01T00:00:00.000000Z",
        "2030-01-01T00:00:01.000000Z",
    ]


def test_llm_call_end_is_start_plus_one_microsecond_when_the_clock_has_not_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = 1_900_000_000_000_000
    monkeypatch.setattr(llmflow._scope, "now_us", lambda: frozen)
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), timestamp=frozen)
        llmflow.llm_call_end(handle, response())
    assert [e.timestamp_us for e in events] == [frozen, frozen + 1]


def test_llm_call_end_is_start_plus_one_microsecond_when_the_start_is_in_the_future() -> None:
    future = llmflow._scope.now_us() + 3_600_000_000
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request(), timestamp=future)
        llmflow.llm_call_end(handle, response())
    assert [e.timestamp_us for e in events] == [future, future + 1]
    assert_valid_stream(events)


@pytest.mark.parametrize("offset", [0, -1, -1_000_000])
def test_llm_call_end_explicit_timestamp_not_after_start_is_an_error_and_emits_nothing(
    offset: int,
) -> None:
    start = 1_900_000_000_000_000
    handle = llmflow.llm_call("chat", request(), timestamp=start)
    with testing.capture() as events:
        with pytest.raises(ValueError, match="timestamp"):
            llmflow.llm_call_end(handle, response(), timestamp=start + offset)
    assert events == []
    assert not handle.ended
    with testing.capture() as events:
        llmflow.llm_call_end(handle, response(), timestamp=start + 10)
    assert [e.scope_category for e in events] == ["end"]


def test_llm_call_end_naive_datetime_is_rejected_and_emits_nothing() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        with pytest.raises(ValueError, match="timestamp"):
            llmflow.llm_call_end(handle, response(), timestamp=datetime(2030, 1, 1))
    assert events == []


def test_llm_call_end_twice_is_a_handle_error_and_emits_nothing() -> None:
    handle = llmflow.llm_call("chat", request())
    llmflow.llm_call_end(handle, response())
    llmflow.flush()
    with testing.capture() as events:
        with pytest.raises(HandleError, match="already ended"):
            llmflow.llm_call_end(handle, response())
        with pytest.raises(llmflow.FlowError):
            llmflow.llm_call_end(handle, None, metadata={"x": 1})
    assert events == []


def test_llm_call_end_rejects_something_that_is_not_a_handle() -> None:
    with testing.capture() as events:
        with pytest.raises(HandleError, match="handle"):
            llmflow.llm_call_end("not a handle", response())  # type: ignore[arg-type]
        with pytest.raises(HandleError, match="handle"):
            llmflow.llm_call_end(llmflow.push_scope("s"), response())  # type: ignore[arg-type]
    assert [e.category for e in events] == ["function"]


def test_llm_call_end_invalid_metadata_is_an_error_and_the_handle_stays_open() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        with pytest.raises(llmflow.InvalidPayloadError, match="metadata"):
            llmflow.llm_call_end(handle, response(), metadata={1: "x"})  # type: ignore[dict-item]
    assert events == []
    assert not handle.ended


def test_llm_call_end_non_json_data_is_an_error_and_the_handle_stays_open() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        with pytest.raises(llmflow.InvalidPayloadError, match="data"):
            llmflow.llm_call_end(handle, None, data={"x": {1, 2}})
    assert events == []
    assert not handle.ended


def test_llm_call_end_non_json_response_is_an_error_and_the_handle_stays_open() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        with pytest.raises(llmflow.InvalidPayloadError, match="response"):
            llmflow.llm_call_end(handle, {"choices": object()})
    assert events == []
    assert not handle.ended


# -- params objects ------------------------------------------------------------------


def test_llm_call_accepts_llm_call_params() -> None:
    params = LlmCallParams(
        name="chat", request=request(), model_name="tiny-1", metadata={"m": 1}, data={"d": 1}
    )
    with testing.capture() as events:
        handle = llmflow.llm_call(params)
    assert handle.name == "chat"
    assert handle.data == {"d": 1}
    assert events[0].metadata == {"m": 1}
    assert events[0].category_profile == {"model_name": "tiny-1"}


def test_llm_call_end_accepts_llm_call_end_params() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        llmflow.llm_call_end(
            LlmCallEndParams(handle=handle, response=response(), metadata={"e": 1})
        )
    assert events[0].data == response()
    assert events[0].metadata == {"e": 1}


def test_llm_call_end_accepts_end_llm_handle_params_as_second_argument() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        llmflow.llm_call_end(
            handle,
            EndLlmHandleParams(response=response(), response_codec=TinyCodec()),
        )
    assert events[0].data == response()
    assert events[0].data_schema == TinyCodec.data_schema


def test_llm_handle_create_accepts_create_llm_handle_params_and_emits_nothing() -> None:
    with testing.capture() as events:
        handle = LlmHandle.create(
            CreateLlmHandleParams(name="chat", model_name="tiny-1", data={"d": 1})
        )
    assert events == []
    assert isinstance(handle, LlmHandle)
    assert (handle.name, handle.model_name, handle.data) == ("chat", "tiny-1", {"d": 1})
    assert not handle.ended


def test_params_object_and_keywords_together_raise_type_error() -> None:
    handle = llmflow.llm_call("chat", request())
    with testing.capture() as events:
        with pytest.raises(TypeError, match="not both"):
            llmflow.llm_call(LlmCallParams(name="x", request=request()), model_name="m")
        with pytest.raises(TypeError, match="not both"):
            llmflow.llm_call(LlmCallParams(name="x", request=request()), request())
        with pytest.raises(TypeError, match="not both"):
            llmflow.llm_call_end(LlmCallEndParams(handle=handle), response())
        with pytest.raises(TypeError, match="not both"):
            llmflow.llm_call_end(LlmCallEndParams(handle=handle), metadata={"m": 1})
        with pytest.raises(TypeError, match="not both"):
            llmflow.llm_call_end(handle, EndLlmHandleParams(), metadata={"m": 1})
    assert events == []
    assert not handle.ended


# -- §9 bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"request": {"headers": {}, "content": {}}}, "request"),
        ({"request": None}, "request"),
        ({"request": LlmRequest({}, {"x": {1, 2}})}, "request"),
        ({"metadata": {"": 1}}, "metadata"),
        ({"metadata": ["not", "a", "dict"]}, "metadata"),
        ({"model_name": 3}, "model_name"),
        ({"attributes": "streaming"}, "attributes"),
        ({"timestamp": datetime(2030, 1, 1)}, "timestamp"),
        ({"timestamp": "2030-01-01T00:00:00Z"}, "timestamp"),
        ({"parent": 42}, "parent"),
        ({"name": ""}, "name"),
        ({"data": {"x": object()}}, "data"),
    ],
)
def test_llm_call_bad_input_names_the_parameter_and_emits_nothing(
    kwargs: dict[str, Any], param: str
) -> None:
    arguments: dict[str, Any] = {"name": "chat", "request": request(), **kwargs}
    with testing.capture() as events:
        with pytest.raises((TypeError, ValueError)) as info:
            llmflow.llm_call(arguments.pop("name"), arguments.pop("request"), **arguments)
    assert param in str(info.value)
    assert events == []


def test_llm_call_snapshots_the_request_at_emission() -> None:
    real = request()
    with testing.capture() as events:
        llmflow.llm_call("chat", real)
        real.content["messages"].append("mutated later")
    assert events[0].data["content"]["messages"] == ["hello"]


def test_a_bad_call_loses_nothing_already_emitted() -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("chat", request())
        with pytest.raises(TypeError):
            llmflow.llm_call("chat", "not a request")  # type: ignore[arg-type]
        llmflow.llm_call_end(handle, response())
    assert [e.scope_category for e in llm_events(events)] == ["start", "end"]


def test_params_conversion_does_not_depend_on_argument_order() -> None:
    # The explicit conversion names every other argument, so a clash is reported by name.
    with pytest.raises(llmflow.ParameterTypeError, match=r"also got parent, timestamp"):
        llmflow.llm_call(
            LlmCallParams(name="x", request=request()),
            timestamp=1,
            parent="0190b3c6-6f1c-7d2e-8a3b-4c5d6e7f8091",
        )


def test_llm_call_validates_the_request_up_front_even_with_a_sanitizer() -> None:
    guardrails.register_llm_sanitize_request("keep", 0, lambda req, ctx: req)
    bad = LlmRequest({}, {"messages": {1, 2}})
    with testing.capture() as events:
        with pytest.raises(llmflow.InvalidPayloadError, match=r"^request:"):
            llmflow.llm_call("chat", bad)
    assert events == []


def test_a_sanitizer_assigning_to_the_recorded_copy_never_reaches_the_real_request() -> None:
    def blank(req: LlmRequest, ctx: Any) -> LlmRequest:
        req.content = {"redacted": True}
        return req

    guardrails.register_llm_sanitize_request("blank", 0, blank)
    real = request()
    before = dict(real.content)
    with testing.capture() as events:
        llmflow.llm_call("chat", real)
    assert real.content == before
    assert events[0].data["content"] == {"redacted": True}
