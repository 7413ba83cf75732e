"""``ParquetExporter`` and ``write_parquet``: one fixed schema, read as one dataset (SPEC §12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import llmflow
from llmflow import LlmRequest, Runtime, mark, scope
from llmflow.atof import span_facts
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter, ParquetExporter, write_parquet
from llmflow.exporters.parquet import PARQUET_COLUMNS, parquet_schema
from llmflow.testing import capture

SRC = Path(__file__).resolve().parents[1] / "src"


def chat_response(index: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "model": "gpt-4o-mini" if index % 2 else "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"answer {index}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 100 + index,
            "completion_tokens": 10 + index,
            "total_tokens": 110 + 2 * index,
            "prompt_tokens_details": {"cached_tokens": index % 3},
        },
    }


def run_agent(calls: int) -> None:
    """A run through the real entry points: LLM calls, tool calls, a failure, marks."""
    codec = OpenAIChatCodec()
    with scope("agent", category="agent"):
        for index in range(calls):
            request = LlmRequest(
                {"authorization": "Bearer secret"},
                {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{index}"}]},
            )
            handle = llmflow.llm_call("openai.chat", request, model_name="gpt-4o")
            llmflow.llm_call_end(
                handle,
                chat_response(index),
                response_codec=codec,
                metadata={"cost.usd": 0.001 * (index + 1), "provider.name": "openai"},
            )
            tool = llmflow.tool_call("search", {"q": index}, tool_call_id=f"call_{index}")
            llmflow.tool_call_end(tool, {"hits": index})
            mark("step", data={"index": index})
        with pytest.raises(ZeroDivisionError):
            llmflow.llm_call_execute_sync(
                "openai.chat", LlmRequest({}, {"model": "gpt-4o"}), lambda r: 1 / 0
            )


def expected_from_jsonl(path: Path) -> dict[str, Any]:
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    starts = {line["uuid"]: line for line in lines if line.get("scope_category") == "start"}
    facts = [
        span_facts(starts[line["uuid"]], line)
        for line in lines
        if line.get("scope_category") == "end"
    ]
    return {
        "rows": len(lines),
        "ends": len(facts),
        "marks": sum(line["kind"] == "mark" for line in lines),
        "errors": sum(not fact.ok for fact in facts),
        "input_tokens": sum(fact.input_tokens or 0 for fact in facts),
        "output_tokens": sum(fact.output_tokens or 0 for fact in facts),
        "cached_tokens": sum(fact.cached_tokens or 0 for fact in facts),
        "cost_usd": round(sum(fact.cost_usd or 0.0 for fact in facts), 9),
        "duration_us": sum(fact.duration_us or 0 for fact in facts),
        "tool_calls": sum(fact.tool_call_id is not None for fact in facts),
    }


AGGREGATE = """
select count(*) as rows,
       count(*) filter (where scope_category = 'end') as ends,
       count(*) filter (where kind = 'mark') as marks,
       count(*) filter (where status = 'error') as errors,
       coalesce(sum(input_tokens), 0) as input_tokens,
       coalesce(sum(output_tokens), 0) as output_tokens,
       coalesce(sum(cached_tokens), 0) as cached_tokens,
       round(coalesce(sum(cost_usd), 0), 9) as cost_usd,
       coalesce(sum(duration_us), 0) as duration_us,
       count(tool_call_id) as tool_calls
