"""`stats` reads lines through an inlined fast path: it must count what the general path counts.

The general path is the reader every command shares (``decode_line`` for each
line, then the join of starts with ends); the fast path decodes the common
line inline, with orjson or (the ``fast`` extra) with msgspec: every test here
runs with both (the ``decoder`` fixture). Hypothesis writes logs in many
layouts (llmflow's key order,
other orders, spaces, epoch and offset timestamps, tricky strings and unicode
in payloads) with damage (garbage, wrong field types, concatenated and cut-off
lines, duplicate starts, orphan ends, blank lines), and both paths must give
the same ``--json`` document, the same problems at the same line numbers and
the same line count. A light oracle built on ``iter_spans`` checks the per-model
counts and latencies too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmflow._clock import format_rfc3339
from llmflow.atof import ReadProblem, Span, iter_records, iter_spans, span_facts
from llmflow.cli import stats as stats_module
from llmflow.cli._input import LogInput
from llmflow.cli.stats import DIMENSIONS, _Counter, compute_stats

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

TRICKY = st.sampled_from(
    [
        '"data_schema"',
        '},"metadata":{"cost.usd":5}}',
        ',"data":{"x":1},"data_schema":null,"metadata":null}',
        "é✓ 日本 \u2028 \U0001f600",
        "\\",
        '"}]',
        "\n",
    ]
)
KEYS = st.sampled_from(["data", "data_schema", "metadata", "kind", "uuid", "usage", "x"])
PAYLOAD = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**9), 10**9)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
# Integers outside int64/uint64 are floats to orjson and ints to msgspec.
BIG = st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, -(10**25)])
ODD = st.none() | st.sampled_from(["5", 2.5, True, [], {}]) | BIG
USAGE = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": st.integers(0, 5000) | ODD,
        "output_tokens": st.integers(0, 5000) | BIG,
        "cached_tokens": st.integers(0, 100),
        "reasoning_tokens": st.integers(0, 100) | ODD,
    },
)
METADATA = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "provider.name": st.sampled_from(["openai", "anthropic"]) | ODD,
        "cost.usd": st.floats(0, 1, allow_nan=False) | st.integers(0, 3) | ODD,
        "exception.type": st.sampled_from(["RateLimitError", "Timeout"]) | ODD,
        "exception.message": st.text(max_size=5),
        "http.status_code": st.sampled_from([429, 500]),
        "http.attempt": st.integers(0, 3) | BIG,
        "retry.attempts": st.integers(1, 4),
        "cache.hit": st.booleans() | ODD,
    },
)
SPAN = st.fixed_dictionaries(
    {
        "category": st.sampled_from(["llm", "llm", "tool", "guardrail", "agent", None, 7]),
        "name": st.sampled_from(["chat", "get_weather", "policy", "planner", "ünïcode ✓"]),
        "start": st.integers(0, 5_000_000),
        "duration": st.integers(0, 3_000_000) | st.none(),  # None: still open
        "model": st.sampled_from(["m1", "m2", "gpt-4o"]) | st.none(),
        "end_model": st.sampled_from(["m1", "m3"]) | st.none(),
        "usage": USAGE,
        "start_metadata": METADATA,
        "metadata": METADATA,
        "data": PAYLOAD,
        "output": PAYLOAD | st.just({"rejected": True}),
        "parent": st.booleans(),
    }
)
LAYOUT = st.sampled_from(
    ["llmflow", "llmflow", "llmflow", "reversed", "spaced", "epoch", "offset", "no-micros"]
)
_MARK = b'{"kind":"mark","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.000001Z"'
DAMAGED_LINES = [
    b"{broken\n",
    b"[1, 2]\n",
    b'"just a string"\n',
    b"{}\n",
    b"\n",
    b"   \n",
    b"null\n",
    b'{"kind":"scope","uuid":5,"name":"x","timestamp":0,"scope_category":"start"}\n',
    b'{"kind":"other","uuid":"u","name":"x","timestamp":0}\n',
    b'{"kind":"scope","uuid":"u","name":"x","timestamp":0,"scope_category":"middle"}\n',
    b'{"kind":"mark","uuid":"u","name":"x","parent_uuid":7,"timestamp":0}\n',
    b'{"kind":"mark","uuid":"u","name":"x","timestamp":"yesterday"}\n',
    b'{"kind":"mark","uuid":"u","name":"x","timestamp":"2026-13-01T00:00:00.000000Z"}\n',
    b'{"kind":"mark","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.00001xZ"}\n',
    b'{"kind":"mark","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.\xd9\xa3\xd9\xa3\xd9\xa3Z"}\n',
    b'{"kind":"mark","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.000001Z","x":NaN}\n',
    b"\xff\xfe not utf-8\n",
]
# Lines msgspec decodes where orjson does not, or differently: the shared reader decides.
ODD_LINES = [
    _MARK + b',"data":"\xff\xfe"}\n',  # not UTF-8 in a payload msgspec only scans
    _MARK + b',"x":["\xed\xa0\x80"]}\n',  # an encoded surrogate in an unknown field
    _MARK + b',"data":"\\ud800"}\n',  # a lone surrogate escape
    _MARK + b',"data":' + b"[" * 1000 + b"]" * 1000 + b"}\n",  # deeper than msgspec goes
    _MARK + b',"kind":"scope"}\n',  # a repeated key: the last one counts
    b'{"k\\u0069nd":"mark","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.000001Z"}\n',
    _MARK + b',"scope_category":5}\n',  # a mark's phase is not read
    _MARK + b',"metadata":{"cost.usd":1e400}}\n',
    _MARK + b',"metadata":{"n":123456789012345678901234567890}}\n',
    _MARK + b',"data":{"n":-0,"f":1E5,"g":2.2250738585072011e-308}}\n',
    b'{"kind":"mark","uuid":"u","name":"\\u00e9","timestamp":"2026-01-01T00:00:00.000001Z"}\n',
    b'{"kind":"scope","uuid":"u","name":"x","timestamp":"2026-01-01T00:00:00.000001Z",'
    b'"scope_category":"start","category":"llm","metadata":{"cost.usd":10000000000000000000000}}\n',
]
DAMAGE = st.sampled_from(DAMAGED_LINES + ODD_LINES)
EDIT = st.tuples(
    st.sampled_from(["insert", "insert", "insert", "join", "duplicate", "drop", "swap"]),
    st.integers(0, 10**6),
    DAMAGE,
)


def _timestamp(us: int, layout: str) -> str | int:
    if layout == "epoch":
        return us
    text = format_rfc3339(us)
    if layout == "offset":
        return text[:-1] + "+00:00"
    if layout == "no-micros" and us % 1_000_000 == 0:
        return text[:19] + "Z"
    return text


def _line(event: dict[str, Any], layout: str) -> bytes:
    event = {**event, "timestamp": _timestamp(event["timestamp"], layout)}
    if layout == "reversed":
        event = dict(reversed(list(event.items())))
    if layout == "spaced":
        return json.dumps(event, ensure_ascii=False, separators=(", ", ": ")).encode() + b"\n"
    try:
        return orjson.dumps(event) + b"\n"
    except TypeError:  # an integer beyond 64 bits (BIG)
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _events(spans: list[dict[str, Any]]) -> list[tuple[int, int, dict[str, Any]]]:
    events: list[tuple[int, int, dict[str, Any]]] = []
    root = "01900000-0000-7000-8000-00000000root"
    for index, spec in enumerate(spans):
        uuid = f"01900000-0000-7000-8000-{index:012x}"
        start_profile = {"model_name": spec["model"]} if spec["model"] else None
        head = {
            "kind": "scope",
            "atof_version": "0.1",
            "uuid": uuid,
            "parent_uuid": root if spec["parent"] else None,
            "timestamp": T0 + spec["start"],
            "name": spec["name"],
        }
        tail = {"attributes": [], "category": spec["category"]}
        events.append(
            (
                T0 + spec["start"],
                len(events),
                {
                    **head,
                    "scope_category": "start",
                    **tail,
                    "category_profile": start_profile,
                    "data": spec["data"],
                    "data_schema": None,
                    "metadata": spec["start_metadata"],
                },
            )
        )
        if spec["duration"] is None:
            continue
        end_profile = dict(start_profile or {})
        if spec["usage"] is not None or spec["end_model"] is not None:
            end_profile["annotated_response"] = {"model": spec["end_model"], "usage": spec["usage"]}
        at = T0 + spec["start"] + spec["duration"]
        events.append(
            (
                at,
                len(events),
                {
                    **head,
                    "timestamp": at,
                    "scope_category": "end",
                    **tail,
                    "category_profile": end_profile or None,
                    "data": spec["output"],
                    "data_schema": {"name": "openai/chat-completions", "version": "1"}
                    if spec["category"] == "llm" and not spec["metadata"]
                    else None,
                    "metadata": spec["metadata"],
                },
            )
        )
        if index % 5 == 0:
            events.append(
                (
                    T0 + spec["start"],
                    len(events),
                    {
                        "kind": "mark",
                        "atof_version": "0.1",
                        "uuid": f"01900000-0000-7000-9000-{index:012x}",
                        "parent_uuid": uuid,
                        "timestamp": T0 + spec["start"],
                        "name": "note",
                        "data": spec["data"],
                    },
                )
            )
    return sorted(events, key=lambda event: event[:2])


def _log(
    spans: list[dict[str, Any]], layouts: list[str], edits: list[tuple[str, int, bytes]], cut: int
) -> bytes:
    lines = [
        _line(event, layouts[i % len(layouts)]) for i, (_, _, event) in enumerate(_events(spans))
    ]
    for action, where, damage in edits:
        at = where % (len(lines) + 1)
        if action == "insert" or not lines:
            lines.insert(at, damage)
        elif action == "join" and at < len(lines):
            lines[at] = lines[at].rstrip(b"\n")  # two lines run together, as after a crash
        elif action == "duplicate" and at < len(lines):
            lines.insert(at, lines[at])
        elif action == "drop" and at < len(lines):
            del lines[at]
        elif action == "swap" and at + 1 < len(lines):
            lines[at], lines[at + 1] = lines[at + 1], lines[at]
    data = b"".join(lines)
    if cut and data:  # a writer killed mid-line: the last line without its end
        data = data.rstrip(b"\n")
        data = data[: max(len(data) - cut, 0)]
    return data


class _Recording(LogInput):
    """A LogInput that keeps every problem instead of printing it."""

    def __init__(self, path: Path) -> None:
        super().__init__([str(path)], command="stats", progress=False)
        self.seen: list[tuple[int, str, bool]] = []

    def report(self, problem: ReadProblem) -> None:
        super().report(problem)
        self.seen.append((problem.line, problem.message, problem.cut_off))


@pytest.fixture(params=["msgspec", "orjson"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with the msgspec loop, then with the orjson loop."""
    monkeypatch.setattr(stats_module, "USE_MSGSPEC", request.param == "msgspec")
    assert (stats_module._msgspec_lines() is not None) == (request.param == "msgspec")
    return str(request.param)


