"""The checked-in JSON Schemas of ``schemas/`` (SPEC §1, §2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from llmflow import DataSchema, Runtime, mark, scope
from llmflow.atof import json_schemas
from llmflow.testing import capture

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
EXPECTED_FILES = {
    "atof-scope-event.schema.json",
    "atof-mark-event.schema.json",
    "annotated-llm-request.schema.json",
    "annotated-llm-response.schema.json",
}


def checked_in(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads((SCHEMAS / name).read_bytes())
    return schema


def test_checked_in_schemas_match_the_generated_ones() -> None:
    generated = json_schemas()
    assert set(generated) == EXPECTED_FILES
    assert {path.name for path in SCHEMAS.glob("*.json")} == EXPECTED_FILES
    for name, schema in generated.items():
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        assert (SCHEMAS / name).read_bytes() == text, (
            f"schemas/{name} is stale: run `python -m llmflow schemas`"
        )


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = checked_in(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def emitted() -> list[dict[str, Any]]:
    with capture() as events:
        with scope(
            "agent",
            "agent",
            data={"goal": "plan"},
            metadata={"user": "u"},
            attributes=["parallel", "x-vendor.flag"],
            data_schema=DataSchema("acme/agent", "1"),
        ):
            mark("plain")
            mark("typed", category="tool", category_profile={"tool_call_id": "c1"}, data=[1])
            with scope("step", "custom", category_profile={"subtype": "acme.step"}):
                pass
            try:
                with scope("fails", "tool"):
                    raise ValueError("x")
            except ValueError:
                pass
    return [event.to_dict() for event in events]


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(checked_in(name))


def test_emitted_events_validate_against_the_checked_in_schemas() -> None:
    scope_validator = validator("atof-scope-event.schema.json")
    mark_validator = validator("atof-mark-event.schema.json")
    lines = emitted()
    assert {line["kind"] for line in lines} == {"scope", "mark"}
    for line in lines:
        chosen = scope_validator if line["kind"] == "scope" else mark_validator
        chosen.validate(line)


def test_epoch_microsecond_timestamps_validate_against_the_schemas() -> None:
    Runtime(timestamp_format="epoch_us").install()
    lines = emitted()
    assert all(isinstance(line["timestamp"], int) for line in lines)
    for line in lines:
        validator(f"atof-{line['kind']}-event.schema.json").validate(line)


def test_schemas_reject_events_breaking_the_format() -> None:
    lines = emitted()
    start = next(line for line in lines if line["kind"] == "scope")
    plain = next(line for line in lines if line["kind"] == "mark")
    scope_validator = validator("atof-scope-event.schema.json")
    mark_validator = validator("atof-mark-event.schema.json")
    assert not scope_validator.is_valid({**start, "category": "model"})
    assert not scope_validator.is_valid({**start, "scope_category": "middle"})
    assert not scope_validator.is_valid({key: v for key, v in start.items() if key != "category"})
    assert not scope_validator.is_valid({**start, "atof_version": "0.2"})
    assert not mark_validator.is_valid({**plain, "attributes": []})
    assert not mark_validator.is_valid({**plain, "scope_category": "start"})
    assert not mark_validator.is_valid({**plain, "uuid": "not-a-uuid"})
    assert mark_validator.is_valid({**plain, "x-vendor.extra": {"kept": True}})
