"""ParquetExporter's columnar path (pyarrow) gives exactly the rows of the per-line path.

The per-line path (``_Rows.add_line``: orjson per line, :func:`llmflow.atof.span_facts`
per end) is the reference; ``_Rows.add_lines`` reads a batch with pyarrow and
computes the analysis columns of ends joined within the batch in pyarrow compute.
Logs are generated through the real entry points: LLM calls with and without
codecs and annotations, tools, agent/guardrail/custom scopes, marks, errors,
metadata of every JSON type (explicit nulls included), unicode, big payloads,
spans left open across batches and a small ``max_open_spans``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import LlmRequest, Runtime
from llmflow._event import Event, LineParts
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import ParquetExporter
from llmflow.exporters.parquet import _columnar, _piece_table, _Rows, _wire_line
from llmflow.testing import capture

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

TEXT = st.text(st.characters(codec="utf-8"), max_size=6)
VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
KEYS = ["provider.name", "cost.usd", "exception.type", "http.status_code", "note"]
# mostly the types span_facts reads, sometimes another type or an explicit null
WELL_TYPED = {
    "provider.name": st.sampled_from(["openai", "anthropic", "acme", ""]),
    "cost.usd": st.floats(0, 5, allow_nan=False) | st.integers(0, 3),
    "exception.type": st.sampled_from(["TimeoutError", "ValueError", ""]),
    "http.status_code": st.sampled_from([200, 429, 500]),
    "note": TEXT,
}
METADATA = st.none() | st.dictionaries(
    st.sampled_from(KEYS),
    st.sampled_from(KEYS).flatmap(
        lambda key: st.one_of(WELL_TYPED[key], WELL_TYPED[key], WELL_TYPED[key], VALUE)
    ),
    max_size=3,
)
USAGE = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": st.integers(0, 10**6),
        "completion_tokens": st.integers(0, 10**6),
        "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": st.integers(0, 100)}),
        "completion_tokens_details": st.fixed_dictionaries(
            {"reasoning_tokens": st.integers(0, 100)}
        ),
    },
)

OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("llm"),
            st.none() | st.sampled_from(["gpt-4o", "", "claude-x"]),  # model_name
            st.booleans(),  # request codec (data_schema, annotated_request)
            st.sampled_from(["codec", "raw", "annotated", "error"]),
            st.none() | st.sampled_from(["gpt-4o-mini", ""]),  # response model
            USAGE,
            METADATA,
            METADATA,
        ),
        st.tuples(st.just("tool"), st.none() | TEXT.filter(bool), VALUE, METADATA),
        st.tuples(
            st.just("scope"),
            st.sampled_from(["agent", "guardrail", "function", "custom"]),
            TEXT,
            METADATA,
            METADATA,
        ),
        st.tuples(st.just("mark"), TEXT, VALUE, METADATA),
        st.tuples(st.just("big"), st.integers(10_000, 200_000)),
    ),
    min_size=1,
    max_size=12,
)


def _response(model: str | None, usage: dict[str, Any], index: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "é ✓"},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    if model is not None:
        response["model"] = model
    return response


def _emit(ops: list[tuple[Any, ...]], epoch: bool) -> list[Event]:
    """Run ``ops``; calls end in the order they were started, after a later op (interleaved)."""
    rt = Runtime(timestamp_format="epoch_us" if epoch else "rfc3339")
    previous = rt.install()
    codec = OpenAIChatCodec()
    try:
        with capture(runtime=rt) as events:
            pending: list[Any] = []
            for index, op in enumerate(ops):
                at = T0 + 1_000 * index
                if op[0] == "llm":
                    _, model, with_codec, how, reply_model, usage, start_md, end_md = op
                    request = LlmRequest({}, {"model": model or "m", "messages": []})
                    handle = llmflow.llm_call(
                        "chat ✓",
                        request,
                        model_name=model,
                        metadata=start_md,
                        codec=codec if with_codec else None,
                        timestamp=at,
                    )
                    response = _response(reply_model, usage, index)
                    kwargs: dict[str, Any] = {"metadata": end_md, "timestamp": at + 500}
                    if how == "codec":
                        kwargs["response_codec"] = codec
                    elif how == "annotated":
                        kwargs["annotated_response"] = codec.annotate_response(response)
                    elif how == "error":
                        kwargs["error"] = TimeoutError("slow")
                    pending.append((llmflow.llm_call_end, handle, response, kwargs))
                elif op[0] == "tool":
                    _, call_id, args, metadata = op
                    tool = llmflow.tool_call(
                        "search", args, tool_call_id=call_id, metadata=metadata, timestamp=at
                    )
                    pending.append(
                        (llmflow.tool_call_end, tool, {"hits": 1}, {"timestamp": at + 700})
                    )
                elif op[0] == "scope":
                    _, category, name, start_md, end_md = op
                    profile = {"subtype": "x"} if category == "custom" else None
                    scope = llmflow.push_scope(
                        name or "s",
                        category,
                        metadata=start_md,
                        category_profile=profile,
                        attributes=["parallel"],
                        timestamp=at,
                    )
                    llmflow.pop_scope(scope, metadata=end_md, timestamp=at + 300)
                elif op[0] == "mark":
                    _, name, data, metadata = op
                    llmflow.mark(name or "m", data=data, metadata=metadata, timestamp=at)
                else:
                    llmflow.mark("big", data={"pad": "x" * op[1]}, timestamp=at)
                if len(pending) > 2:  # keep up to two calls open across later events
                    end, handle, result, kwargs = pending.pop(0)
                    end(handle, result, **kwargs)
            for end, handle, result, kwargs in pending:
                end(handle, result, **kwargs)
    finally:
        rt.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    return events


def _written(rows: _Rows) -> list[Any] | str:
    """The rows the writer gets, or ``"refused"`` when pyarrow refuses a value (both paths)."""
    try:
        return [row for piece in rows.take() for row in _piece_table(piece).to_pylist()]
    except pa.ArrowInvalid:
        return "refused"


def _per_line(lines: list[LineParts], max_open_spans: int) -> tuple[list[Any] | str, _Rows]:
    rows = _Rows(max_open_spans)
    for parts in lines:
        rows.add_line(parts)
    return _written(rows), rows


def _columnar_rows(
    lines: list[LineParts], cuts: list[int], max_open_spans: int
) -> tuple[list[Any] | str, _Rows]:
    rows = _Rows(max_open_spans)
    bounds = sorted({0, len(lines), *(cut % (len(lines) + 1) for cut in cuts)})
    for start, stop in itertools.pairwise(bounds):
        rows.add_lines(lines[start:stop])
    return _written(rows), rows


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=OPS,
    epoch=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    max_open_spans=st.sampled_from([1, 2, 100_000]),
)
def test_columnar_rows_equal_the_per_line_rows(
    ops: list[tuple[Any, ...]], epoch: bool, cuts: list[int], max_open_spans: int
) -> None:
    lines = [event.line_parts() for event in _emit(ops, epoch)]
    event("columnar" if _columnar(lines) is not None else "per-line fallback")
    expected, reference = _per_line(lines, max_open_spans)
    got, rows = _columnar_rows(lines, cuts, max_open_spans)
    assert got == expected
    assert rows.unjoined == reference.unjoined
    assert list(rows.open) == list(reference.open)


def _agent_lines(calls: int) -> list[LineParts]:
    codec = OpenAIChatCodec()
    with capture() as events, llmflow.scope("agent", "agent"):
        for index in range(calls):
            handle = llmflow.llm_call(
                "chat", LlmRequest({}, {"model": "gpt-4o", "messages": []}), codec=codec
            )
            llmflow.llm_call_end(
                handle,
                _response("gpt-4o", {"prompt_tokens": 3, "completion_tokens": 4}, index),
                response_codec=codec,
                metadata={"cost.usd": 0.25, "provider.name": "openai"},
            )
            tool = llmflow.tool_call("search", {"q": index}, tool_call_id=f"call_{index}")
            llmflow.tool_call_end(tool, {"hits": index})
            llmflow.mark("step", data={"index": index})
    return [event.line_parts() for event in events]


def test_a_runtime_log_takes_the_columnar_path(runtime: Runtime) -> None:
    lines = _agent_lines(5)
    assert _columnar(lines) is not None
    rows = _Rows(100)
    rows.add_lines(lines)
    (piece,) = rows.take()
    assert not isinstance(piece, dict)  # a pyarrow table, not per-line lists
    ends = [row for row in piece.to_pylist() if row["scope_category"] == "end"]
    llm = [row for row in ends if row["name"] == "chat"]
    assert {row["model"] for row in llm} == {"gpt-4o"}
    assert {row["provider"] for row in llm} == {"openai"}
    assert [row["input_tokens"] for row in llm] == [3] * 5
    assert all(row["duration_us"] >= 0 for row in ends)
    assert [row["tool_call_id"] for row in ends if row["name"] == "search"] == [
        f"call_{index}" for index in range(5)
    ]


def _with_metadata(parts: LineParts, metadata: bytes) -> LineParts:
    head, data, tail = parts
    return head, data, tail[: tail.index(b',"metadata":')] + b',"metadata":' + metadata + b"}\n"


@pytest.mark.parametrize(
    "change",
    [
        # a value of another type than span_facts reads: pyarrow refuses the batch
        lambda parts: _with_metadata(parts, b'{"cost.usd":"0.5"}'),
        lambda parts: _with_metadata(parts, b'{"http.status_code":true}'),
        # not llmflow's layout (a space after the colon)
        lambda parts: (parts[0].replace(b'"name":', b'"name": ', 1), parts[1], parts[2]),
        # a timestamp llmflow does not write (an offset instead of Z)
        lambda parts: (
            parts[0].replace(b'Z","name"', b'+00:00","name"', 1),
            parts[1],
            parts[2],
        ),
    ],
)
def test_a_batch_pyarrow_cannot_take_falls_back_to_the_per_line_rows(
    runtime: Runtime, change: Any
) -> None:
    lines = _agent_lines(3)
    lines[4] = change(lines[4])  # the first llm end
    assert _columnar(lines) is None
    expected, _ = _per_line(lines, 100)
    got, _ = _columnar_rows(lines, [], 100)
    assert got == expected and len(got) == len(lines)


def test_an_explicit_null_in_the_end_metadata_hides_the_start_value_as_span_facts_says(
    runtime: Runtime,
) -> None:
    with capture() as events:
        handle = llmflow.llm_call(
            "chat", LlmRequest({}, {}), metadata={"exception.type": "E", "cost.usd": 1.5}
        )
        llmflow.llm_call_end(handle, {}, metadata={"exception.type": None})
    lines = [event.line_parts() for event in events]
    assert _columnar(lines) is not None
    got, _ = _columnar_rows(lines, [], 100)
    assert got == _per_line(lines, 100)[0]
    assert (got[1]["error_type"], got[1]["status"], got[1]["cost_usd"]) == (None, "ok", 1.5)


def test_parsed_dicts_become_lines_with_the_same_rows(runtime: Runtime) -> None:
    lines = _agent_lines(3)
    dicts = [orjson.loads(head + data + tail) for head, data, tail in lines]
    rebuilt = [_wire_line(event) for event in dicts]
    assert _columnar(rebuilt) is not None
    assert _columnar_rows(rebuilt, [], 100)[0] == _per_line(lines, 100)[0]


def test_a_batch_over_several_utc_days_goes_to_one_folder_per_day(
    runtime: Runtime, tmp_path: Path
) -> None:
    day = 86_400_000_000
    stamps = [T0 - 1, T0, T0 + day + 5, T0 + 3, -1]  # back to a day; one before 1970 (a dict)
    with capture() as events:
        for stamp in stamps[:-1]:
            llmflow.mark("m", timestamp=stamp)
    lines = [event.line_parts() for event in events]
    lines.append(_wire_line({**orjson.loads(b"".join(lines[0])), "timestamp": -1}))
    assert _columnar(lines[:-1]) is not None and _columnar(lines[-1:]) is None
    exporter = ParquetExporter(tmp_path)
    assert exporter.export_lines(lines[:-1]) == 4  # columnar, days out of order
    assert exporter.export_lines(lines[-1:]) == 1  # before 1970: the per-line path
    exporter.shutdown()
    counts = {
        folder.name: sum(pq.read_metadata(file).num_rows for file in folder.glob("*.parquet"))
        for folder in tmp_path.iterdir()
    }
    assert counts == {
        "date=1969-12-31": 1,
        "date=2025-12-31": 1,
        "date=2026-01-01": 2,
        "date=2026-01-02": 1,
    }
