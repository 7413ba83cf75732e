"""The shipper (``llmflow ship``, ``llmflow.exporters.ship``/``start_shipper``).

Lines of a log file are cut as the runtime cuts them (hypothesis), every
exporter gets the same rows, spans and bytes through the shipper as in the
application's process, the checkpoint resumes, survives corruption, rotation
and truncation, and the faults are real: the shipper process is SIGKILLed and
SIGTERMed, its parent dies, the collector is down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import llmflow
from _collector import Collector
from llmflow import Runtime
from llmflow._event import LineParts
from llmflow._ship import read_checkpoint, split_line
from llmflow.exporters import (
    AtofFileExporter,
    BaseExporter,
    HttpExporter,
    OpenTelemetryExporter,
    ship,
    write_parquet,
)
from llmflow.exporters.parquet import PARQUET_COLUMNS
from llmflow.testing import capture
from test_parquet_exporter import duckdb_aggregates, run_agent

SRC = str(Path(__file__).resolve().parents[1] / "src")

# -- helpers ---------------------------------------------------------------------------


def record(runtime: Runtime, log: Path, calls: int = 5) -> list[bytes]:
    """Write a real run's log (LLM and tool calls, marks, a failure); return its lines."""
    exporter = AtofFileExporter(log)
    exporter.register("log", runtime=runtime)
    run_agent(calls)
    assert runtime.flush(10.0)
    runtime.remove_exporter("log", shutdown=True)
    return log.read_bytes().splitlines(keepends=True)


def keys(lines: Sequence[bytes]) -> Counter[tuple[str, str | None]]:
    """The de-duplication keys (uuid, scope_category) of lines, with their counts."""
    counted: Counter[tuple[str, str | None]] = Counter()
    for line in lines:
        event = orjson.loads(line)
        counted[(event["uuid"], event.get("scope_category"))] += 1
    return counted


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Recording(BaseExporter):
    """A line exporter that keeps what it gets; fails the first ``fail`` exports."""

    def __init__(self, fail: int = 0, flush_fails: int = 0) -> None:
        self.lines: list[bytes] = []
        self.exports = 0
        self.fail, self.flush_fails = fail, flush_fails
        self.flushes = 0

    def export_lines(self, lines: Sequence[LineParts]) -> int:
        self.exports += 1
        if self.exports <= self.fail:
            raise OSError("disk on fire")
        self.lines.extend(b"".join(parts) for parts in lines)
        return len(lines)

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        return self.flushes > self.flush_fails


# -- lines are cut as the runtime cuts them ----------------------------------------------

tricky_text = st.lists(
    st.sampled_from(['"', "\\", ',"data":', ',"data_schema":', "{", "}", "[", "]", "é", "\n", "x"]),
    max_size=4,
).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["data", "data_schema", "metadata", "a"]), inner, max_size=3
        )
    ),
    max_leaves=8,
)
objects = st.dictionaries(
    st.sampled_from(["data", "data_schema", "metadata", "k", ',"data":']), json_values, max_size=3
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=json_values,
    metadata=st.none() | objects,
    profile=st.none() | objects,
    schema=st.booleans(),
    name=tricky_text.filter(bool),
)
def test_a_line_of_the_log_is_cut_exactly_as_the_runtime_cut_it(
    data: Any, metadata: Any, profile: Any, schema: bool, name: str
) -> None:
    with capture() as events:
        llmflow.mark(
            name,
            data=data,
            metadata=metadata,
            category_profile=profile,
            data_schema={"name": "x", "version": "1"} if schema else None,
        )
        with llmflow.scope(name, data=data, metadata=metadata, category_profile=profile):
            pass
    for event in events:
        parts = event.line_parts()
        split = split_line(b"".join(parts))
        assert split is not None
        assert split[0] == parts
        assert split[1] == {**orjson.loads(b"".join(parts)), "data": None}


