"""The msgspec line loop of ``stats`` (the ``fast`` extra): optional, and read as orjson reads.

``test_stats_fast_path.py`` proves on generated and damaged logs that both loops
count the same; these tests pin the pieces: the loop is skipped without
msgspec, integers beyond 64 bits read as orjson reads them, the one documented
difference, the minute cache of timestamps, and the ``--jobs`` start check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any
from zlib import crc32

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from llmflow._clock import format_rfc3339, parse_timestamp
from llmflow.atof import _timestamps as timestamps
from llmflow.atof import span_facts
from llmflow.cli import stats as stats_module
from llmflow.cli._input import LogInput

pytest.importorskip("msgspec")  # the `fast` extra (in the `test` extra, so CI has it)
from msgspec import ValidationError

from llmflow.cli import _stats_lines as lines_module

_START = {
    "kind": "scope",
    "uuid": "01900000-0000-7000-8000-000000000001",
    "parent_uuid": None,
    "timestamp": "2026-01-01T00:00:00.000000Z",
    "name": "chat",
    "scope_category": "start",
    "category": "llm",
    "category_profile": {"model_name": "m1"},
    "data": {"prompt": "hi"},
    "data_schema": None,
    "metadata": {"provider.name": "openai"},
}


def _end(usage: str, metadata: str, data: str = "null") -> bytes:
    """An end line for ``_START``, with raw JSON for usage, metadata and data."""
    return (
        b'{"kind":"scope","uuid":"01900000-0000-7000-8000-000000000001","parent_uuid":null,'
        b'"timestamp":"2026-01-01T00:00:00.250000Z","name":"chat","scope_category":"end",'
        b'"category":"llm","category_profile":{"annotated_response":{"model":"m1","usage":'
        + usage.encode()
        + b'}},"data":'
        + data.encode()
        + b',"data_schema":null,"metadata":'
        + metadata.encode()
        + b"}\n"
    )


def _stats(path: Path, use_msgspec: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setattr(stats_module, "USE_MSGSPEC", use_msgspec)
    logs = LogInput([str(path)], command="stats", progress=False)
    return stats_module.compute_stats(logs, ["model"]).to_dict()


def test_without_msgspec_stats_uses_the_orjson_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(orjson.dumps(_START) + b"\n" + _end('{"input_tokens":7}', "null"))
    with_msgspec = _stats(path, True, monkeypatch)
    monkeypatch.setitem(sys.modules, "msgspec", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "llmflow.cli._stats_lines")
    monkeypatch.delattr(sys.modules["llmflow.cli"], "_stats_lines")
    assert stats_module._msgspec_lines() is None
    without = _stats(path, True, monkeypatch)
    assert without == with_msgspec
    assert without["groups"]["model"][0]["tokens"]["input"] == 7  # type: ignore[index]


def test_the_environment_switch_turns_msgspec_off() -> None:
    code = "import llmflow.cli.stats as s; print(s.USE_MSGSPEC, s._msgspec_lines() is None)"
    for value, expected in (("0", "False True"), ("1", "True False")):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "LLMFLOW_STATS_MSGSPEC": value},
        )
        assert done.stdout.split() == expected.split()


@pytest.mark.parametrize(
    ("usage", "metadata"),
    [
        ('{"input_tokens":18446744073709551616,"output_tokens":5}', '{"cost.usd":1}'),
        ('{"input_tokens":-9223372036854775809}', '{"http.attempt":18446744073709551615}'),
        (
            '{"cached_tokens":100000000000000000000000000000}',
            '{"cost.usd":10000000000000000000000}',
        ),
        ('{"reasoning_tokens":9223372036854775807}', '{"http.status_code":-9223372036854775808}'),
        ('{"input_tokens":3}', '{"retry.attempts":123456789012345678901234567890,"cost.usd":0.5}'),
    ],
)
def test_integers_beyond_64_bits_read_as_orjson_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usage: str, metadata: str
) -> None:
    """orjson makes a float of an integer outside int64/uint64; SpanFacts wants ints."""
    end = _end(usage, metadata)
    start_line = lines_module._DECODER.decode(orjson.dumps(_START))
    expected = span_facts(_START, orjson.loads(end), duration_us=250_000)
    got = lines_module.facts(start_line, lines_module._DECODER.decode(end), 250_000)
    assert got == expected
    assert [type(value) for value in got] == [type(value) for value in expected]
    path = tmp_path / "log.jsonl"
    path.write_bytes(orjson.dumps(_START) + b"\n" + end)
    assert _stats(path, True, monkeypatch) == _stats(path, False, monkeypatch)


def test_a_guardrail_end_is_rejected_from_its_data_payload() -> None:
    line = lines_module._DECODER.decode(
        b'{"kind":"scope","uuid":"g","name":"policy","timestamp":"2026-01-01T00:00:00.000001Z",'
        b'"scope_category":"end","category":"guardrail","data":{"rejected":true}}'
    )
    assert lines_module.rejected(line) is True
    assert lines_module.event_of(line)["data"] == {"rejected": True}
    assert lines_module.rejected({"data": {"rejected": False}}) is False


def test_the_one_difference_a_number_beyond_the_double_range_in_a_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented in docs/decisions.md: orjson rejects the line, msgspec only scans the payload.

    RFC 8259 allows the number; this pins the behaviour so that a change is seen.
    """
    path = tmp_path / "log.jsonl"
    path.write_bytes(
        orjson.dumps(_START) + b"\n" + _end('{"input_tokens":7}', "null", data='{"x":1e400}')
    )
    fast, plain = _stats(path, True, monkeypatch), _stats(path, False, monkeypatch)
    assert (fast["spans"], fast["skipped_lines"]) == (1, 0)
    assert (plain["spans"], plain["skipped_lines"], plain["open_spans"]) == (0, 1, 1)