def _general(path: Path, by: list[str], since: int | None) -> tuple[dict[str, Any], _Recording]:
    """Every line through decode_line and the general join (no msgspec): the reference."""
    logs = _Recording(path)
    chosen = stats_module.USE_MSGSPEC
    stats_module.USE_MSGSPEC = False
    try:
        counter = _Counter(by, since, logs.report, str(path))
    finally:
        stats_module.USE_MSGSPEC = chosen
    for record in logs.records(str(path)):
        counter.add(record)
    counter.close()
    result = counter.result
    result.lines, result.skipped_lines = logs.lines, logs.problems
    return result.to_dict(), logs


def _oracle(path: Path, since: int | None) -> dict[str, tuple[int, list[int], int | None]]:
    """Per model: (calls, sorted latencies, input tokens) from iter_spans and span_facts."""
    models: dict[str, tuple[int, list[int], int | None]] = {}
    for node in iter_spans(iter_records(path, lambda _: None), include_open=False):
        if not isinstance(node, Span) or node.category != "llm" or node.duration_us is None:
            continue
        if since is not None and node.start_us < since:
            continue
        assert node.start is None and node.facts is not None
        facts = node.facts
        calls, latencies, tokens = models.get(facts.model or "(unknown)", (0, [], None))
        if facts.input_tokens is not None:
            tokens = (tokens or 0) + facts.input_tokens
        models[facts.model or "(unknown)"] = (calls + 1, [*latencies, node.duration_us], tokens)
    return {key: (calls, sorted(lat), tokens) for key, (calls, lat, tokens) in models.items()}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    spans=st.lists(SPAN, max_size=25),
    layouts=st.lists(LAYOUT, min_size=1, max_size=4),
    edits=st.lists(EDIT, max_size=10),
    cut=st.integers(0, 3) | st.integers(0, 400),
    since=st.none() | st.integers(0, 5_000_000).map(lambda offset: T0 + offset),
)
def test_the_fast_path_counts_exactly_what_the_general_path_counts(
    tmp_path: Path,
    decoder: str,
    spans: list[dict[str, Any]],
    layouts: list[str],
    edits: list[tuple[str, int, bytes]],
    cut: int,
    since: int | None,
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(spans, layouts, edits, cut))
    by = list(DIMENSIONS)
    fast_logs = _Recording(path)
    fast = compute_stats(fast_logs, by, since).to_dict()
    general, general_logs = _general(path, by, since)
    assert fast == general
    assert fast_logs.seen == general_logs.seen
    assert fast_logs.lines == general_logs.lines
    ours = {
        g["key"]: (g["calls"], g["latency_us"]["max"], g["tokens"]["input"])
        for g in fast["groups"]["model"]
    }
    expected = {
        key: (calls, latencies[-1], tokens)
        for key, (calls, latencies, tokens) in _oracle(path, since).items()
    }
    assert ours == expected


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    spans=st.lists(SPAN, min_size=5, max_size=40),
    layouts=st.lists(LAYOUT, min_size=1, max_size=3),
    edits=st.lists(EDIT, max_size=4),
    cut=st.integers(0, 50),
    jobs=st.integers(2, 4),
)
def test_a_log_split_among_processes_counts_what_one_process_counts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    decoder: str,
    spans: list[dict[str, Any]],
    layouts: list[str],
    edits: list[tuple[str, int, bytes]],
    cut: int,
    jobs: int,
) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(spans, layouts, edits, cut))
    monkeypatch.setattr(stats_module, "_PARALLEL_MIN_BYTES", 0)
    by = list(DIMENSIONS)
    serial_logs, split_logs = _Recording(path), _Recording(path)
    serial = compute_stats(serial_logs, by, jobs=1).to_dict()
    split = compute_stats(split_logs, by, jobs=jobs).to_dict()
    assert split == serial
    assert split_logs.lines == serial_logs.lines
    assert split_logs.problems == serial_logs.problems


