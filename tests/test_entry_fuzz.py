"""Fuzzing the public entry points: bad input never gets past the call site (issue 12).

For names, payloads, timestamps and headers drawn from hostile strategies (lone
surrogates, huge integers, NaN, sets, objects, naive datetimes, header lists),
every call either records events that serialize to valid JSON, or raises a
``FlowError`` that is also ``TypeError``/``ValueError``, whose message starts
with the name of the bad parameter, before anything is emitted.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import LlmRequest, testing

PARAMS = (
    "name",
    "data",
    "metadata",
    "timestamp",
    "attributes",
    "model_name",
    "tool_call_id",
    "args",
    "request",
    "result",
    "response",
    "data_schema",
)

any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates included
names = st.one_of(any_text, st.sampled_from(["chat", "tool", "ok"]), st.integers(), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
)
payloads = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(any_text, inner, max_size=3),
        st.dictionaries(st.integers(), inner, min_size=1, max_size=2),
        st.frozensets(st.integers(), max_size=2),
        st.builds(object),
    ),
    max_leaves=6,
)
metadatas = st.one_of(st.none(), st.dictionaries(any_text, payloads, max_size=3), payloads)
timestamps = st.one_of(
    st.none(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.datetimes(timezones=st.timezones()),
    st.datetimes(),  # naive
    st.floats(),
    any_text,
)
headers = st.one_of(
    st.dictionaries(any_text, any_text, max_size=3),
    st.dictionaries(
        st.sampled_from([" Authorization", "X-Auth-Token\u200b", "cookie", "x"]), any_text
    ),
    st.lists(st.tuples(any_text, any_text), max_size=2),
    st.dictionaries(st.integers(), any_text, min_size=1, max_size=1),
)


def _request(head: Any, content: Any) -> LlmRequest:
    request = LlmRequest({}, {})
    request.headers, request.content = head, content  # bypass the constructor's checks
    return request


def _run(call: Any) -> None:
    with testing.capture() as events:
        try:
            call()
        except (TypeError, ValueError) as exc:
            assert isinstance(exc, llmflow.FlowError), repr(exc)
            assert str(exc).split(":", 1)[0].split(".")[0] in (*PARAMS, "LlmRequest"), str(exc)
            assert events == [], "emitted before raising"
            return
    for event in events:
        line = orjson.loads(event.to_json())
        assert line["timestamp"]


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(name=names, data=payloads, metadata=metadatas, timestamp=timestamps)
def test_mark_and_scope_fuzzed(name: Any, data: Any, metadata: Any, timestamp: Any) -> None:
    _run(lambda: llmflow.mark(name, data=data, metadata=metadata, timestamp=timestamp))

    def scoped() -> None:
        handle = llmflow.push_scope(name, data=data, metadata=metadata, timestamp=timestamp)
        llmflow.pop_scope(handle)

    _run(scoped)


@FUZZ
@given(
    name=names,
    head=headers,
    content=st.one_of(st.dictionaries(any_text, payloads, max_size=3), payloads),
    model=st.one_of(st.none(), any_text, st.integers()),
    response=payloads,
    timestamp=timestamps,
)
def test_llm_entry_points_fuzzed(
    name: Any, head: Any, content: Any, model: Any, response: Any, timestamp: Any
) -> None:
    def manual() -> None:
        handle = llmflow.llm_call(name, _request(head, content), model_name=model)
        try:
            llmflow.llm_call_end(handle, response, timestamp=timestamp)
        except (TypeError, ValueError):
            assert not handle.ended
            llmflow.llm_call_end(handle, None)
            raise

    with testing.capture() as events:
        try:
            manual()
        except (TypeError, ValueError) as exc:
            assert isinstance(exc, llmflow.FlowError), repr(exc)
            if events:  # the end failed validation: the start is out, the handle ended cleanly
                assert [e.scope_category for e in events] == ["start", "end"]
    for event in events:
        orjson.loads(event.to_json())
    _run(
        lambda: llmflow.llm_call_execute_sync(
            name, _request(head, content), lambda r: response, model_name=model
        )
    )


@FUZZ
@given(name=names, args=payloads, result=payloads, metadata=metadatas, call_id=names)
def test_tool_entry_points_fuzzed(
    name: Any, args: Any, result: Any, metadata: Any, call_id: Any
) -> None:
    tool_call_id = call_id if call_id != "" else None
    _run(
        lambda: llmflow.tool_call_execute_sync(
            name, args, lambda a: result, tool_call_id=tool_call_id, metadata=metadata
        )
    )