@given(
    st.integers(0, 253_402_300_799).map(lambda s: s * 1_000_000),
    st.lists(st.tuples(st.integers(0, 18), st.sampled_from("0123456789-T:Z .t٣x")), max_size=3),
)
def test_second_us_through_the_minute_cache_is_parse_timestamp(
    epoch_us: int, edits: list[tuple[int, str]]
) -> None:
    """The cache answers a new second of a known minute by adding; any prefix, valid or not."""
    prefix = list(format_rfc3339(epoch_us)[:19])
    for at, char in edits:
        prefix[at] = char
    text = "".join(prefix)
    try:
        expected: int | None = parse_timestamp(text + "Z")
    except ValueError:
        expected = None
    timestamps.SECONDS.clear()
    assert timestamps.second_us(text[:17] + "00") == _parsed(text[:17] + "00")  # the minute first
    assert timestamps.second_us(text) == expected
    assert timestamps.second_us(text) == expected  # and from the cache


def _parsed(prefix: str) -> int | None:
    try:
        return parse_timestamp(prefix + "Z")
    except ValueError:
        return None


@pytest.mark.parametrize("open_count", [3, 200])
def test_restarts_finds_an_open_uuid_among_a_parts_starts(open_count: int) -> None:
    """Few open spans are looked up in the array, many through a set: the same answer."""
    uuids = [f"01900000-0000-7000-8000-{i:012x}" for i in range(open_count)]
    started = array("I", (crc32(f"other-{i}".encode()) for i in range(1000)))
    assert not stats_module._restarts(uuids, started)
    started.append(crc32(uuids[-1].encode()))
    assert stats_module._restarts(uuids, started)


_HUGE = [2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**25]  # int64/uint64 edges
# One strategy each (not a union of many), so that the dicts below are drawn half the time.
_ODD = st.sampled_from(
    [None, True, False, 0, 3, -1, 2.5, -0.0, 1e300, "", "5", "x", [1], {"model": "m"}, *_HUGE]
)
_TOKENS = st.integers(0, 5000) | _ODD
_MODEL = st.sampled_from(["m1", "m2", ""]) | _ODD
_METADATA = _ODD | st.fixed_dictionaries(
    {},
    optional={
        "provider.name": st.sampled_from(["openai", "anthropic", ""]) | _ODD,
        "cost.usd": st.floats(0, 1, allow_nan=False) | st.integers(0, 3) | _ODD,
        "exception.type": st.sampled_from(["RateLimitError"]) | _ODD,
        "exception.message": st.text(max_size=3),
        "http.status_code": st.sampled_from([429, 500]) | _ODD,
        "http.attempt": st.integers(-1, 3) | _ODD,
        "retry.attempts": st.integers(0, 4) | _ODD,
        "cache.hit": st.booleans() | _ODD,
    },
)
_START_PROFILE = _ODD | st.fixed_dictionaries(
    {},
    optional={
        "model_name": _MODEL,
        "annotated_request": _ODD | st.fixed_dictionaries({}, optional={"model": _MODEL}),
        "tool_call_id": _ODD,
    },
)
_USAGE = _ODD | st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": _TOKENS,
        "output_tokens": _TOKENS,
        "cached_tokens": _TOKENS,
        "reasoning_tokens": _TOKENS,
    },
)
_END_PROFILE = _ODD | st.fixed_dictionaries(
    {},
    optional={
        "model_name": _MODEL,
        "annotated_response": _ODD
        | st.fixed_dictionaries({}, optional={"model": _MODEL, "usage": _USAGE}),
    },
)
_SCHEMA = st.none() | st.sampled_from(
    [{"name": "openai/chat"}, {"name": "anthropic/messages"}, {"name": "x"}, {"name": 5}, "s"]
)


