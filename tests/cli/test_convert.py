"""``llmflow convert`` (SPEC §13): JSONL normalize/merge/filter, ATIF, OTLP/JSON, Parquet."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from cli_logs import LogBuilder, run_cli

from llmflow.atof import validate_stream


def has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_jsonl_merges_files_in_timestamp_order_and_drops_bad_lines(tmp_path: Path) -> None:
    first, second = LogBuilder(), LogBuilder()
    first.span("a1", "llm", 0, 100)
    first.span("a2", "llm", 400, 500)
    second.span("b1", "tool", 200, 300)
    one = first.write(tmp_path / "one.jsonl")
    two = second.write(tmp_path / "two.jsonl")
    two.write_bytes(two.read_bytes() + b"{torn")
    out = tmp_path / "merged.jsonl"
    result = run_cli("convert", "--to", "jsonl", str(one), str(two), "-o", str(out))
    assert result.returncode == 0
    assert f"{two}:3: cut-off last line" in result.stderr
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(e["name"], e["scope_category"]) for e in events] == [
        ("a1", "start"),
        ("a1", "end"),
        ("b1", "start"),
        ("b1", "end"),
        ("a2", "start"),
        ("a2", "end"),
    ]
    assert validate_stream(out) == []


def test_jsonl_filters_by_category_and_name_to_stdout(demo_log: Path) -> None:
    result = run_cli(
        "convert", "--to", "jsonl", "--category", "tool,llm", "--name", "openai.*", str(demo_log)
    )
    assert result.returncode == 0
    events = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 4  # the two openai.chat calls, start and end
    assert {e["category"] for e in events} == {"llm"}
    assert {e["name"] for e in events} == {"openai.chat"}
    original = {
        orjson.loads(line)["uuid"] + orjson.loads(line).get("scope_category", "")
        for line in demo_log.read_bytes().splitlines()
    }
    assert all(e["uuid"] + e["scope_category"] in original for e in events)


def test_a_missing_converter_is_a_one_line_error_naming_the_extra(
    demo_log: Path, tmp_path: Path
) -> None:
    code = (
        "import sys; sys.modules['llmflow.exporters.parquet'] = None\n"
        "from llmflow.cli import main\n"
        f"sys.exit(main(['convert', '--to', 'parquet', {str(demo_log)!r}, '-o', "
        f"{str(tmp_path / 'ds')!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "pip install 'llmflow[parquet]'" in done.stderr


def test_parquet_needs_an_output_directory(demo_log: Path) -> None:
    result = run_cli("convert", "--to", "parquet", str(demo_log))
    assert result.returncode == 2
    assert "needs -o DIRECTORY" in result.stderr or "llmflow[parquet]" in result.stderr


@pytest.mark.skipif(not has("llmflow.exporters.parquet"), reason="Parquet exporter not merged")
def test_parquet_dataset_has_one_row_per_event_readable_by_duckdb(
    demo_log: Path, tmp_path: Path
) -> None:
    duckdb = pytest.importorskip("duckdb")
    target = tmp_path / "dataset"
    result = run_cli("convert", "--to", "parquet", str(demo_log), "-o", str(target))
    assert result.returncode == 0, result.stderr
    rows = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{target}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert rows == [(len(demo_log.read_bytes().splitlines()),)] == [(40,)]


@pytest.mark.skipif(not has("llmflow.atif"), reason="ATIF converter not merged")
def test_atif_output_validates_against_the_nat_trajectory_model(demo_log: Path) -> None:
    atif = pytest.importorskip("nat.atif")
    result = run_cli("convert", "--to", "atif", str(demo_log))
    assert result.returncode == 0, result.stderr
    trajectory = atif.Trajectory.model_validate(orjson.loads(result.stdout))
    assert trajectory.steps


@pytest.mark.skipif(not has("llmflow.exporters.otel"), reason="OpenTelemetry exporter not merged")
def test_otlp_json_holds_one_span_per_atof_span_with_genai_names(
    demo_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "spans.otlp.json"
    result = run_cli("convert", "--to", "otlp", str(demo_log), "-o", str(out))
    assert result.returncode == 0, result.stderr
    document = orjson.loads(out.read_bytes())
    spans = [
        span
        for resource in document["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
    ]
    assert len(spans) == 17
    assert len({span["traceId"] for span in spans}) == 1
    assert [span["name"] for span in spans].count("chat gpt-4o-mini") == 2
    assert [span["name"] for span in spans].count("chat claude-3-5-haiku-latest") == 2
