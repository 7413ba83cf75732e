"""The public surface: names, the public module path, the error hierarchy (issue 10 items 5, 6)."""

from __future__ import annotations

import inspect
import pickle
import threading
from typing import Any

import pytest

import llmflow
from llmflow import _scope, guardrails, testing


def test_every_public_class_and_function_reports_the_llmflow_module() -> None:
    for name in llmflow.__all__:
        obj = getattr(llmflow, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__module__ == "llmflow", name


def test_a_public_error_pickles_by_its_public_path() -> None:
    error = llmflow.GuardrailRejected("g", "no")
    assert type(pickle.loads(pickle.dumps(error))) is llmflow.GuardrailRejected


def test_exporter_internals_are_not_top_level_names() -> None:
    for name in ("LineParts", "LineExporter", "Exporter"):
        assert name not in llmflow.__all__
    assert hasattr(llmflow.exporters, "LineExporter")


@pytest.mark.parametrize(
    ("call", "builtin", "param"),
    [
        (lambda: llmflow.mark(""), TypeError, "name"),
        (lambda: llmflow.mark("m", parent="not-a-uuid"), TypeError, "parent"),
        (lambda: llmflow.mark("m", category="nope"), ValueError, "category"),
        (lambda: llmflow.mark("m", timestamp=1.5), TypeError, "timestamp"),
        (lambda: llmflow.push_scope("s", attributes=[1]), TypeError, "attributes"),
        (lambda: llmflow.pop_scope("nope"), TypeError, "handle"),  # type: ignore[arg-type]
        (lambda: llmflow.llm_call("c", {}), TypeError, "request"),  # type: ignore[arg-type]
        (lambda: llmflow.tool_call("t", {}, tool_call_id=3), TypeError, "tool_call_id"),
        (lambda: llmflow.LlmRequest(headers=[]), TypeError, "LlmRequest.headers"),  # type: ignore[arg-type]
        (lambda: guardrails.register_llm_sanitize_request("", 0, print), TypeError, "name"),
        (lambda: llmflow.events.register_sanitizer("nope", "n", 0, print), ValueError, "kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_raise_a_flow_error_that_is_also_the_builtin(
    call: Any, builtin: type[Exception], param: str
) -> None:
    with testing.capture() as events:
        with pytest.raises(llmflow.FlowError) as caught:
            call()
    assert isinstance(caught.value, builtin)
    assert str(caught.value).startswith(param)
    assert events == []


def test_next_called_after_the_intercept_returned_is_a_middleware_protocol_error() -> None:
    kept: list[Any] = []

    def keep(request: Any, call_next: Any) -> Any:
        kept.append(call_next)
        return call_next(request)

    llmflow.intercepts.register_tool_execution("keep", 0, keep)
    llmflow.tool_call_execute_sync("t", {}, lambda a: 1)
    with pytest.raises(llmflow.MiddlewareProtocolError, match="after it returned"):
        kept[0]({})
    assert issubclass(llmflow.MiddlewareProtocolError, RuntimeError)


def test_sanitize_context_names_its_schema_data_schema_and_keeps_codec_as_an_alias() -> None:
    seen: list[Any] = []
    guardrails.register_tool_sanitize_request("see", 0, lambda a, ctx: seen.append(ctx) or a)
    llmflow.tool_call("t", {})
    assert seen[0].data_schema is None
    assert seen[0].codec is seen[0].data_schema


def test_current_scope_inside_a_managed_call_is_the_call_handle() -> None:
    inside: list[Any] = []
    with llmflow.scope("outer") as outer:
        llmflow.tool_call_execute_sync("t", {}, lambda a: inside.append(llmflow.current_scope()))
        assert llmflow.current_scope() is outer
    assert isinstance(inside[0], llmflow.ToolHandle)


def test_live_local_registries_counts_exactly_under_concurrent_registration() -> None:
    before = _scope.live_local_registries
    handles = [llmflow.push_scope(f"s{i}") for i in range(64)]
    for handle in reversed(handles):
        llmflow.pop_scope(handle)
    barrier = threading.Barrier(8)

    def churn(index: int) -> None:
        barrier.wait()
        for round_ in range(200):
            with llmflow.scope(f"w{index}.{round_}") as s:
                for family in (
                    guardrails.register_llm_sanitize_request,
                    guardrails.register_tool_sanitize_request,
                ):
                    family(f"x{index}", 0, lambda r, c: r, scope=s)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _scope.live_local_registries == before