def _line(
    phase: str, category: str, name: str, profile: object, metadata: object, schema: object
) -> bytes:
    # json, not orjson: integers beyond 64 bits must be written as integers.
    import json

    return json.dumps(
        {
            "kind": "scope",
            "uuid": "u",
            "timestamp": "2026-01-01T00:00:00.000001Z",
            "name": name,
            "scope_category": phase,
            "category": category,
            "category_profile": profile,
            "data": {"x": 1},
            "data_schema": schema,
            "metadata": metadata,
        }
    ).encode()


def _groups(counter: stats_module._Counter) -> dict[str, object]:
    """Every sum of every group, with the type of each (an int cost is not a float cost)."""
    return {
        dimension: {
            key: (
                g.calls,
                g.errors,
                list(g.latencies),
                g.input_tokens,
                g.output_tokens,
                g.cached_tokens,
                g.reasoning_tokens,
                (type(g.cost_usd), g.cost_usd),
                g.cache_hits,
                g.retries,
            )
            for key, g in groups.items()
        }
        for dimension, groups in counter.result.groups.items()
    }


_EDGES = {  # each a case the fast path must read as span_facts does
    "annotated_response": {
        "model": "",
        "usage": {
            "input_tokens": 2**64,
            "output_tokens": -(2**63) - 1,
            "cached_tokens": 2**64 - 1,
            "reasoning_tokens": -(2**63),
        },
    }
}
_EDGE_METADATA = {
    "provider.name": "p",  # else the provider group takes the general path
    "cost.usd": -(2**63) - 1,
    "retry.attempts": 2**64,
    "http.attempt": 2**64 - 1,
}


@settings(max_examples=1000, deadline=None)
@example(
    spans=[
        (
            "chat",
            {"model_name": "m1"},
            {"provider.name": "p"},
            None,
            _EDGES,
            _EDGE_METADATA,
            None,
            1,
        ),
        (
            "chat",
            {"annotated_request": {"model": "m2"}},
            None,
            None,
            None,
            {"provider.name": "p", "cost.usd": 10**25},
            None,
            2,
        ),
        (
            "chat",
            None,
            None,
            {"name": "openai/x"},
            _EDGES,
            {"provider.name": "", "cache.hit": True, "http.attempt": 1},
            None,
            3,
        ),
    ],
    by=["model", "provider", "name", "tool"],
    category="llm",
)
@given(
    spans=st.lists(
        st.tuples(
            st.sampled_from(["openai.chat", "anthropic.messages"]),
            _START_PROFILE,
            _METADATA,
            _SCHEMA,
            _END_PROFILE,
            _METADATA,
            _SCHEMA,
            st.integers(0, 10**7),
        ),
        min_size=1,
        max_size=4,
    ),
    by=st.sampled_from([["model"], ["provider"], ["name"], ["model", "provider", "name", "tool"]]),
    category=st.sampled_from(["llm", "tool"]),
)
def test_the_fast_path_of_llm_and_tool_spans_adds_what_span_facts_gives(
    spans: list[tuple[Any, ...]], by: list[str], category: str
) -> None:
    """``span_counter`` against ``span_facts`` of the orjson-parsed lines, sum for sum."""
    if category == "tool" and "tool" not in by:
        by = [*by, "tool"]
    fast = stats_module._Counter(by, None, print, "log")
    reference = stats_module._Counter(by, None, print, "log")
    general = reference.count_llm if category == "llm" else reference.count_tool
    count = lines_module.span_counter(fast, category)
    assert count is not None
    decoded: list[int] = []
    for (
        name,
        start_profile,
        start_meta,
        start_schema,
        end_profile,
        end_meta,
        end_schema,
        us,
    ) in spans:
        start = _line("start", category, name, start_profile, start_meta, start_schema)
        end = _line("end", category, name, end_profile, end_meta, end_schema)
        expected = span_facts(orjson.loads(start), orjson.loads(end), duration_us=us)
        general(expected)
        try:
            pair = lines_module._DECODER.decode(start), lines_module._DECODER.decode(end)
        except ValidationError:  # a field of another type: the loop's shared reader
            (fast.count_llm if category == "llm" else fast.count_tool)(expected)
        else:
            count(*pair, us)
            decoded.append(us)
    assert _groups(fast) == _groups(reference)
    if spans[0][-1] == 1 and spans[0][4] is _EDGES:  # the explicit example reaches the fast path
        assert decoded == [1, 2, 3]


def test_the_fast_path_is_off_when_categories_are_counted_or_no_group_needs_it() -> None:
    def counter(*by: str) -> stats_module._Counter:
        return stats_module._Counter(by, None, print, "l")

    assert lines_module.span_counter(counter("category"), "llm") is None
    assert lines_module.span_counter(counter("tool"), "llm") is None
    assert lines_module.span_counter(counter("model"), "tool") is None
    assert lines_module.span_counter(counter("model", "category"), "llm") is None
    assert lines_module.span_counter(counter("tool", "category"), "tool") is None
    assert lines_module.span_counter(counter("model"), "agent") is None
    assert lines_module.span_counter(counter("tool"), "tool") is not None
