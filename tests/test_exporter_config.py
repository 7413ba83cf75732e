"""``LLMFLOW_EXPORTERS``: exporters configured by environment variables at import (SPEC §12)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from _collector import Collector
from llmflow._environment import ExporterConfigError, parse_headers

SRC = Path(__file__).resolve().parents[1] / "src"

EMIT = """
import json, sys
{prelude}
import llmflow
with llmflow.scope("job"):
    for index in range(5):
        llmflow.mark("m", data={{"index": index}})
llmflow.flush(10.0)
runtime = llmflow.get_runtime()
print(json.dumps({{
    "exporters": sorted(llmflow.diagnostics().exporters),
    "failures": dict(llmflow.diagnostics().failures),
}}))
"""


def run_with(env: dict[str, str], cwd: Path, prelude: str = "") -> tuple[dict[str, Any], str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("LLMFLOW_", "OTEL_"))
    }
    environment.update(env, PYTHONPATH=str(SRC))
    done = subprocess.run(
        [sys.executable, "-c", EMIT.format(prelude=prelude)],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return orjson.loads(done.stdout.splitlines()[-1]), done.stderr


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector().start()
    try:
        yield receiver
    finally:
        receiver.stop()


def test_jsonl_writes_llmflow_atof_jsonl_in_the_working_directory_by_default(
    tmp_path: Path,
) -> None:
    result, stderr = run_with({"LLMFLOW_EXPORTERS": "jsonl"}, tmp_path)
    assert result["exporters"] == ["LLMFLOW_EXPORTERS:jsonl"]
    assert len((tmp_path / "llmflow.atof.jsonl").read_bytes().splitlines()) == 7
    assert stderr == ""


def test_jsonl_with_llmflow_atof_path_writes_that_file_once(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    result, _ = run_with({"LLMFLOW_EXPORTERS": "jsonl", "LLMFLOW_ATOF_PATH": str(path)}, tmp_path)
    assert result["exporters"] == ["LLMFLOW_ATOF_PATH"]
    assert len(path.read_bytes().splitlines()) == 7  # one line per event, not two
    assert not (tmp_path / "llmflow.atof.jsonl").exists()


def test_http_posts_to_llmflow_http_url_with_the_configured_headers(
    tmp_path: Path, collector: Collector
) -> None:
    env = {
        "LLMFLOW_EXPORTERS": "http",
        "LLMFLOW_HTTP_URL": collector.url,
        "LLMFLOW_HTTP_HEADERS": "authorization=Bearer%20token,x-team=search",
        "LLMFLOW_HTTP_SPOOL_DIR": str(tmp_path / "spool"),
    }
    result, _ = run_with(env, tmp_path)
    assert result["exporters"] == ["LLMFLOW_EXPORTERS:http"]
    assert len(collector.received) == 7
    assert collector.requests[0]["authorization"] == "Bearer token"
    assert collector.requests[0]["x-team"] == "search"


def test_parquet_writes_a_dataset_under_llmflow_parquet_dir_by_exit(tmp_path: Path) -> None:
    directory = tmp_path / "lake"
    env = {"LLMFLOW_EXPORTERS": "parquet,jsonl", "LLMFLOW_PARQUET_DIR": str(directory)}
    result, _ = run_with(env, tmp_path)
    assert result["exporters"] == ["LLMFLOW_EXPORTERS:jsonl", "LLMFLOW_EXPORTERS:parquet"]
    ((rows,),) = duckdb.sql(
        f"select count(*) from read_parquet('{directory}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert rows == 7


def test_unknown_names_and_missing_variables_warn_count_and_never_raise(
    tmp_path: Path,
) -> None:
    env = {"LLMFLOW_EXPORTERS": " JSONL, bogus ,http,parquet,,"}
    result, stderr = run_with(env, tmp_path)
    assert result["exporters"] == ["LLMFLOW_EXPORTERS:jsonl"]  # the valid one still works
    assert result["failures"] == {
        "exporter_config:bogus": 1,
        "exporter_config:http": 1,
        "exporter_config:parquet": 1,
    }
    assert "bogus" in stderr and "LLMFLOW_HTTP_URL" in stderr and "LLMFLOW_PARQUET_DIR" in stderr


def test_a_malformed_header_list_or_url_is_a_counted_failure(tmp_path: Path) -> None:
    env = {
        "LLMFLOW_EXPORTERS": "http",
        "LLMFLOW_HTTP_URL": "collector:4318",
        "LLMFLOW_HTTP_HEADERS": "novalue",
    }
    result, stderr = run_with(env, tmp_path)
    assert result["failures"] == {"exporter_config:http": 1}
    assert "LLMFLOW_HTTP_HEADERS" in stderr


def test_otlp_without_the_opentelemetry_module_warns_and_counts(tmp_path: Path) -> None:
    prelude = "sys.modules['llmflow.exporters.otel'] = None  # as if the extra were missing"
    env = {"LLMFLOW_EXPORTERS": "otlp,jsonl"}
    result, stderr = run_with(env, tmp_path, prelude)
    assert result["exporters"] == ["LLMFLOW_EXPORTERS:jsonl"]
    assert result["failures"] == {"exporter_config:otlp": 1}
    assert "llmflow[otel]" in stderr


def test_without_llmflow_exporters_nothing_is_installed(tmp_path: Path) -> None:
    result, stderr = run_with({}, tmp_path)
    assert result == {"exporters": [], "failures": {}}
    assert stderr == ""


def test_parse_headers_reads_the_otel_header_format() -> None:
    assert parse_headers("a=1, b = x%3Dy ,") == {"a": "1", "b": "x=y"}
    assert parse_headers("") == {}
    with pytest.raises(ExporterConfigError, match="LLMFLOW_HTTP_HEADERS"):
        parse_headers("a=1,broken")
