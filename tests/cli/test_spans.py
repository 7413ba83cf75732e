"""The span model (SPEC §13): pairs joined, tree and traces built, bad pairs reported."""

from __future__ import annotations

from pathlib import Path

from cli_logs import LogBuilder
from hypothesis import given, settings
from hypothesis import strategies as st

from llmflow.atof import (
    Mark,
    ReadProblem,
    Span,
    SpanJoiner,
    build_forest,
    iter_records,
    iter_spans,
    span_facts,
)


def records_of(log: LogBuilder, tmp_path: Path) -> list[tuple[int, int, dict]]:  # type: ignore[type-arg]
    return list(iter_records(log.write(tmp_path / "log.jsonl")))


def test_spans_join_start_and_end_with_facts_from_span_facts(demo_log: Path) -> None:
    starts = {}
    expected = {}
    for _, _, event in iter_records(demo_log):
        if event["kind"] != "scope":
            continue
        if event["scope_category"] == "start":
            starts[event["uuid"]] = event
        else:
            expected[event["uuid"]] = span_facts(starts[event["uuid"]], event)
    spans = [node for node in iter_spans(iter_records(demo_log)) if isinstance(node, Span)]
    assert {span.uuid: span.facts for span in spans} == expected
    assert all(span.duration_us == expected[span.uuid].duration_us for span in spans)


def test_the_tree_nests_children_under_parents_and_each_top_level_scope_is_a_trace(
    tmp_path: Path,
) -> None:
    log = LogBuilder()
    first = log.span("agent-a", "agent", 0, 1_000)
    inner = log.span("step", "function", 10, 500, parent=first)
    log.span("late-call", "llm", 300, 400, parent=inner)
    log.span("early-call", "llm", 20, 100, parent=inner)
    log.mark("note", 50, parent=first)
    second = log.span("agent-b", "agent", 2_000, 3_000)
    log.span("orphan", "tool", 2_500, 2_600, parent="01900000-0000-7000-8000-ffffffffffff")
    roots = build_forest(iter_records(log.write(tmp_path / "log.jsonl")))
    assert [root.name for root in roots] == ["agent-a", "agent-b", "orphan"]
    agent_a = roots[0]
    assert isinstance(agent_a, Span)
    assert [child.name for child in agent_a.children] == ["step", "note"]
    step = agent_a.children[0]
    assert isinstance(step, Span)
    assert [child.name for child in step.children] == ["early-call", "late-call"]  # by time
    assert {child.trace for child in step.children} == {first}
    assert [child.depth for child in step.children] == [2, 2]
    assert roots[1].uuid == second and roots[1].trace == second
    assert isinstance(agent_a.children[1], Mark)


def test_a_span_without_an_end_stays_open_with_no_duration(tmp_path: Path) -> None:
    log = LogBuilder()
    root = log.span("agent", "agent", 0, None)
    log.span("call", "llm", 10, 20, parent=root)
    roots = build_forest(iter_records(log.write(tmp_path / "log.jsonl")))
    (agent,) = roots
    assert isinstance(agent, Span)
    assert agent.is_open and agent.duration_us is None
    assert agent.facts is not None and agent.facts.duration_us is None


def test_an_end_without_start_and_a_second_start_are_reported_not_raised(
    tmp_path: Path,
) -> None:
    log = LogBuilder()
    uuid = log.span("call", "llm", 0, 10)
    log.span("call", "llm", 5, None, uuid=uuid)  # a second start for the same uuid
    log.span("ghost", "tool", 20, 30)
    records = records_of(log, tmp_path)
    ghost_start = next(i for i, r in enumerate(records) if r[2]["name"] == "ghost")
    del records[ghost_start]
    problems: list[ReadProblem] = []
    nodes = list(iter_spans(records, on_problem=problems.append, source="x"))
    assert [node.name for node in nodes] == ["call"]
    assert [p.message.split(" for ")[0] for p in problems] == [
        "second start",
        "end without an open start",
    ]


def test_streaming_holds_only_the_spans_still_open(tmp_path: Path) -> None:
    log = LogBuilder()
    for i in range(500):
        root = log.span("agent", "agent", i * 100, i * 100 + 90)
        log.span("call", "llm", i * 100 + 1, i * 100 + 50, parent=root)
    joiner = SpanJoiner()
    most_open = 0
    for record in records_of(log, tmp_path):
        joiner.add(record)
        most_open = max(most_open, len(joiner._open))
    assert most_open == 2
    assert joiner.close() == [] and joiner.roots == []


def test_a_trace_selection_keeps_only_those_traces_events(tmp_path: Path) -> None:
    log = LogBuilder()
    keep = log.span("kept", "agent", 0, 100, data={"q": 1})
    log.span("call", "llm", 10, 20, parent=keep, data={"prompt": "hi"}, output={"a": 1})
    log.span("dropped", "agent", 200, 300)
    roots = build_forest(
        iter_records(log.write(tmp_path / "l.jsonl")), keep_events=True, traces={keep}
    )
    (root,) = roots
    assert isinstance(root, Span) and root.start is not None
    (call,) = root.children
    assert isinstance(call, Span)
    assert call.start is not None and call.start["data"] == {"prompt": "hi"}
    assert call.end is not None and call.end["data"] == {"a": 1}


def test_a_rejecting_guardrail_is_marked_rejected(demo_log: Path) -> None:
    guards = [
        n
        for n in iter_spans(iter_records(demo_log))
        if isinstance(n, Span) and n.category == "guardrail"
    ]
    assert sum(g.rejected for g in guards) == 1
    assert all(g.failed == g.rejected for g in guards)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=25))
def test_any_nesting_is_rebuilt_with_its_parents_traces_and_durations(
    parent_picks: list[int],
) -> None:
    # Node i nests under an earlier node (or is top-level); intervals nest strictly.
    parents: list[int | None] = []
    for index, pick in enumerate(parent_picks):
        parents.append(None if index == 0 or pick % 4 == 0 else pick % index)
    depth = [0] * len(parents)
    for index, parent in enumerate(parents):
        depth[index] = 0 if parent is None else depth[parent] + 1
    log = LogBuilder()
    uuids: list[str] = []
    spans: dict[int, tuple[int, int]] = {}
    for index, parent in enumerate(parents):
        if parent is None:
            start, end = index * 10_000, index * 10_000 + 9_000
        else:
            p_start, p_end = spans[parent]
            start, end = p_start + 1 + index, p_end - 1 - index
            if end <= start:
                end = start + 1
        spans[index] = (start, end)
        uuids.append(
            log.span(
                f"n{index}",
                "function",
                start,
                end,
                parent=None if parent is None else uuids[parent],
            )
        )
    records = list(iter_records(log.lines()))
    nodes = {n.uuid: n for n in iter_spans(records)}
    roots = build_forest(records)
    seen = {}
    stack = list(roots)
    while stack:
        node = stack.pop()
        assert isinstance(node, Span)
        seen[node.uuid] = node
        stack.extend(node.children)
    assert set(seen) == set(uuids)
    for index, uuid in enumerate(uuids):
        node = seen[uuid]
        top = index
        while parents[top] is not None:
            top = parents[top]  # type: ignore[assignment]
        assert node.parent_uuid == (None if parents[index] is None else uuids[parents[index]])  # type: ignore[index]
        assert node.trace == uuids[top]
        assert node.depth == depth[index]
        assert node.duration_us == spans[index][1] - spans[index][0]
        assert nodes[uuid].duration_us == node.duration_us
