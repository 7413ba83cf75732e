"""Reading and checking ATOF streams: ``llmflow.atof`` (SPEC §2, §9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from llmflow import AtofParseError, FlowError, mark, scope
from llmflow.atof import (
    MarkEvent,
    ScopeEvent,
    Violation,
    parse_event,
    read_events,
    validate_stream,
)
from llmflow.testing import capture

U1 = "01900000-0000-7000-8000-000000000001"
U2 = "01900000-0000-7000-8000-000000000002"
U3 = "01900000-0000-7000-8000-000000000003"
MISSING = "01900000-0000-7000-8000-0000000000ff"
T0 = "2024-06-01T12:00:00.000000Z"
T1 = "2024-06-01T12:00:00.000001Z"
T2 = "2024-06-01T12:00:00.000002Z"
T3 = "2024-06-01T12:00:00.000003Z"


def scope_event(
    uuid: str,
    phase: str,
    timestamp: str | int,
    *,
    name: str = "s",
    parent: str | None = None,
    attributes: list[str] | None = None,
    category: str = "function",
    profile: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "kind": "scope",
        "atof_version": "0.1",
        "uuid": uuid,
        "parent_uuid": parent,
        "timestamp": timestamp,
        "name": name,
        "scope_category": phase,
        "attributes": [] if attributes is None else attributes,
        "category": category,
        "category_profile": profile,
        "data": None,
        "data_schema": None,
        "metadata": None,
        **extra,
    }


def mark_event(
    uuid: str, timestamp: str | int, *, parent: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "mark",
        "atof_version": "0.1",
        "uuid": uuid,
        "parent_uuid": parent,
        "timestamp": timestamp,
        "name": "m",
        "data": None,
        "data_schema": None,
        "metadata": None,
        **extra,
    }


def lines(*events: dict[str, Any] | str) -> list[bytes]:
    return [event.encode() if isinstance(event, str) else orjson.dumps(event) for event in events]


def pair(uuid: str = U1, **kwargs: Any) -> list[dict[str, Any]]:
    return [scope_event(uuid, "start", T0, **kwargs), scope_event(uuid, "end", T1, **kwargs)]


def rules(violations: list[Violation]) -> list[tuple[int, str]]:
    return [(violation.line, violation.rule) for violation in violations]


# -- parsing ------------------------------------------------------------------------------


def test_parse_event_returns_scope_and_mark_models() -> None:
    start = parse_event(orjson.dumps(scope_event(U1, "start", T0)))
    checkpoint = parse_event(orjson.dumps(mark_event(U2, T0)).decode())
    assert isinstance(start, ScopeEvent) and start.scope_category == "start"
    assert isinstance(checkpoint, MarkEvent) and checkpoint.category is None
    assert parse_event(mark_event(U2, 5)).timestamp_us == 5


def test_read_events_preserves_unknown_fields_and_flags() -> None:
    original = scope_event(
        U1,
        "start",
        T0,
        attributes=["parallel", "x-vendor.flag"],
        category="llm",
        profile={"model_name": "m", "x-vendor.profile": {"cost": 0.1}},
        data_schema={"name": "acme/x", "version": "1", "x-extra": True},
        **{"x-vendor.top": [1, {"a": None}]},
    )
    checkpoint = mark_event(U2, 7, parent=U1, category="tool", **{"x-mark": "kept"})
    read = list(read_events(lines(original, checkpoint)))
    assert read[0].attributes == ["parallel", "x-vendor.flag"]
    assert read[0].model_dump() == original
    assert read[1].model_dump(exclude_unset=True) == checkpoint
    assert orjson.loads(orjson.dumps(read[0].model_dump())) == original


def test_read_events_round_trips_what_llmflow_writes() -> None:
    with capture() as captured:
        with scope("s", "custom", category_profile={"subtype": "a.b"}, attributes=["stateful"]):
            mark("m", data={"x": [1, 2]}, metadata={"k": "v"})
    read = list(read_events(event.to_json() for event in captured))
    assert [event.model_dump(exclude_unset=True) for event in read] == [
        event.to_dict() for event in captured
    ]


def test_read_events_reads_a_path_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join([*lines(*pair()), b"", b"   "]) + b"\n")
    assert [event.scope_category for event in read_events(path)] == ["start", "end"]
    assert [event.scope_category for event in read_events(str(path))] == ["start", "end"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"kind": "span"}', "kind"),
        (orjson.dumps(mark_event("not-a-uuid", T0)).decode(), "uuid"),
        (orjson.dumps(mark_event(U1, "2024-06-01T12:00:00")).decode(), "timestamp"),
        (orjson.dumps(mark_event(U1, T0, atof_version="0.2")).decode(), "atof_version"),
        (orjson.dumps(scope_event(U1, "middle", T0)).decode(), "scope_category"),
        (orjson.dumps(scope_event(U1, "start", T0, category="model")).decode(), "category"),
        (orjson.dumps(mark_event(U1, T0, attributes=[])).decode(), "attributes"),
        (orjson.dumps(mark_event(U1, T0, scope_category="start")).decode(), "scope_category"),
    ],
    ids=[
        "json",
        "not-object",
        "kind",
        "uuid",
        "naive-timestamp",
        "version",
        "scope-category",
        "category",
        "mark-attributes",
        "mark-scope-category",
    ],
)
def test_malformed_line_raises_atof_parse_error_with_its_line_number(
    bad: str, message: str
) -> None:
    source = [*lines(*pair()), b"", bad.encode()]
    with pytest.raises(AtofParseError) as raised:
        list(read_events(source))
    assert raised.value.line == 4  # blank lines still count
    assert str(raised.value).startswith("line 4: ")
    assert message in str(raised.value)
    assert isinstance(raised.value, FlowError) and isinstance(raised.value, ValueError)


def test_missing_required_field_is_named() -> None:
    event = scope_event(U1, "start", T0)
    del event["category"]
    with pytest.raises(AtofParseError, match=r"category"):
        parse_event(event)


def test_mixed_timestamp_forms_are_accepted_in_one_stream() -> None:
    start_us = 1_717_243_200_000_000  # 2024-06-01T12:00:00Z
    stream = lines(
        scope_event(U1, "start", start_us),
        mark_event(U2, T1, parent=U1),
        scope_event(U1, "end", "2024-06-01T14:00:00.000002+02:00"),
    )
    assert validate_stream(stream) == []
    read = list(read_events(stream))
    assert [event.timestamp_us for event in read] == [start_us, start_us + 1, start_us + 2]


# -- validate_stream ------------------------------------------------------------------------


def test_validate_stream_accepts_what_llmflow_writes(tmp_path: Path) -> None:
    with capture() as captured:
        with scope("a", "agent", attributes=["parallel", "x-flag"]):
            mark("m")
            with scope("b", "custom", category_profile={"subtype": "acme.step"}):
                pass
    path = tmp_path / "ok.jsonl"
    path.write_bytes(b"".join(event.to_json() + b"\n" for event in captured))
    assert validate_stream(path) == []


def test_validate_stream_reports_a_start_without_an_end() -> None:
    stream = lines(mark_event(U2, T0), scope_event(U1, "start", T1))
    assert rules(validate_stream(stream)) == [(2, "pairing")]
    assert "start without an end" in validate_stream(stream)[0].message


def test_validate_stream_reports_an_end_without_a_start() -> None:
    assert rules(validate_stream(lines(scope_event(U1, "end", T1)))) == [(1, "pairing")]


def test_validate_stream_reports_a_second_end_and_a_second_start() -> None:
    start, end = pair()
    violations = validate_stream(lines(start, start, end, end))
    assert rules(violations) == [(2, "pairing"), (4, "pairing")]
    assert "second start" in violations[0].message and "line 1" in violations[0].message
    assert "second end" in violations[1].message


@pytest.mark.parametrize("end_time", [T0, "2024-06-01T11:59:59.999999Z"])
def test_validate_stream_reports_an_end_not_after_its_start(end_time: str) -> None:
    stream = lines(scope_event(U1, "start", T0), scope_event(U1, "end", end_time))
    violations = validate_stream(stream)
    assert rules(violations) == [(2, "end-after-start")]
    assert "line 1" in violations[0].message


@pytest.mark.parametrize(
    ("field", "start_value", "end_value"),
    [
        ("name", "a", "b"),
        ("category", "tool", "llm"),
        ("attributes", ["parallel"], ["streaming"]),
        ("parent", U2, None),
    ],
)
def test_validate_stream_reports_start_end_field_mismatch(
    field: str, start_value: Any, end_value: Any
) -> None:
    parent = scope_event(U2, "start", T0, name="p")
    stream = lines(
        parent,
        scope_event(U1, "start", T1, **{field: start_value}),
        scope_event(U1, "end", T2, **{field: end_value}),
        scope_event(U2, "end", T3, name="p"),
    )
    violations = validate_stream(stream)
    assert rules(violations) == [(3, "start-end-fields")]
    wire_name = "parent_uuid" if field == "parent" else field
    assert violations[0].message.startswith(f"{wire_name} of the end")


@pytest.mark.parametrize("attributes", [["streaming", "parallel"], ["parallel", "parallel"]])
def test_validate_stream_reports_unsorted_or_duplicate_attributes(attributes: list[str]) -> None:
    stream = lines(*pair(attributes=attributes))
    assert rules(validate_stream(stream)) == [(1, "attributes"), (2, "attributes")]


def test_validate_stream_reports_a_missing_parent() -> None:
    stream = lines(*pair(parent=MISSING), mark_event(U3, T2, parent=MISSING))
    violations = validate_stream(stream)
    assert rules(violations) == [(1, "parent"), (2, "parent"), (3, "parent")]
    assert MISSING in violations[0].message


def test_validate_stream_accepts_a_parent_that_starts_later_in_the_file() -> None:
    # Consumers sort by timestamp; the file order of parent and child is free.
    child = pair(U2, parent=U1)
    stream = lines(
        *child, scope_event(U1, "start", T0, name="p"), scope_event(U1, "end", T3, name="p")
    )
    assert validate_stream(stream) == []


@pytest.mark.parametrize(
    "profile", [None, {}, {"subtype": ""}, {"subtype": "has space"}, {"subtype": 3}]
)
def test_validate_stream_reports_custom_category_without_a_dotted_subtype(
    profile: dict[str, Any] | None,
) -> None:
    stream = lines(
        *pair(category="custom", profile=profile),
        mark_event(U2, T2, category="custom", category_profile=profile),
    )
    assert rules(validate_stream(stream)) == [
        (1, "custom-subtype"),
        (2, "custom-subtype"),
        (3, "custom-subtype"),
    ]


def test_validate_stream_reports_schema_violations_and_keeps_checking() -> None:
    stream = lines(
        scope_event(U1, "start", T0),
        "{broken",
        mark_event("bad-uuid", T1),
        scope_event(U1, "end", T2),
        scope_event(U2, "start", T3),
    )
    assert rules(validate_stream(stream)) == [(2, "schema"), (3, "schema"), (5, "pairing")]


def test_violations_are_sorted_by_line_and_print_with_line_and_rule() -> None:
    stream = lines(scope_event(U1, "start", T0, attributes=["b", "a"]), scope_event(U2, "end", T1))
    violations = validate_stream(stream)
    assert [violation.line for violation in violations] == sorted(v.line for v in violations)
    assert str(violations[0]).startswith("line 1: [")