def test_a_second_start_after_the_cut_is_counted_as_one_process_counts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoder: str
) -> None:
    """A span left open by the first part and started again in the second (a damaged log).

    A worker cannot know the first start; the split result must still be the
    single-process one: the second start reported and skipped, the end closing
    the first start.
    """
    uuid = "01900000-0000-7000-8000-0000000000aa"

    def scope(phase: str, us: int) -> bytes:
        event = {
            "kind": "scope",
            "atof_version": "0.1",
            "uuid": uuid,
            "parent_uuid": None,
            "timestamp": us,
            "name": "chat",
            "scope_category": phase,
            "category": "llm",
            "attributes": [],
            "category_profile": {"model_name": "m1"},
            "data": None,
            "data_schema": None,
            "metadata": None,
        }
        return _line(event, "llmflow")

    filler = [
        _line(
            {
                "kind": "mark",
                "atof_version": "0.1",
                "uuid": f"01900000-0000-7000-8000-{index:012x}",
                "parent_uuid": None,
                "timestamp": T0 + index,
                "name": "tick",
                "category": None,
                "data": None,
                "metadata": None,
            },
            "llmflow",
        )
        for index in range(300)
    ]
    # The cut (the middle byte) falls in the first filler: the second start and the
    # end are in the second part.
    lines = [scope("start", T0), *filler, scope("start", T0 + 500), scope("end", T0 + 900)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"".join([*lines, *filler[:100]]))
    monkeypatch.setattr(stats_module, "_PARALLEL_MIN_BYTES", 0)
    serial_logs, split_logs = _Recording(path), _Recording(path)
    serial = compute_stats(serial_logs, ["model"], jobs=1).to_dict()
    split = compute_stats(split_logs, ["model"], jobs=2).to_dict()
    assert serial_logs.seen == [(302, f"second start for uuid {uuid}; ignored", False)]
    assert split == serial
    assert split_logs.seen == serial_logs.seen
    assert serial["open_spans"] == 0