@settings(max_examples=80, deadline=None)
@given(event=objects, data=json_values)
def test_a_line_in_another_layout_is_written_in_llmflows_with_the_same_content(
    event: dict[str, Any], data: Any
) -> None:
    wire = {"uuid": "u1", "kind": "mark", "timestamp": 5, **event, "data": data}
    # another writer: spaces after separators and its own key order
    line = json.dumps(dict(reversed(wire.items())), separators=(", ", ": ")).encode() + b"\n"
    split = split_line(line)
    assert split is not None
    (head, text, tail), fields = split
    assert orjson.loads(text) == data
    parsed = orjson.loads(head + b"null" + tail)
    assert parsed["data"] is None
    # the ATOF fields are kept (keys that are not ATOF fields are not)
    assert {k: v for k, v in wire.items() if k in parsed and k != "data"} == {
        k: v for k, v in parsed.items() if k != "data" and (k in wire or v is not None)
    }
    assert fields["uuid"] == "u1"


@pytest.mark.parametrize("line", [b"[1, 2]\n", b"not json\n", b'"text"\n', b"{\n"])
def test_a_line_that_is_not_a_json_object_is_refused(line: bytes) -> None:
    assert split_line(line) is None


# -- every exporter gets what it gets in the application's process ------------------------


def test_parquet_through_the_shipper_has_the_rows_of_write_parquet(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    record(runtime, log, calls=30)
    result = ship(log, [f"parquet:{tmp_path / 'shipped'}"], batch_lines=17)
    assert result.complete and result.delivered == result.lines == len(
        log.read_bytes().splitlines()
    )
    write_parquet(log, tmp_path / "converted")
    assert duckdb_aggregates(tmp_path / "shipped") == duckdb_aggregates(tmp_path / "converted")
    columns = [name for name, _, _ in PARQUET_COLUMNS]
    shipped = ds.dataset(tmp_path / "shipped", partitioning="hive").to_table().select(columns)
    written = ds.dataset(tmp_path / "converted", partitioning="hive").to_table().select(columns)
    assert sorted(map(str, shipped.to_pylist())) == sorted(map(str, written.to_pylist()))


def test_opentelemetry_through_the_shipper_gets_the_spans_of_the_runtime_path(
    runtime: Runtime, tmp_path: Path
) -> None:
    def memory() -> tuple[TracerProvider, InMemorySpanExporter]:
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        return provider, spans

    def summary(spans: InMemorySpanExporter) -> list[tuple[Any, ...]]:
        return sorted(
            (s.name, s.start_time, s.end_time, str(sorted(dict(s.attributes or {}).items())))
            for s in spans.get_finished_spans()
        )

    live_provider, live = memory()
    OpenTelemetryExporter(live_provider).register("otel", runtime=runtime)
    log = tmp_path / "run.jsonl"
    record(runtime, log, calls=8)
    runtime.remove_exporter("otel", shutdown=True)
    shipped_provider, shipped = memory()
    result = ship(log, [OpenTelemetryExporter(shipped_provider)], batch_lines=7)
    assert result.complete
    assert summary(shipped) == summary(live)
    assert len(summary(live)) == 8 * 2 + 2  # calls and tools, the failed call, the agent


def test_http_and_jsonl_receive_the_files_own_bytes(runtime: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log)
    collector = Collector().start()
    try:
        result = ship(log, [f"http:{collector.url}", f"jsonl:{tmp_path / 'copy.jsonl'}"])
        assert result.complete and result.batches == 1
        assert b"".join(collector.bodies) == b"".join(lines)
        assert (tmp_path / "copy.jsonl").read_bytes() == log.read_bytes()
        assert result.exporters[f"http:{collector.url}"]["delivered"] == len(lines)
    finally:
        collector.stop()


# -- the checkpoint ------------------------------------------------------------------------


def test_a_second_run_resumes_after_the_last_delivered_line(
    runtime: Runtime, tmp_path: Path
) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    first = record(runtime, log, calls=3)
    result = ship(log, [f"jsonl:{copy}"])
    assert (result.resumed_offset, result.offset, result.line) == (
        0,
        log.stat().st_size,
        len(first),
    )
    checkpoint = read_checkpoint(f"{log}.ship-state")
    assert checkpoint is not None and checkpoint.offset == log.stat().st_size
    assert (checkpoint.device, checkpoint.inode) == (log.stat().st_dev, log.stat().st_ino)
    more = record(runtime, log, calls=2)  # appended
    again = ship(log, [f"jsonl:{copy}"])
    assert again.resumed_offset == result.offset
    assert again.lines == again.delivered == len(more) - len(first)
    assert copy.read_bytes() == log.read_bytes()  # each line once
    nothing = ship(log, [f"jsonl:{copy}"])
    assert (nothing.lines, nothing.batches, nothing.complete) == (0, 0, True)


def test_the_starts_of_spans_open_at_the_checkpoint_are_resent_so_ends_find_them(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    AtofFileExporter(log).register("log", runtime=runtime)
    agent = llmflow.push_scope("agent", "agent")
    llmflow.mark("inside")
    runtime.flush(10.0)
    lake = tmp_path / "lake"
    assert ship(log, [f"parquet:{lake}"]).complete
    nothing_new = Recording()
    assert ship(log, [nothing_new]).complete
    assert nothing_new.lines == []  # the open start is resent only with something new
    llmflow.pop_scope(agent)  # the end comes after the checkpoint
    runtime.flush(10.0)
    result = ship(log, [f"parquet:{lake}"])
    assert result.resent_starts == 1 and result.delivered == 1
    rows = ds.dataset(lake, partitioning="hive").to_table().to_pylist()
    end = next(row for row in rows if row["scope_category"] == "end")
    assert end["duration_us"] is not None  # joined to its start, read again from the log
    assert (
        Counter((row["uuid"], row["scope_category"]) for row in rows)[(end["uuid"], "start")] == 2
    )


def test_a_corrupt_state_file_is_reported_and_the_log_shipped_from_its_start(
    runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=2)
    state = tmp_path / "run.state"
    state.write_bytes(b'{"format": "llmflow-ship-state/1", "offset": "ten"')
    sink = Recording()
    result = ship(log, [sink], state=state)
    assert result.corrupt_state == 1 and result.resumed_offset == 0
    assert sink.lines == lines
    assert "run.state" in capsys.readouterr().err
    assert read_checkpoint(state) is not None  # rewritten


@pytest.mark.parametrize("change", ["replaced", "truncated", "rewritten"])
def test_a_log_replaced_or_truncated_between_runs_is_shipped_from_0(
    runtime: Runtime, tmp_path: Path, change: str
) -> None:
    log = tmp_path / "run.jsonl"
    record(runtime, log, calls=3)
    assert ship(log, [Recording()]).complete
    old = log.read_bytes().splitlines(keepends=True)
    if change == "replaced":
        log.rename(tmp_path / "run.jsonl.1")
        log.write_bytes(b"".join(old[:4]))
    elif change == "truncated":  # same file, shorter
        with open(log, "r+b") as handle:
            handle.truncate(len(b"".join(old[:4])))
    else:  # same file, truncated and written again past the old checkpoint
        log.write_bytes(b"".join(old[3:] + old))
    sink = Recording()
    result = ship(log, [sink])
    assert result.resumed_offset == 0
    assert sink.lines == log.read_bytes().splitlines(keepends=True)


def test_an_unwritable_state_file_is_an_error_naming_the_parameter(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    record(runtime, log, calls=1)
    (tmp_path / "file").write_text("")
    sink = Recording()
    with pytest.raises(OSError, match="state: cannot write the checkpoint"):
        ship(log, [sink], state=tmp_path / "file" / "run.state")
    assert sink.lines == []  # nothing shipped without a place for the checkpoint
    with pytest.raises(ValueError, match=r"state: .* is a directory"):
        ship(log, [sink], state=tmp_path)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["bogus:x"], "targets: 'bogus:x': unknown exporter 'bogus'"),
        (["parquet:"], "targets: 'parquet:': nothing after parquet:"),
        (["otlp:x"], "targets: 'otlp:x': otlp takes no argument"),
        (["jsonl"], "targets: 'jsonl': jsonl needs a path"),
        (["http:ftp://x"], "targets: 'http:ftp://x': url: expected an http"),
        (["parquet"], "targets: 'parquet': parquet needs LLMFLOW_PARQUET_DIR"),
        ([], "targets: expected at least one"),
        ("parquet:x", "targets: expected a list"),
        ([object()], "targets: 'object' is not a line exporter"),
    ],
)
def test_bad_targets_are_errors_naming_the_parameter(
    tmp_path: Path, targets: Any, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMFLOW_PARQUET_DIR", raising=False)
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"")
    with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(")):
        ship(log, targets)
    assert not (tmp_path / "run.jsonl.ship-state").exists()


@pytest.mark.parametrize(
    ("argument", "value"),
    [("batch_lines", 0), ("batch_seconds", -1.0), ("timeout", "soon"), ("batch_lines", 2.5)],
)
def test_bad_arguments_are_errors_naming_them(tmp_path: Path, argument: str, value: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=f"^{argument}:"):
        ship(tmp_path / "x.jsonl", [Recording()], **{argument: value})


# -- failures: the checkpoint does not advance, the batch is retried ----------------------


def test_a_refused_batch_is_retried_and_the_checkpoint_waits_for_it(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=2)
    state = tmp_path / "run.state"
    seen: list[int | None] = []

    class Watching(Recording):
        def export_lines(self, lines: Sequence[LineParts]) -> int:
            checkpoint = read_checkpoint(state)
            seen.append(None if checkpoint is None else checkpoint.offset)
            return super().export_lines(lines)

    sink, other = Watching(fail=2), Recording(flush_fails=1)
    result = ship(log, [sink, other], state=state)
    assert result.complete and (result.failed, result.retries) == (2, 2)
    assert seen == [0, 0, 0]  # the checkpoint stayed at 0 while the batch was refused
    assert sink.lines == lines
    assert other.lines == lines * 2  # its flush said "not delivered" once: handed it again
    assert read_checkpoint(state).offset == log.stat().st_size  # type: ignore[union-attr]


class Losing(Recording):
    """Keeps lines in an open "file" that ``flush`` finishes; a failed export loses the file."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.open: list[bytes] = []
        self.fail_at = fail_at

    def export_lines(self, lines: Sequence[LineParts]) -> int:
        self.exports += 1
        if self.exports == self.fail_at:
            self.open.clear()  # as ParquetExporter abandons its file on a disk error
            raise OSError("disk full")
        self.open.extend(b"".join(parts) for parts in lines)
        return len(lines)

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        self.lines.extend(self.open)
        self.open.clear()
        return True


def test_lines_are_flushed_and_checkpointed_every_commit_interval_not_every_batch(
    runtime: Runtime, tmp_path: Path
) -> None:
    log, lake = tmp_path / "run.jsonl", tmp_path / "lake"
    lines = record(runtime, log, calls=20)
    sink = Recording()
    result = ship(log, [sink, f"parquet:{lake}"], batch_lines=10, commit_seconds=3600.0)
    assert result.complete and result.batches > 5 and result.delivered == len(lines)
    assert sink.exports == result.batches and sink.flushes == 1  # one commit, at the end
    assert len(list(lake.glob("date=*/*.parquet"))) == 1  # one file, not one per batch
    assert read_checkpoint(f"{log}.ship-state").offset == log.stat().st_size  # type: ignore[union-attr]


def test_an_exporter_that_loses_earlier_batches_gets_them_again_from_the_checkpoint(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=20)
    sink, other = Losing(fail_at=4), Recording()
    result = ship(log, [sink, other], batch_lines=10, commit_seconds=3600.0)
    assert result.complete and result.failed == 1 and result.retries == 1
    assert sink.lines == lines  # the three batches lost with its file came again, once each
    # the other exporter took the four batches before the rewind, then everything again
    assert other.lines == lines[: 4 * 10] + lines
    assert result.lines == result.delivered == len(lines)


def test_a_batch_never_accepted_ends_a_one_shot_run_within_its_timeout(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    record(runtime, log, calls=1)
    started = time.monotonic()
    result = ship(log, [Recording(fail=10**9)], timeout=1.0)
    assert time.monotonic() - started < 5.0
    assert not result.complete and result.delivered == 0 and result.offset == 0
    assert result.last_error is not None and "disk on fire" in result.last_error


def test_a_collector_that_is_down_holds_the_checkpoint_and_gets_everything_later(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=4)
    collector = Collector().reserve_port()  # down
    spool = tmp_path / "spool"
    exporter = HttpExporter(collector.url, spool_dir=spool, backoff=0.05, max_backoff=0.1)
    try:
        result = ship(log, [exporter], timeout=1.0)
        assert not result.complete and result.offset == 0
        # the batch sits in the exporter's spool: it was handed over once, never twice
        assert exporter.stats()["pending"] == len(lines)
        collector.start()
        result = ship(log, [exporter], timeout=10.0)
        assert result.complete and result.offset == log.stat().st_size
        received = keys(b"".join(collector.bodies).splitlines())
        assert set(received) == set(keys(lines))
        # this second call handed the batch again (the checkpoint was behind it) while the
        # spool still held it: at-least-once, the unacknowledged batch at most twice
        assert max(received.values()) <= 2
    finally:
        exporter.shutdown(5.0)
        collector.stop()


def test_lines_a_collector_refuses_for_good_are_counted_and_passed(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=2)
    collector = Collector().start()
    collector.sticky = (400, {})
    try:
        result = ship(log, [f"http:{collector.url}"], timeout=5.0)
        assert result.complete and result.rejected == len(lines) and result.retries == 0
    finally:
        collector.stop()


# -- following: growth, partial lines, rotation, truncation, stop -----------------------------


class Following:
    """``ship(follow=True)`` on a thread, into a JSONL copy."""

    def __init__(self, log: Path, copy: Path, **options: Any) -> None:
        self.stop, self.commit = threading.Event(), threading.Event()
        self.copy = copy
        self.result: Any = None
        self.thread = threading.Thread(
            target=self._run, args=(log, options), name="test-ship", daemon=True
        )
        self.thread.start()

    def _run(self, log: Path, options: dict[str, Any]) -> None:
        self.result = ship(
            log, [f"jsonl:{self.copy}"], follow=True, stop=self.stop, commit=self.commit,
            poll=0.02, **options,
        )  # fmt: skip

    def copied(self) -> bytes:
        return self.copy.read_bytes() if self.copy.exists() else b""

    def finish(self) -> Any:
        self.stop.set()
        self.thread.join(30.0)
        assert not self.thread.is_alive()
        return self.result


def test_following_ships_growth_waits_for_a_partial_line_and_follows_rotation_and_truncation(
    runtime: Runtime, tmp_path: Path
) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    lines = record(runtime, tmp_path / "source.jsonl", calls=3)
    log.write_bytes(b"".join(lines[:3]))
    following = Following(log, copy, batch_seconds=0.05)
    wait_for(lambda: following.copied() == b"".join(lines[:3]))
    with open(log, "ab") as out:  # a writer caught mid-line
        out.write(lines[3][:40])
    time.sleep(0.3)
    assert following.copied() == b"".join(lines[:3])  # not shipped until complete
    with open(log, "ab") as out:
        out.write(lines[3][40:] + lines[4])
    wait_for(lambda: following.copied() == b"".join(lines[:5]))
    log.rename(tmp_path / "run.jsonl.1")  # rotation: the new file from its start
    log.write_bytes(b"".join(lines[5:8]))
    wait_for(lambda: following.copied() == b"".join(lines[:8]))
    with open(log, "r+b") as handle:  # truncation: read again from the start
        handle.truncate(0)
    time.sleep(0.2)
    with open(log, "ab") as out:
        out.write(lines[8])
    wait_for(lambda: following.copied() == b"".join(lines[:9]))
    result = following.finish()
    assert result.complete and result.rotations == 2
    assert (result.offset, result.line) == (len(lines[8]), 1)


def test_commit_delivers_at_once_and_stop_drains_to_the_end(
    runtime: Runtime, tmp_path: Path
) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    lines = record(runtime, log, calls=3)
    following = Following(log, copy, batch_seconds=3600.0)  # only commit or stop deliver
    time.sleep(0.3)
    assert following.copied() == b""
    following.commit.set()
    wait_for(lambda: following.copied() == b"".join(lines))
    more = record(runtime, log, calls=1)
    result = following.finish()
    assert following.copied() == log.read_bytes() == b"".join(more)
    assert result.complete and result.offset == log.stat().st_size and result.batches == 2


# -- real processes ------------------------------------------------------------------------

WRITER = r"""
import sys, time
source, log, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
lines = open(source, "rb").read().splitlines(keepends=True)
with open(log, "ab", buffering=0) as out:
    for start in range(0, len(lines), 50):
        out.write(b"".join(lines[start:start + 50]))
        time.sleep(pause)
"""


def big_log(runtime: Runtime, path: Path, calls: int) -> list[bytes]:
    return record(runtime, path, calls=calls)


def shipper(log: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmflow", "ship", str(log), *args],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_shipper_killed_mid_log_resumes_and_every_event_arrives(
    runtime: Runtime, tmp_path: Path
) -> None:
    source, log, copy = tmp_path / "source.jsonl", tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    lines = big_log(runtime, source, calls=150)  # 750 lines, written in 15 steps of 50
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(log), "0.1"])
    wait_for(log.exists)
    process = shipper(
        log, f"jsonl:{copy}", "--batch-lines", "40", "--batch-seconds", "0.05",
        "--commit-seconds", "0.01",
    )  # fmt: skip
    state = Path(f"{log}.ship-state")
    wait_for(lambda: (c := read_checkpoint(state)) is not None and c.offset > 0)
    process.kill()  # SIGKILL while the writer goes on
    process.wait(10)
    killed_at = read_checkpoint(state)
    assert killed_at is not None and killed_at.offset < len(b"".join(lines))
    assert writer.wait(30) == 0
    assert log.read_bytes() == source.read_bytes()
    again = shipper(log, f"jsonl:{copy}", "--once", "--batch-lines", "40")
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert f"resumed at byte {killed_at.offset:,}".encode() in out
    received = keys(copy.read_bytes().splitlines())
    assert set(received) == set(keys(lines))  # every event arrived
    # duplicates: at most the batch in flight, and the starts resent at resume
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= 40 + len(killed_at.open_starts)


def test_sigterm_stops_a_following_shipper_with_the_checkpoint_at_the_end(
    runtime: Runtime, tmp_path: Path
) -> None:
    log, lake = tmp_path / "run.jsonl", tmp_path / "lake"
    lines = record(runtime, log, calls=10)
    process = shipper(log, f"parquet:{lake}", "--batch-seconds", "3600")
    wait_for(Path(f"{log}.ship-state").exists)  # written once its signal handlers are set
    time.sleep(0.5)  # it reads everything and waits for more (its batch is not due)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    checkpoint = read_checkpoint(f"{log}.ship-state")
    assert checkpoint is not None and checkpoint.offset == log.stat().st_size
    assert f"shipped {len(lines)} of {len(lines)} lines".encode() in out
    assert ds.dataset(lake, partitioning="hive").count_rows() == len(lines)


def test_the_command_line_reports_bad_targets_and_an_unreadable_log(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_bytes(b"")
    for args, message in (
        ([str(log), "bogus:x", "--once"], b"llmflow ship: targets: 'bogus:x': unknown exporter"),
        (
            [str(tmp_path / "missing.jsonl"), "jsonl:x", "--once"],
            b"llmflow ship: path: cannot read " + str(tmp_path / "missing.jsonl").encode(),
        ),
        ([str(log), "--once"], b"llmflow ship: targets: name at least one TARGET"),
        (
            [str(log), "jsonl:x", "--once", "--state", str(log / "s")],
            b"llmflow ship: state: cannot write the checkpoint",
        ),
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "llmflow", "ship", *args],
            env=child_env(),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = process.communicate(timeout=30)
        assert process.returncode == 2, err
        assert message in err, err
    assert not (tmp_path / "x").exists()  # nothing was built for a log that is missing


APP = r"""
import os, sys, time
sys.path.insert(0, sys.argv[4])  # this llmflow, not one installed elsewhere
import llmflow
from llmflow.exporters import AtofFileExporter, start_shipper

log, copy, mode = sys.argv[1], sys.argv[2], sys.argv[3]
AtofFileExporter(log).register("log")
shipper = start_shipper(log, [f"jsonl:{copy}"], batch_seconds=3600)
for i in range(200):
    llmflow.mark("step", data={"i": i})
assert shipper.flush(timeout=30.0), "flush"
assert open(copy, "rb").read() == open(log, "rb").read()
print(shipper.pid, os.getpriority(os.PRIO_PROCESS, shipper.pid), flush=True)
for i in range(300):
    llmflow.mark("after-flush", data={"i": i})
if mode == "die":
    llmflow.flush()
    time.sleep(60)  # killed by the test
"""


def test_start_shipper_runs_niced_beside_the_application_and_drains_at_its_exit(
    tmp_path: Path,
) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    env = child_env()
    del env["PYTHONPATH"]  # the shipper must run the llmflow its application runs
    app = subprocess.run(
        [sys.executable, "-c", APP, str(log), str(copy), "exit", SRC],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert app.returncode == 0, app.stderr
    pid, niceness = map(int, app.stdout.split())
    assert niceness == os.getpriority(os.PRIO_PROCESS, 0) + 10
    assert len(log.read_bytes().splitlines()) == 500
    assert copy.read_bytes() == log.read_bytes()  # drained at exit, after the exit flush
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_shipper_whose_application_dies_drains_and_stops(tmp_path: Path) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(log), str(copy), "die", SRC],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert app.stdout is not None
    pid = int(app.stdout.readline().split()[0])
    wait_for(lambda: len(log.read_bytes().splitlines()) == 500)
    app.kill()  # SIGKILL: no atexit; the shipper sees its standard input close
    app.wait(10)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone)
    assert copy.read_bytes() == log.read_bytes()


def test_the_shipper_process_never_records_events_of_its_own(
    runtime: Runtime, tmp_path: Path
) -> None:
    log = tmp_path / "run.jsonl"
    lines = record(runtime, log, calls=1)
    env = {**child_env(), "LLMFLOW_ATOF_PATH": str(log), "LLMFLOW_EXPORTERS": "jsonl"}
    copy = tmp_path / "copy.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "llmflow", "ship", str(log), f"jsonl:{copy}", "--once"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert log.read_bytes().splitlines(keepends=True) == lines


def test_one_shipper_per_state_file(runtime: Runtime, tmp_path: Path) -> None:
    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    record(runtime, log, calls=1)
    following = Following(log, copy, batch_seconds=0.05)
    wait_for(lambda: following.copied() == log.read_bytes())
    with pytest.raises(OSError, match=r"state: .* is in use by another shipper"):
        ship(log, [Recording()])
    assert following.finish().complete
    assert ship(log, [Recording()]).complete  # released


ENV_APP = r"""
import llmflow
for i in range(50):
    llmflow.mark("step", data={"i": i})
print(sorted(llmflow.diagnostics().exporters))
"""


def test_llmflow_ship_runs_the_environments_slow_exporters_in_a_shipper(tmp_path: Path) -> None:
    log, lake = tmp_path / "run.jsonl", tmp_path / "lake"
    env = {
        **child_env(),
        "LLMFLOW_ATOF_PATH": str(log),
        "LLMFLOW_EXPORTERS": "jsonl,parquet",
        "LLMFLOW_PARQUET_DIR": str(lake),
        "LLMFLOW_SHIP": "1",
    }
    app = subprocess.run(
        [sys.executable, "-c", ENV_APP],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert app.returncode == 0, app.stderr
    assert app.stdout.strip() == b"['LLMFLOW_ATOF_PATH']"  # nothing in-process but the file
    assert ds.dataset(lake, partitioning="hive").count_rows() == 50  # shipped at exit
    checkpoint = read_checkpoint(f"{log}.ship-state")
    assert checkpoint is not None and checkpoint.line == 50


def test_shipper_running_sees_the_state_lock(runtime: Runtime, tmp_path: Path) -> None:
    from llmflow._ship import shipper_running

    log, copy = tmp_path / "run.jsonl", tmp_path / "copy.jsonl"
    record(runtime, log, calls=1)
    assert not shipper_running(log)
    following = Following(log, copy, batch_seconds=0.05)
    wait_for(lambda: following.copied() == log.read_bytes())
    assert shipper_running(log)
    following.finish()
    assert not shipper_running(log)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    targets=st.one_of(
        st.lists(st.text(max_size=12), max_size=2),
        st.lists(st.sampled_from(["parquet:", "otlp:x", "jsonl", "bogus", "http:x"]), max_size=2),
        st.none(),
        st.integers(),
    ),
    batch_lines=st.one_of(st.integers(-2, 3), st.floats(allow_nan=True), st.none()),
    timeout=st.one_of(st.floats(-1, 1, allow_nan=False), st.text(max_size=2)),
)
def test_bad_input_to_ship_is_an_error_naming_a_parameter(
    tmp_path: Path, targets: Any, batch_lines: Any, timeout: Any
) -> None:
    log = tmp_path / "fuzz.jsonl"
    log.write_bytes(b'{"kind":"mark"}\n')
    try:
        result = ship(log, targets, batch_lines=batch_lines, timeout=timeout)
    except (ValueError, TypeError, OSError) as exc:
        assert str(exc).split(":")[0] in {"targets", "batch_lines", "timeout", "path", "state"}
    else:
        assert result.lines == 1
