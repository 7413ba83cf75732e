"""SPEC §5: middleware families, priorities, scope-local registration, sanitizers, credentials."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import llmflow
from _llm_support import (
    CREDENTIAL_HEADERS,
    TinyCodec,
    assert_valid_stream,
    llm_events,
    request,
    response,
)
from llmflow import (
    DuplicateRegistrationError,
    LlmRequest,
    ScopeError,
    guardrails,
    intercepts,
    testing,
)

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]

LLM_FAMILIES = [
    (guardrails, "llm_conditional_execution"),
    (guardrails, "llm_sanitize_request"),
    (guardrails, "llm_sanitize_response"),
    (intercepts, "llm_request"),
    (intercepts, "llm_execution"),
    (intercepts, "llm_stream_execution"),
]
TOOL_FAMILIES = [
    (guardrails, "tool_conditional_execution"),
    (guardrails, "tool_sanitize_request"),
    (guardrails, "tool_sanitize_response"),
    (intercepts, "tool_request"),
    (intercepts, "tool_execution"),
]
ALL_FAMILIES = LLM_FAMILIES + TOOL_FAMILIES


def _family_ids(families: list[tuple[Any, str]]) -> list[str]:
    return [name for _module, name in families]


def _register(module: Any, family: str) -> Callable[..., None]:
    return getattr(module, f"register_{family}")  # type: ignore[no-any-return]


def _deregister(module: Any, family: str) -> Callable[..., bool]:
    return getattr(module, f"deregister_{family}")  # type: ignore[no-any-return]


def _calls_recorder(log: list[str]) -> Callable[[str], Callable[[LlmRequest, Any], LlmRequest]]:
    def make(label: str) -> Callable[[LlmRequest, Any], LlmRequest]:
        def intercept(req: LlmRequest, ctx: Any) -> LlmRequest:
            log.append(label)
            return req

        return intercept

    return make


# -- registries ----------------------------------------------------------------------


@pytest.mark.parametrize(("module", "family"), ALL_FAMILIES, ids=_family_ids(ALL_FAMILIES))
def test_every_family_registers_and_deregisters_returning_whether_it_existed(
    module: Any, family: str
) -> None:
    _register(module, family)("entry", 0, lambda *args: None)
    assert _deregister(module, family)("entry") is True
    assert _deregister(module, family)("entry") is False
    assert _deregister(module, family)("never-registered") is False


@pytest.mark.parametrize(("module", "family"), ALL_FAMILIES, ids=_family_ids(ALL_FAMILIES))
def test_duplicate_name_in_the_same_registry_raises(module: Any, family: str) -> None:
    _register(module, family)("dup", 0, lambda *args: None)
    with pytest.raises(DuplicateRegistrationError, match="dup"):
        _register(module, family)("dup", 5, lambda *args: None)
    with llmflow.scope("s") as handle:
        _register(module, family)("dup", 0, lambda *args: None, scope=handle)  # other registry
        with pytest.raises(DuplicateRegistrationError, match="dup"):
            _register(module, family)("dup", 1, lambda *args: None, scope=handle)


def test_same_name_in_different_families_is_allowed() -> None:
    guardrails.register_llm_sanitize_request("shared", 0, lambda req, ctx: req)
    guardrails.register_llm_sanitize_response("shared", 0, lambda resp, ctx: resp)
    intercepts.register_llm_request("shared", 0, lambda req, ctx: req)


@pytest.mark.parametrize(
    ("name", "priority", "fn", "param"),
    [
        ("", 0, lambda r: None, "name"),
        (3, 0, lambda r: None, "name"),
        ("x", "high", lambda r: None, "priority"),
        ("x", True, lambda r: None, "priority"),
        ("x", 0, "not callable", "fn"),
    ],
)
def test_registration_bad_input_names_the_parameter(
    name: Any, priority: Any, fn: Any, param: str
) -> None:
    with pytest.raises(TypeError, match=param):
        guardrails.register_llm_conditional_execution(name, priority, fn)


def test_registration_with_a_non_scope_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="scope"):
        intercepts.register_llm_request("x", 0, lambda r, c: r, scope="not a scope")  # type: ignore[arg-type]


def test_entries_run_in_ascending_priority_with_ties_broken_by_name() -> None:
    log: list[str] = []
    make = _calls_recorder(log)
    intercepts.register_llm_request("b", 10, make("b@10"))
    intercepts.register_llm_request("z", -5, make("z@-5"))
    intercepts.register_llm_request("a", 10, make("a@10"))
    intercepts.register_llm_request("m", 0, make("m@0"))
    llmflow.llm_request_intercepts_sync("chat", request())
    assert log == ["z@-5", "m@0", "a@10", "b@10"]


def test_guardrails_and_sanitizers_follow_the_same_order() -> None:
    log: list[str] = []

    def guard(label: str) -> Callable[[LlmRequest], None]:
        return lambda req: log.append(label)

    def sanitizer(label: str) -> Callable[[Any, Any], Any]:
        return lambda payload, ctx: log.append(label) or payload

    guardrails.register_llm_conditional_execution("g2", 1, guard("g2"))
    guardrails.register_llm_conditional_execution("g1", 1, guard("g1"))
    guardrails.register_llm_conditional_execution("g0", 0, guard("g0"))
    guardrails.register_llm_sanitize_request("sq-b", 0, sanitizer("sq-b"))
    guardrails.register_llm_sanitize_request("sq-a", 0, sanitizer("sq-a"))
    guardrails.register_llm_sanitize_response("sr-late", 9, sanitizer("sr-late"))
    guardrails.register_llm_sanitize_response("sr-early", -9, sanitizer("sr-early"))
    llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    assert log == ["g0", "g1", "g2", "sq-a", "sq-b", "sr-early", "sr-late"]


def test_a_deregistered_entry_no_longer_runs() -> None:
    log: list[str] = []
    intercepts.register_llm_request("gone", 0, _calls_recorder(log)("gone"))
    intercepts.deregister_llm_request("gone")
    llmflow.llm_request_intercepts_sync("chat", request())
    assert log == []


# -- scope-local registration --------------------------------------------------------


def test_scope_local_entries_apply_under_the_scope_and_are_gone_after_it_closes() -> None:
    log: list[str] = []
    make = _calls_recorder(log)
    intercepts.register_llm_request("global", 5, make("global"))
    handle = llmflow.push_scope("tenant")
    intercepts.register_llm_request("local-early", 0, make("local-early"), scope=handle)
    intercepts.register_llm_request("local-late", 9, make("local-late"), scope=handle)
    with llmflow.scope("nested"):
        llmflow.llm_request_intercepts_sync("inside", request())
    llmflow.pop_scope(handle)
    llmflow.llm_request_intercepts_sync("after", request())
    assert log == ["local-early", "global", "local-late", "global"]


def test_scope_local_entries_of_nested_scopes_merge_by_priority() -> None:
    log: list[str] = []
    make = _calls_recorder(log)
    with llmflow.scope("outer") as outer:
        intercepts.register_llm_request("outer", 2, make("outer"), scope=outer)
        with llmflow.scope("inner") as inner:
            intercepts.register_llm_request("inner", 1, make("inner"), scope=inner)
            llmflow.llm_request_intercepts_sync("both", request())
        llmflow.llm_request_intercepts_sync("outer-only", request())
    assert log == ["inner", "outer", "outer"]


def test_scope_local_deregister_returns_whether_it_existed() -> None:
    with llmflow.scope("s") as handle:
        assert intercepts.deregister_llm_execution("x", scope=handle) is False
        intercepts.register_llm_execution("x", 0, lambda req, nxt: nxt(), scope=handle)
        assert intercepts.deregister_llm_execution("x") is False  # not global
        assert intercepts.deregister_llm_execution("x", scope=handle) is True
        assert intercepts.deregister_llm_execution("x", scope=handle) is False


def test_registering_on_an_ended_scope_is_a_scope_error() -> None:
    with llmflow.scope("s") as handle:
        pass
    with pytest.raises(ScopeError, match="ended"):
        guardrails.register_llm_conditional_execution("late", 0, lambda r: None, scope=handle)
    assert guardrails.deregister_llm_conditional_execution("late", scope=handle) is False


def test_scope_local_guardrail_rejects_only_inside_its_scope() -> None:
    with llmflow.scope("restricted") as handle:
        guardrails.register_llm_conditional_execution("deny", 0, lambda r: "no", scope=handle)
        with pytest.raises(llmflow.GuardrailRejected):
            llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    assert llmflow.llm_call_execute_sync("chat", request(), lambda req: response()) == response()


def test_scope_local_entries_reach_child_tasks_but_not_sibling_work(run_async: RunAsync) -> None:
    seen: list[str] = []

    def record(req: LlmRequest, ctx: Any) -> LlmRequest:
        seen.append(ctx.name)
        return req

    async def call(label: str) -> None:
        await llmflow.llm_call_execute(label, request(), lambda req: response())

    async def main() -> None:
        scope_open = asyncio.Event()
        sibling_done = asyncio.Event()

        async def sibling() -> None:  # created outside the scope, runs while it is open
            await scope_open.wait()
            await call("sibling")
            sibling_done.set()

        sibling_task = asyncio.create_task(sibling())
        lingering: asyncio.Task[None] | None = None
        release = asyncio.Event()

        async def late_child() -> None:  # created inside the scope, calls after it closed
            await release.wait()
            await call("late-child")

        async with llmflow.scope("tenant") as tenant:
            intercepts.register_llm_request("local", 0, record, scope=tenant)
            await call("inside")
            await asyncio.create_task(call("child-task"))
            await asyncio.gather(call("gathered-1"), call("gathered-2"))
            lingering = asyncio.create_task(late_child())
            scope_open.set()
            await sibling_done.wait()
        release.set()
        await lingering
        await sibling_task
        await call("after")

    with testing.capture() as events:
        run_async(main())
    assert sorted(seen) == ["child-task", "gathered-1", "gathered-2", "inside"]
    assert_valid_stream(events)


def test_scope_local_execution_intercept_in_a_child_task_does_not_leak_to_parent(
    run_async: RunAsync,
) -> None:
    async def main() -> tuple[Any, Any]:
        async def child() -> Any:
            with llmflow.scope("child") as handle:
                intercepts.register_llm_execution(
                    "mock", 0, lambda req, nxt: {"mocked": True}, scope=handle
                )
                return await llmflow.llm_call_execute("c", request(), lambda req: response())

        inner = await asyncio.create_task(child())
        outer = await llmflow.llm_call_execute("p", request(), lambda req: response())
        return inner, outer

    inner, outer = run_async(main())
    assert inner == {"mocked": True}
    assert outer == response()


# -- guardrail family rules ------------------------------------------------------------


def test_guardrail_string_rejects_with_that_reason() -> None:
    guardrails.register_llm_conditional_execution("len", 0, lambda req: "too long")
    with pytest.raises(llmflow.GuardrailRejected) as info:
        llmflow.llm_conditional_execution_sync(request())
    assert str(info.value) == "guardrail 'len' rejected the call: too long"


def test_guardrail_receives_the_real_request_with_credentials() -> None:
    seen: list[LlmRequest] = []
    guardrails.register_llm_conditional_execution("spy", 0, seen.append)
    real = LlmRequest({"Authorization": "Bearer k"}, {"model": "m", "messages": []})
    llmflow.llm_call_execute_sync("chat", real, lambda req: response())
    assert seen == [real]


# -- sanitizer family rules -------------------------------------------------------------


def test_sanitize_request_rewrites_only_the_event_copy() -> None:
    received: list[LlmRequest] = []

    def redact(req: LlmRequest, ctx: Any) -> LlmRequest:
        return LlmRequest(req.headers, {**req.content, "messages": ["[redacted]"]})

    guardrails.register_llm_sanitize_request("redact", 0, redact)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request(), lambda req: received.append(req) or {})
    assert received[0].content["messages"] == ["hello"]
    assert events[0].data["content"]["messages"] == ["[redacted]"]


def test_sanitize_response_rewrites_only_the_event_copy() -> None:
    raw = response("secret")
    guardrails.register_llm_sanitize_response(
        "redact", 0, lambda resp, ctx: {**resp, "text": "[redacted]"}
    )
    with testing.capture() as events:
        got = llmflow.llm_call_execute_sync("chat", request(), lambda req: raw)
    assert got is raw and raw["text"] == "secret"
    assert events[-1].data == {"id": "r-1", "text": "[redacted]"}


def test_sanitizer_context_carries_call_name_and_codec_identity() -> None:
    contexts: list[Any] = []
    guardrails.register_llm_sanitize_request("a", 0, lambda req, ctx: contexts.append(ctx) or req)
    guardrails.register_llm_sanitize_response(
        "b", 0, lambda resp, ctx: contexts.append(ctx) or resp
    )
    llmflow.llm_call_execute_sync(
        "chat", request(), lambda req: response(), codec=TinyCodec(), response_codec=TinyCodec()
    )
    llmflow.llm_call_execute_sync("plain", request(), lambda req: response())
    assert [(c.name, c.phase, c.codec) for c in contexts] == [
        ("chat", "request", TinyCodec.data_schema),
        ("chat", "response", TinyCodec.data_schema),
        ("plain", "request", None),
        ("plain", "response", None),
    ]


def _omitting_request_sanitizer(kind: str) -> Callable[[LlmRequest, Any], Any]:
    def sanitizer(req: LlmRequest, ctx: Any) -> Any:
        if kind == "none":
            return None
        if kind == "raise":
            raise RuntimeError("sanitizer bug")
        if kind == "wrong-type":
            return req.to_dict()  # a dict is not an LlmRequest
        return LlmRequest(req.headers, {"bad": {1, 2}})  # not JSON

    return sanitizer


def _omitting_response_sanitizer(kind: str) -> Callable[[Any, Any], Any]:
    def sanitizer(resp: Any, ctx: Any) -> Any:
        if kind == "none":
            return None
        if kind == "raise":
            raise RuntimeError("sanitizer bug")
        if kind == "wrong-type":
            return object()
        return {"bad": {1, 2}}  # not JSON

    return sanitizer


OMITTING = ["none", "raise", "wrong-type", "not-json"]


@pytest.mark.parametrize("kind", OMITTING)
def test_sanitize_request_none_error_or_invalid_omits_payload_and_annotation_and_stops_chain(
    kind: str, runtime: llmflow.Runtime
) -> None:
    later: list[object] = []
    received: list[LlmRequest] = []
    guardrails.register_llm_sanitize_request("first", 0, _omitting_request_sanitizer(kind))
    guardrails.register_llm_sanitize_request("later", 1, lambda req, ctx: later.append(req) or req)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat",
            request(),
            lambda req: received.append(req) or response(),
            codec=TinyCodec(),
            model_name="tiny-1",
        )
    start = events[0]
    assert start.data is None
    assert start.data_schema is None
    assert start.category_profile == {"model_name": "tiny-1"}  # no annotated_request
    assert later == []
    assert received[0] == request()  # the provider call is unaffected
    failures = runtime.diagnostics().failure_count()
    assert failures == (0 if kind == "none" else 1)


@pytest.mark.parametrize("kind", OMITTING)
def test_sanitize_response_none_error_or_invalid_omits_payload_and_annotation_and_stops_chain(
    kind: str, runtime: llmflow.Runtime
) -> None:
    later: list[object] = []
    guardrails.register_llm_sanitize_response("first", 0, _omitting_response_sanitizer(kind))
    guardrails.register_llm_sanitize_response(
        "later", 1, lambda resp, ctx: later.append(resp) or resp
    )
    with testing.capture() as events:
        got = llmflow.llm_call_execute_sync(
            "chat", request(), lambda req: response(), response_codec=TinyCodec()
        )
        handle = llmflow.llm_call("manual", request())
        llmflow.llm_call_end(
            handle, response(), annotated_response={"id": "given"}, response_codec=TinyCodec()
        )
    assert got == response()
    for end in (events[1], events[3]):
        assert end.scope_category == "end"
        assert end.data is None
        assert end.data_schema is None
        assert end.category_profile is None  # no annotated_response, given or decoded
    assert later == []
    failures = runtime.diagnostics().failure_count()
    assert failures == (0 if kind == "none" else 2)


def test_sanitizer_failures_are_counted_under_the_sanitizer_name(
    runtime: llmflow.Runtime,
) -> None:
    guardrails.register_llm_sanitize_request("pii", 0, _omitting_request_sanitizer("raise"))
    llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    diagnostics = llmflow.diagnostics()
    assert diagnostics.failure_count() == 1
    (source,) = diagnostics.failures
    assert "pii" in source and "sanitize_request" in source
    assert "sanitizer bug" in diagnostics.last_errors[source]


# -- credential headers -------------------------------------------------------------------


def _credential_request() -> LlmRequest:
    headers = {}
    for index, name in enumerate(CREDENTIAL_HEADERS):
        spelled = name.upper() if index % 3 == 0 else name.title() if index % 3 == 1 else name
        headers[spelled] = f"secret-{index}"
    headers["X-Request-Id"] = "keep-me"
    return LlmRequest(headers, {"model": "tiny-1", "messages": ["hello"]})


def test_credential_headers_never_reach_sanitizers_subscribers_or_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    llmflow.exporters.AtofFileExporter(path, mode="overwrite").register()
    real = _credential_request()
    provider_saw: list[dict[str, str]] = []
    sanitizer_saw: list[dict[str, str]] = []
    event_sanitizer_saw: list[Any] = []
    subscriber_saw: list[bytes] = []

    guardrails.register_llm_sanitize_request(
        "spy", 0, lambda req, ctx: sanitizer_saw.append(dict(req.headers)) or req
    )
    llmflow.events.register_sanitizer(
        "scope_start", "spy", 0, lambda event: _record_llm_headers(event_sanitizer_saw, event)
    )
    llmflow.subscribers.register("spy", lambda event: subscriber_saw.append(event.to_json()))

    def provider(req: LlmRequest) -> Any:
        provider_saw.append(dict(req.headers))
        return response()

    llmflow.llm_call_execute_sync("managed", real, provider)
    asyncio.run(llmflow.llm_call_execute("managed-async", real, provider))
    handle = llmflow.llm_call("manual", real)
    llmflow.llm_call_end(handle, response())
    llmflow.flush()

    assert provider_saw == [real.headers, real.headers]
    assert real.headers == _credential_request().headers
    assert sanitizer_saw == [{"X-Request-Id": "keep-me"}] * 3
    assert event_sanitizer_saw == [{"X-Request-Id": "keep-me"}] * 3
    written = path.read_bytes()
    for blob in [written, *subscriber_saw]:
        assert b"secret-" not in blob
    assert written.count(b"keep-me") == 3


def _record_llm_headers(log: list[Any], event: llmflow.Event) -> None:
    if event.category == "llm":
        log.append(event.data["headers"])


def test_headers_that_merely_contain_credential_names_are_kept() -> None:
    real = LlmRequest(
        {"x-authorization-hint": "a", "cookie-policy": "b", "api-key-id": "c"}, {"model": "m"}
    )
    with testing.capture() as events:
        llmflow.llm_call("chat", real)
    assert events[0].data["headers"] == real.headers


# -- event sanitizers and metadata injectors on llm events ---------------------------------


def test_event_sanitizer_may_replace_data_of_llm_events() -> None:
    llmflow.events.register_sanitizer(
        "scope_end", "drop-output", 0, lambda e: {"data": None} if e.category == "llm" else None
    )
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request(), lambda req: response())
    assert events[0].data is not None
    assert events[1].data is None


def test_failing_event_sanitizer_clears_payload_fields_fail_closed(
    runtime: llmflow.Runtime,
) -> None:
    def broken(event: llmflow.Event) -> Any:
        raise RuntimeError("bug")

    llmflow.events.register_sanitizer("scope_start", "broken", 0, broken)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", request(), lambda req: response(), metadata={"m": 1}, model_name="t"
        )
    start = events[0]
    assert (start.data, start.metadata, start.category_profile) == (None, None, None)
    assert runtime.diagnostics().failure_count("scope_start_sanitizer") == 1


def test_metadata_injector_adds_never_overwrites_and_fails_open(
    runtime: llmflow.Runtime,
) -> None:
    def broken(event: llmflow.Event) -> Any:
        raise RuntimeError("bug")

    llmflow.events.register_metadata_injector("env", 0, lambda e: {"env": "test", "m": "over"})
    llmflow.events.register_metadata_injector("broken", 1, broken)
    with testing.capture() as events:
        llmflow.llm_call_execute_sync("chat", request(), lambda req: response(), metadata={"m": 1})
    assert [e.metadata for e in llm_events(events)] == [{"m": 1, "env": "test"}] * 2
    assert runtime.diagnostics().failure_count("metadata_injector") == 2


def test_each_request_intercept_sees_the_annotated_view_of_the_current_request() -> None:
    views: list[Any] = []

    def first(req: LlmRequest, ctx: Any) -> Any:
        views.append(ctx.annotated)
        return ctx.annotated.model_copy(update={"model": "tiny-2"})

    def second(req: LlmRequest, ctx: Any) -> Any:
        views.append(ctx.annotated)
        return req

    intercepts.register_llm_request("first", 0, first)
    intercepts.register_llm_request("second", 1, second)
    got = llmflow.llm_request_intercepts_sync("chat", request(), codec=TinyCodec())
    assert [v.model for v in views] == ["tiny-1", "tiny-2"]
    assert got.content["model"] == "tiny-2"


# -- the family table (issue 10 item 3) -------------------------------------------


def test_every_public_register_function_is_generated_from_one_table_entry() -> None:
    from llmflow._families import FAMILIES

    public = {family: module for module, family in ALL_FAMILIES}
    assert sorted(f.public for f in FAMILIES.values()) == sorted(public)
    for family in FAMILIES.values():
        module = public[family.public]
        register = _register(module, family.public)
        deregister = _deregister(module, family.public)
        assert register.__name__ == f"register_{family.public}"
        assert deregister.__name__ == f"deregister_{family.public}"
        assert register.__module__ == module.__name__
        assert family.signature in (register.__doc__ or "")


def test_an_unknown_family_name_is_an_error_not_a_dead_registry() -> None:
    from llmflow._families import family_of

    with pytest.raises(llmflow.InvalidParameterError, match="family: expected one of"):
        family_of("llm.sanitise_request")
    assert family_of("llm.sanitize_request").key == "llm.sanitize_request"


def test_each_family_key_appears_in_one_place_only_in_the_sources() -> None:
    src = Path(llmflow.__file__).parent
    for family in ("llm.conditional_execution", "llm.sanitize_request", "tool.execution"):
        holders = [
            p.name for p in src.rglob("*.py") if f'"{family}"' in p.read_text(encoding="utf-8")
        ]
        assert holders == ["_families.py"], (family, holders)


def test_deregister_with_a_non_scope_raises_a_type_error_naming_scope() -> None:
    with pytest.raises(llmflow.ParameterTypeError, match="scope: expected a scope handle"):
        guardrails.deregister_llm_sanitize_request("x", scope="nope")  # type: ignore[arg-type]