from read_parquet('{glob}', hive_partitioning = true)
"""


def duckdb_aggregates(directory: Path) -> dict[str, Any]:
    relation = duckdb.sql(AGGREGATE.format(glob=f"{directory}/**/*.parquet"))
    (values,) = relation.fetchall()
    return dict(zip(relation.columns, values, strict=True))


def pyarrow_aggregates(directory: Path) -> dict[str, Any]:
    table = ds.dataset(directory, format="parquet", partitioning="hive").to_table()
    rows = table.to_pylist()

    def total(column: str) -> Any:
        return sum(row[column] or 0 for row in rows)

    return {
        "rows": len(rows),
        "ends": sum(row["scope_category"] == "end" for row in rows),
        "marks": sum(row["kind"] == "mark" for row in rows),
        "errors": sum(row["status"] == "error" for row in rows),
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "cached_tokens": total("cached_tokens"),
        "cost_usd": round(total("cost_usd"), 9),
        "duration_us": total("duration_us"),
        "tool_calls": sum(row["tool_call_id"] is not None for row in rows),
    }


@pytest.fixture
def logged_run(tmp_path: Path, runtime: Runtime) -> Iterator[tuple[Path, Path, ParquetExporter]]:
    jsonl, directory = tmp_path / "run.jsonl", tmp_path / "parquet"
    AtofFileExporter(jsonl).register("jsonl", runtime=runtime)
    exporter = ParquetExporter(directory, max_rows_per_file=40)
    exporter.register("parquet", runtime=runtime)
    yield jsonl, directory, exporter


def test_duckdb_and_pyarrow_read_the_same_counts_tokens_and_cost_as_the_jsonl_log(
    logged_run: tuple[Path, Path, ParquetExporter],
) -> None:
    jsonl, directory, exporter = logged_run
    run_agent(30)
    llmflow.flush()
    assert exporter.flush(timeout=10.0) is True
    expected = expected_from_jsonl(jsonl)
    assert expected["errors"] == 1 and expected["tool_calls"] == 30
    assert expected["input_tokens"] == sum(100 + i for i in range(30))
    assert duckdb_aggregates(directory) == expected
    assert pyarrow_aggregates(directory) == expected
    assert exporter.stats()["rows"] == expected["rows"]


def test_rows_keep_the_atof_fields_as_written(
    logged_run: tuple[Path, Path, ParquetExporter],
) -> None:
    jsonl, directory, exporter = logged_run
    run_agent(3)
    llmflow.flush()
    exporter.flush()
    lines = [orjson.loads(line) for line in jsonl.read_bytes().splitlines()]
    table = ds.dataset(directory, format="parquet", partitioning="hive").to_table()
    rows = sorted(table.to_pylist(), key=lambda row: (row["timestamp_us"], row["uuid"]))
    assert [(row["uuid"], row["scope_category"]) for row in rows] == [
        (line["uuid"], line.get("scope_category")) for line in lines
    ]
    for row, line in zip(rows, lines, strict=True):
        assert row["timestamp"] == line["timestamp"]
        assert row["name"] == line["name"] and row["parent_uuid"] == line["parent_uuid"]
        assert row["attributes"] == line.get("attributes", [])
        for field in ("data", "metadata", "category_profile", "data_schema"):
            stored = row[field]
            assert (None if stored is None else orjson.loads(stored)) == line.get(field)
        day = datetime.fromtimestamp(row["timestamp_us"] / 1e6, UTC).date()
        assert row["date"] == day.isoformat() or str(row["date"]) == day.isoformat()
    assert "secret" not in str(table.to_pylist())  # credentials never reach the dataset


def test_the_schema_is_fixed_and_documented(
    logged_run: tuple[Path, Path, ParquetExporter],
) -> None:
    _, directory, exporter = logged_run
    run_agent(2)
    llmflow.flush()
    exporter.flush()
    files = sorted(directory.glob("date=*/part-*.parquet"))
    assert files
    for file in files:
        assert pq.read_schema(file).remove_metadata() == parquet_schema()
    assert [field.name for field in parquet_schema()] == [name for name, _, _ in PARQUET_COLUMNS]
    documented = (Path(__file__).resolve().parents[1] / "docs" / "exporters.md").read_text()
    for name, arrow_type, _ in PARQUET_COLUMNS:
        assert f"| `{name}` | `{arrow_type}` |" in documented


def test_rolling_writes_several_complete_files_of_at_most_max_rows(
    logged_run: tuple[Path, Path, ParquetExporter],
) -> None:
    _, directory, exporter = logged_run
    run_agent(30)
    llmflow.flush()
    exporter.flush()
    files = sorted(directory.glob("date=*/part-*.parquet"))
    sizes = [pq.ParquetFile(file).metadata.num_rows for file in files]
    assert len(files) >= 4 and max(sizes) <= 40
    assert sum(sizes) == exporter.stats()["rows"] == exporter.stats()["files"] * 0 + sum(sizes)
    assert exporter.stats()["files"] == len(files)
    assert not list(directory.rglob("*.tmp"))


def test_roll_interval_finishes_a_file_that_has_been_open_long_enough(tmp_path: Path) -> None:
    exporter = ParquetExporter(tmp_path, roll_interval=0.05)
    with capture() as events:
        mark("first")
    exporter.export(events)
    assert not list(tmp_path.glob("date=*/*.parquet"))  # still open: invisible
    time.sleep(0.1)
    exporter.export(events)
    assert len(list(tmp_path.glob("date=*/*.parquet"))) == 1
    exporter.shutdown()
    assert len(list(tmp_path.glob("date=*/*.parquet"))) == 2


def test_open_spans_are_bounded_and_an_end_without_its_start_is_still_a_row(
    tmp_path: Path,
) -> None:
    exporter = ParquetExporter(tmp_path, max_open_spans=2)
    with capture() as events:
        handles = [
            llmflow.llm_call("c", LlmRequest({}, {"model": "m"}), model_name=f"m{n}")
            for n in range(3)
        ]
        for handle in handles:
            llmflow.llm_call_end(handle, {"ok": True}, metadata={"cost.usd": 0.5})
    exporter.export(events)
    assert exporter.stats()["open_spans"] == 0 and exporter.stats()["unjoined"] == 1
    exporter.shutdown()
    rows = ds.dataset(tmp_path, partitioning="hive").to_table().to_pylist()
    ends = [row for row in rows if row["scope_category"] == "end"]
    assert [row["duration_us"] is None for row in ends] == [True, False, False]
    assert [row["cost_usd"] for row in ends] == [0.5, 0.5, 0.5]
    assert [row["model"] for row in ends] == ["m0", "m1", "m2"]  # the end alone names it


def test_epoch_timestamps_are_kept_as_written(tmp_path: Path) -> None:
    runtime = Runtime(timestamp_format="epoch_us")
    runtime.install()
    try:
        with capture(runtime=runtime) as events:
            mark("m")
    finally:
        runtime.shutdown()
    exporter = ParquetExporter(tmp_path)
    exporter.export(events)
    exporter.shutdown()
    (row,) = ds.dataset(tmp_path, partitioning="hive").to_table().to_pylist()
    assert (
        row["timestamp"] == str(events[0].timestamp_us)
        and row["timestamp_us"] == events[0].timestamp_us
    )


def test_write_parquet_from_a_log_file_gives_the_exporters_rows(
    logged_run: tuple[Path, Path, ParquetExporter], tmp_path: Path
) -> None:
    jsonl, directory, exporter = logged_run
    run_agent(5)
    llmflow.flush()
    exporter.flush()
    converted = tmp_path / "converted"
    stats = write_parquet(jsonl, converted)
    assert stats["rows"] == expected_from_jsonl(jsonl)["rows"]
    assert duckdb_aggregates(converted) == duckdb_aggregates(directory)
    columns = [name for name, _, _ in PARQUET_COLUMNS]
    exported = ds.dataset(directory, partitioning="hive").to_table().select(columns)
    written = ds.dataset(converted, partitioning="hive").to_table().select(columns)
    assert sorted(map(str, exported.to_pylist())) == sorted(map(str, written.to_pylist()))


def test_write_parquet_names_the_line_of_a_malformed_log(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text('{"kind": "mark"}\n')
    with pytest.raises(llmflow.AtofParseError, match="line 1"):
        write_parquet(log, tmp_path / "out")


def test_a_process_killed_mid_file_leaves_nothing_a_reader_chokes_on(tmp_path: Path) -> None:
    directory = tmp_path / "parquet"
    script = textwrap.dedent(
        f"""
        import llmflow
        from llmflow.exporters import ParquetExporter
        from llmflow.testing import capture
        exporter = ParquetExporter({str(directory)!r}, max_rows_per_file=300, row_group_size=50)
        written = 0
        while True:
            with capture() as events:
                for index in range(50):
                    llmflow.mark("m", data={{"index": index, "pad": "x" * 200}})
            exporter.export(events)
            written += 50
            if written == 1000:
                print("ready", flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finished = list(directory.glob("date=*/part-*.parquet"))
    assert len(finished) >= 3
    assert list(directory.rglob(".part-*.parquet.tmp"))  # the file it was writing
    ((count,),) = duckdb.sql(
        f"select count(*) from read_parquet('{directory}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert count == 300 * len(finished)
    assert ds.dataset(directory, partitioning="hive").count_rows() == count


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_a_full_disk_drops_and_counts_rows_and_never_raises(small_disk: Path) -> None:
    exporter = ParquetExporter(small_disk, compression="none", max_rows_per_file=200)
    with capture() as events:
        for index in range(200):
            mark("m", data={"pad": os.urandom(200).hex(), "index": index})
    results = [exporter.export(events).name for _ in range(10)]
    assert "FAILURE" in results
    exporter.shutdown()
    stats = exporter.stats()
    assert stats["rows"] + stats["lost"] == 2000 and stats["lost"] > 0
    readable = ds.dataset(small_disk, partitioning="hive").count_rows()
    assert readable == stats["rows"]


def test_import_llmflow_does_not_import_pyarrow() -> None:
    code = "import sys, llmflow, llmflow.exporters; assert 'pyarrow' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(SRC)}, check=True
    )


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_rows_per_file": 0}, "max_rows_per_file"),
        ({"roll_interval": 0}, "roll_interval"),
        ({"compression": "lz77"}, "compression"),
        ({"max_open_spans": "many"}, "max_open_spans"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_parameter(
    tmp_path: Path, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=param):
        ParquetExporter(tmp_path, **kwargs)


def test_arrow_types_of_the_analysis_columns() -> None:
    schema = parquet_schema()
    assert (
        schema.field("timestamp_us").type == pa.int64()
        and not schema.field("timestamp_us").nullable
    )
    assert schema.field("attributes").type == pa.list_(pa.string())
    assert schema.field("cost_usd").type == pa.float64()


def test_a_forked_child_writes_its_own_files_and_never_touches_the_parents(
    tmp_path: Path,
) -> None:
    exporter = ParquetExporter(tmp_path)
    with capture() as events:
        mark("before-fork")
    exporter.export(events)  # the parent's file is open now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            exporter.after_fork_in_child()
            exporter.export(events)
            exporter.shutdown()
            code = 0 if exporter.stats()["rows"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    exporter.export(events)
    exporter.shutdown()
    assert exporter.stats()["rows"] == 2
    assert len(list(tmp_path.glob("date=*/part-*.parquet"))) == 2
    assert ds.dataset(tmp_path, partitioning="hive").count_rows() == 3
