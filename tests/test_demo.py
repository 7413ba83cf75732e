"""The demo (``python -m llmflow demo PATH``) and the CLI commands that read its log.

The demo runs once per module in a subprocess, the way a user runs it; each
test then checks one promise about the log it wrote.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from llmflow.atof import validate_stream


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    path = tmp_path_factory.mktemp("demo") / "demo.atof.jsonl"
    return run_cli("demo", str(path)), path


@pytest.fixture(scope="module")
def lines(demo: tuple[subprocess.CompletedProcess[str], Path]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in demo[1].read_bytes().splitlines()]


def scope_starts(lines: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lines
        if e["kind"] == "scope" and e["scope_category"] == "start" and e["category"] == category
    ]


def test_demo_exits_zero_and_reports_a_valid_log(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, path = demo
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validate_stream: valid" in result.stdout
    assert str(path.resolve()) in result.stdout


def test_demo_log_validates(demo: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    assert validate_stream(demo[1]) == []


@pytest.mark.parametrize("category", ["llm", "tool", "guardrail", "agent", "function"])
def test_demo_log_contains_a_scope_of_each_category(
    lines: list[dict[str, Any]], category: str
) -> None:
    assert scope_starts(lines, category)


def test_demo_log_records_both_tool_calls_answering_the_assistant_concurrently(
    lines: list[dict[str, Any]],
) -> None:
    tools = scope_starts(lines, "tool")
    assert [t["name"] for t in tools] == ["get_weather", "get_weather"]
    assert [t["category_profile"] for t in tools] == [
        {"tool_call_id": "call_weather_1"},
        {"tool_call_id": "call_weather_2"},
    ]
    asked = [
        call["id"]
        for e in lines
        if e.get("category") == "llm" and e.get("scope_category") == "end" and e["data"]
        for choice in e["data"].get("choices", [])
        for call in choice["message"].get("tool_calls") or []
    ]
    assert asked == ["call_weather_1", "call_weather_2"]
    # asyncio.gather: the second tool starts before the first one ends
    ends = {e["uuid"]: e for e in lines if e.get("scope_category") == "end"}
    assert tools[1]["timestamp"] < ends[tools[0]["uuid"]]["timestamp"]


def test_demo_log_contains_a_guardrail_rejected_mark(lines: list[dict[str, Any]]) -> None:
    marks = [e for e in lines if e["kind"] == "mark" and e["name"] == "llmflow.guardrail_rejected"]
    assert len(marks) == 1
    assert marks[0]["data"]["guardrail"] == "block-secrets"


def test_demo_log_contains_a_streamed_call(lines: list[dict[str, Any]]) -> None:
    streamed = [e for e in scope_starts(lines, "llm") if "streaming" in e["attributes"]]
    assert streamed
    ends = {e["uuid"]: e for e in lines if e.get("scope_category") == "end"}
    assert all(ends[e["uuid"]]["attributes"] == e["attributes"] for e in streamed)


def test_demo_log_contains_a_failed_call_with_exception_type(
    lines: list[dict[str, Any]],
) -> None:
    failed = [
        e
        for e in lines
        if e["kind"] == "scope"
        and e["scope_category"] == "end"
        and e["category"] == "llm"
        and "exception.type" in (e["metadata"] or {})
    ]
    # Anthropic stays overloaded: llmflow's retry gives up after 3 attempts, in one span
    assert [e["metadata"]["exception.type"] for e in failed] == ["llmflow.http.ProviderHTTPError"]
    assert failed[0]["metadata"]["http.status_code"] == 529
    assert failed[0]["metadata"]["retry.attempts"] == 3
    assert failed[0]["metadata"]["cost.usd"] is None  # never 0 for a call without usage
    marks = [e for e in lines if e["kind"] == "mark" and e["parent_uuid"] == failed[0]["uuid"]]
    assert [m["name"] for m in marks] == [
        "llmflow.retry",
        "llmflow.retry",
        "llmflow.retry_exhausted",
    ]


def test_demo_429_is_retried_by_llmflow_in_one_span_with_two_attempts(
    lines: list[dict[str, Any]],
) -> None:
    ends = [e for e in lines if e.get("scope_category") == "end" and e["category"] == "llm"]
    (retried,) = [e for e in ends if e["metadata"].get("retry.attempts") == 2]
    assert retried["name"] == "openai.chat"
    assert retried["metadata"]["http.status_code"] == 200
    assert retried["metadata"]["http.attempt"] == 0  # the SDK itself never retried
    (wait,) = [
        e
        for e in lines
        if e["kind"] == "mark"
        and e["name"] == "llmflow.retry"
        and e["parent_uuid"] == retried["uuid"]
    ]
    assert wait["data"]["reason"] == "http 429" and wait["data"]["delay"] == 0.02  # Retry-After


def test_demo_prices_every_answered_call_and_stays_within_its_budget(
    demo: tuple[subprocess.CompletedProcess[str], Path], lines: list[dict[str, Any]]
) -> None:
    ends = [e for e in lines if e.get("scope_category") == "end" and e["category"] == "llm"]
    answered = [e for e in ends if "exception.type" not in e["metadata"]]
    assert len(answered) == 3
    assert all(e["metadata"]["cost.usd"] > 0 for e in answered)
    assert all(e["metadata"]["cost.source"].startswith("genai-prices") for e in answered)
    spent = sum(e["metadata"]["cost.usd"] for e in answered)
    budget = [e for e in scope_starts(lines, "guardrail") if e["name"] == "llmflow.budget"]
    assert len(budget) == 4  # every call the secrets guardrail let through was admitted
    line = next(x for x in demo[0].stdout.splitlines() if "budget:" in x)
    assert f"${spent:.6f} of $0.05 spent" in line and "in 3 calls" in line


def test_demo_log_contains_no_credential_or_email_address(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    text = demo[1].read_text(encoding="utf-8")
    assert "sk-demo" not in text
    assert "ana@example.com" not in text
    assert re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", text) is None


def test_demo_records_sdk_calls_instrumented_in_one_line(lines: list[dict[str, Any]]) -> None:
    names = [e["name"] for e in scope_starts(lines, "llm")]
    assert names == ["openai.chat", "openai.chat", "anthropic.messages", "anthropic.messages"]
    ends = [e for e in lines if e.get("scope_category") == "end" and e["category"] == "llm"]
    assert [e["metadata"]["http.status_code"] for e in ends] == [200, 200, 200, 529]
    assert [e["metadata"]["http.attempt"] for e in ends] == [0, 0, 0, 0]
    assert {e["metadata"]["provider.name"] for e in ends} == {"openai", "anthropic"}
    (streamed,) = [e for e in ends if "streaming" in e["attributes"]]
    assert streamed["category_profile"]["annotated_response"]["usage"]["output_tokens"] == 12


def test_demo_guardrail_rejection_reaches_the_sdk_as_its_bad_request_error(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    assert "refused by the SDK as BadRequestError" in demo[0].stdout
    assert "block-secrets" in demo[0].stdout


def test_show_prints_the_demo_log_as_a_call_tree(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result = run_cli("show", str(demo[1]))
    assert result.returncode == 0, result.stderr
    assert "agent trip-planner" in result.stdout
    assert "tool get_weather" in result.stdout
    assert "call_weather_1" in result.stdout and "call_weather_2" in result.stdout
    assert "2 attempts" in result.stdout and "3 attempts" in result.stdout
    assert "sk-demo" not in result.stdout


def test_validate_accepts_the_demo_log(
    demo: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result = run_cli("validate", str(demo[1]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": valid")
