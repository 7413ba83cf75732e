"""The ATOF 0.1 wire format as llmflow writes it (SPEC §2, §10 ``Event``)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import DataSchema, Event, mark, pop_scope, push_scope, scope
from llmflow.atof import parse_event, read_events, validate_stream
from llmflow.exporters import AtofFileExporter
from llmflow.testing import capture

RFC3339_US_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
ENVELOPE = ["kind", "atof_version", "uuid", "parent_uuid", "timestamp", "name"]
PAYLOAD = ["data", "data_schema", "metadata"]
SCOPE_FIELDS = ["scope_category", "attributes", "category", "category_profile"]


def emit_sample() -> list[Event]:
    with capture() as events:
        with scope("outer", "agent", data={"goal": "x"}, metadata={"user": "u1"}):
            mark("checkpoint", data=[1, 2])
    return events


def test_scope_event_carries_envelope_scope_and_payload_fields() -> None:
    start, _, end = emit_sample()
    for event in (start, end):
        wire = event.to_dict()
        assert sorted(wire) == sorted(ENVELOPE + SCOPE_FIELDS + PAYLOAD)
        assert wire["kind"] == "scope"
        assert wire["atof_version"] == "0.1"
    assert start.to_dict()["scope_category"] == "start"
    assert end.to_dict()["scope_category"] == "end"


def test_mark_event_never_carries_scope_category_or_attributes() -> None:
    _, checkpoint, _ = emit_sample()
    wire = checkpoint.to_dict()
    assert sorted(wire) == sorted(ENVELOPE + PAYLOAD)
    assert checkpoint.scope_category is None
    assert checkpoint.attributes == ()


def test_mark_carries_category_and_profile_only_when_given() -> None:
    with capture() as events:
        mark("plain")
        mark("typed", category="tool", category_profile={"tool_call_id": "c1"})
    plain, typed = (event.to_dict() for event in events)
    assert "category" not in plain and "category_profile" not in plain
    assert typed["category"] == "tool"
    assert typed["category_profile"] == {"tool_call_id": "c1"}
    assert "scope_category" not in typed and "attributes" not in typed


def test_scope_without_profile_writes_null_profile_and_empty_attributes() -> None:
    with capture() as events:
        with scope("bare"):
            pass
    for event in events:
        wire = event.to_dict()
        assert wire["attributes"] == []
        assert wire["category"] == "function"
        assert wire["category_profile"] is None
        assert wire["data"] is None and wire["data_schema"] is None and wire["metadata"] is None


def test_attributes_are_sorted_and_unique() -> None:
    with capture() as events:
        with scope("s", attributes=["streaming", "parallel", "streaming", "remote"]):
            pass
    for event in events:
        assert event.attributes == ("parallel", "remote", "streaming")
        assert event.to_dict()["attributes"] == ["parallel", "remote", "streaming"]


def test_unknown_attribute_flags_are_preserved(tmp_path: Path) -> None:
    path = tmp_path / "flags.jsonl"
    AtofFileExporter(path).register()
    with capture() as events:
        with scope("s", attributes=["x-vendor.cached", "parallel"]):
            pass
    assert events[0].attributes == ("parallel", "x-vendor.cached")
    read = list(read_events(path))
    assert [event.attributes for event in read] == [["parallel", "x-vendor.cached"]] * 2


def test_attributes_must_be_strings_not_a_single_string() -> None:
    with pytest.raises(TypeError, match=r"^attributes: "):
        push_scope("s", attributes="parallel")
    with pytest.raises(TypeError, match=r"^attributes: "):
        push_scope("s", attributes=[1])


def test_payload_fields_are_exposed_as_event_attributes() -> None:
    with capture() as events:
        with scope(
            "s",
            "llm",
            data={"q": 1},
            metadata={"m": True},
            category_profile={"model_name": "gpt-x"},
            data_schema=DataSchema("openai/chat-completions", "1"),
        ):
            pass
    start = events[0]
    assert start.data == {"q": 1}
    assert start.metadata == {"m": True}
    assert start.category_profile == {"model_name": "gpt-x"}
    assert start.data_schema == DataSchema("openai/chat-completions", "1")
    assert start.to_dict()["data_schema"] == {"name": "openai/chat-completions", "version": "1"}


def test_data_schema_accepts_a_name_version_mapping() -> None:
    with capture() as events:
        mark("m", data_schema={"name": "acme/x", "version": "2"})
    assert events[0].to_dict()["data_schema"] == {"name": "acme/x", "version": "2"}


@pytest.mark.parametrize("bad", [{"name": "x"}, "acme/x", {"name": "x", "version": "1", "z": 1}])
def test_invalid_data_schema_is_rejected_naming_data_schema(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^data_schema: "):
        mark("m", data_schema=bad)  # type: ignore[arg-type]


def test_to_dict_equals_the_parsed_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    AtofFileExporter(path).register()
    with capture() as events:
        with scope("outer", "custom", category_profile={"subtype": "acme.plan", "k": [1]}):
            mark("m", data={"nested": {"a": [1.5, None, "é"]}}, metadata={"k": "v"})
            with scope(
                "inner", "tool", attributes=["remote"], data_schema={"name": "t", "version": "1"}
            ):
                pass
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [event.to_dict() for event in events]
    assert lines == [event.to_json() for event in events]


def test_to_json_is_one_compact_line() -> None:
    with capture() as events:
        mark("m", data={"text": "line one\nline two"})
    raw = events[0].to_json()
    assert isinstance(raw, bytes)
    assert b"\n" not in raw
    assert orjson.loads(raw)["data"] == {"text": "line one\nline two"}


def test_to_dict_returns_a_fresh_copy() -> None:
    with capture() as events:
        mark("m", data={"a": 1})
    copy = events[0].to_dict()
    copy["data"]["a"] = 2
    assert events[0].to_dict()["data"] == {"a": 1}


def test_timestamps_are_rfc3339_utc_with_microseconds_and_z() -> None:
    for event in emit_sample():
        assert isinstance(event.timestamp, str)
        assert RFC3339_US_Z.match(event.timestamp)
        parsed = datetime.fromisoformat(event.timestamp)
        assert parsed.utcoffset() is not None and not parsed.utcoffset()
        delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
        assert delta // datetime.resolution == event.timestamp_us  # µs resolution


def test_epoch_us_timestamp_format_writes_integer_microseconds() -> None:
    runtime = llmflow.Runtime(timestamp_format="epoch_us")
    runtime.install()
    with capture() as events:
        with scope("s"):
            mark("m")
    runtime.shutdown()
    for event in events:
        assert event.timestamp == event.timestamp_us
        assert isinstance(event.to_dict()["timestamp"], int)
    assert validate_stream(event.to_json() for event in events) == []


@pytest.mark.parametrize(
    "options",
    [{"timestamp_format": "iso"}, {"overflow": "wait"}, {"queue_capacity": 0}],
)
def test_invalid_runtime_options_are_rejected(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=rf"^{next(iter(options))}: "):
        llmflow.Runtime(**options)  # type: ignore[arg-type]


def test_event_uuids_are_version_7_time_ordered_and_unique() -> None:
    with capture() as events:
        for index in range(300):
            mark("m", data=index)
    ids = [event.uuid for event in events]
    assert all(uuid.UUID(value).version == 7 for value in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for event in events:
        assert abs((uuid.UUID(event.uuid).int >> 80) - event.timestamp_us // 1000) <= 1


def test_start_and_end_share_uuid_name_parent_attributes_and_category() -> None:
    with capture() as events:
        with scope("outer"):
            with scope("inner", "retriever", attributes=["parallel"]):
                pass
    inner_start, inner_end = events[1], events[2]
    for field in ("uuid", "name", "parent_uuid", "attributes", "category"):
        assert getattr(inner_start, field) == getattr(inner_end, field)
    assert inner_start.parent_uuid == events[0].uuid


def test_end_timestamp_strictly_after_start() -> None:
    with capture() as events:
        for _ in range(500):
            with scope("quick"):
                pass
    starts = {event.uuid: event for event in events if event.scope_category == "start"}
    ends = [event for event in events if event.scope_category == "end"]
    assert len(ends) == 500
    for end in ends:
        assert end.timestamp_us > starts[end.uuid].timestamp_us


def test_explicit_end_not_after_start_is_rejected() -> None:
    handle = push_scope("s", timestamp=1_000_000)
    with capture() as events:
        with pytest.raises(
            ValueError, match=r"^timestamp: the end .* must be later than the start"
        ):
            pop_scope(handle, timestamp=1_000_000)
    assert events == []
    pop_scope(handle, timestamp=1_000_001)


def test_custom_category_requires_subtype() -> None:
    with pytest.raises(ValueError, match=r"^category_profile: category 'custom' requires"):
        scope("s", "custom")
    with pytest.raises(ValueError, match=r"subtype"):
        push_scope("s", "custom", category_profile={"other": 1})
    with pytest.raises(ValueError, match=r"subtype"):
        mark("m", category="custom")
    with capture() as events:
        with scope("s", "custom", category_profile={"subtype": "acme.planner"}):
            mark("m", category="custom", category_profile={"subtype": "acme.note"})
    assert events[0].category_profile == {"subtype": "acme.planner"}
    assert events[-1].category_profile == {"subtype": "acme.planner"}  # every custom event
    assert validate_stream(event.to_json() for event in events) == []


@pytest.mark.parametrize("category", ["model", "LLM", "", None])
def test_unknown_category_is_rejected(category: object) -> None:
    with pytest.raises(ValueError, match=r"^category: expected one of"):
        push_scope("s", category)  # type: ignore[arg-type]


def test_unknown_category_profile_keys_are_preserved() -> None:
    with capture() as events:
        with scope("s", "llm", category_profile={"model_name": "m", "x-vendor": {"a": 1}}):
            pass
    assert events[0].to_dict()["category_profile"] == {"model_name": "m", "x-vendor": {"a": 1}}


def test_event_repr_names_kind_phase_category_and_name() -> None:
    start, checkpoint, _ = emit_sample()
    assert repr(start).startswith("<Event scope start agent 'outer' ")
    assert repr(checkpoint).startswith("<Event mark - 'checkpoint' ")


text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=50, deadline=None)
@given(data=json_values, metadata=st.dictionaries(text.filter(bool), json_values, max_size=4))
def test_payloads_round_trip_through_the_jsonl_line(
    data: object, metadata: dict[str, object]
) -> None:
    with capture() as events:
        mark("m", data=data, metadata=metadata or None)
    line = events[0].to_json()
    assert events[0].data == data
    assert orjson.loads(line)["data"] == data
    assert parse_event(line).data == data
    assert parse_event(line).metadata == (metadata or None)