def test_every_kind_of_damage_at_once(tmp_path: Path, decoder: str) -> None:
    """Each damaged and odd line in one log: both paths skip and report the same lines."""
    damage = DAMAGED_LINES + ODD_LINES
    spans = [
        {**_PLAIN_SPAN, "start": i * 1000, "category": category}
        for i, category in enumerate(["llm", "tool", "guardrail", "agent"] * 3)
    ]
    edits = [("insert", 2 * i + 1, line) for i, line in enumerate(damage)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(spans, ["llmflow", "epoch", "reversed"], edits, 5))
    by = list(DIMENSIONS)
    fast_logs = _Recording(path)
    fast = compute_stats(fast_logs, by).to_dict()
    general, general_logs = _general(path, by, None)
    assert fast == general and fast_logs.seen == general_logs.seen
    blank = sum(1 for line in DAMAGED_LINES if not line.strip())
    # Every damaged line but the blank ones, the cut-off last line, and five odd lines
    # (not UTF-8 twice, a lone surrogate, 1e400, a repeated "kind" making a scope without phase).
    assert fast["skipped_lines"] == len(DAMAGED_LINES) - blank + 1 + 5
    # Six odd lines are marks, one is an open llm start; the last line, cut off, is a mark.
    assert fast["spans"] == 12 and fast["marks"] == 3 + 6 - 1 and fast["open_spans"] == 1


_PLAIN_SPAN: dict[str, Any] = {
    "category": "llm",
    "name": "chat",
    "start": 0,
    "duration": 500,
    "model": "m1",
    "end_model": None,
    "usage": {"input_tokens": 10},
    "start_metadata": None,
    "metadata": None,
    "data": {"prompt": "x"},
    "output": None,
    "parent": False,
}


def test_the_oracle_sees_the_calls_it_should(tmp_path: Path) -> None:
    """The oracle above is not vacuous: on a plain log it counts every LLM call."""
    spans = [{**_PLAIN_SPAN, "start": i * 1000, "duration": 500 + i} for i in range(4)]
    path = tmp_path / "log.jsonl"
    path.write_bytes(_log(spans, ["llmflow"], [], 0))
    assert _oracle(path, None) == {"m1": (4, [500, 501, 502, 503], 40)}
    first = [
        e for e in map(orjson.loads, path.read_bytes().splitlines()) if e["uuid"] == spans_uuid(0)
    ]
    assert [e["scope_category"] for e in first] == ["start", "end"]
    assert span_facts(first[0], first[1]).input_tokens == 10


def spans_uuid(index: int) -> str:
    return f"01900000-0000-7000-8000-{index:012x}"
