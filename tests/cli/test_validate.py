"""``llmflow validate`` on what crashes and pipes leave: cut-off lines, gzip, stdin, big logs."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

from cli_logs import LogBuilder, run_cli

from llmflow.atof import validate_stream


def test_validate_names_a_cut_off_last_line_and_exits_1(demo_log: Path, tmp_path: Path) -> None:
    data = demo_log.read_bytes()
    path = tmp_path / "crashed.jsonl"
    path.write_bytes(data[:-40])
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    count = data.count(b"\n")
    assert (
        f"{path}:line {count}: [schema] cut-off last line (no newline at the end; "
        "the writer stopped mid-line)"
    ) in result.stdout.splitlines()


def test_validate_reads_gzip_and_stdin(demo_log: Path, tmp_path: Path) -> None:
    gz = tmp_path / "demo.jsonl.gz"
    gz.write_bytes(gzip.compress(demo_log.read_bytes()))
    assert run_cli("validate", str(gz)).stdout.strip() == f"{gz}: valid"
    result = run_cli("validate", "-", input=demo_log.read_bytes())
    assert (result.returncode, result.stdout.strip()) == (0, "<stdin>: valid")


def test_validate_memory_holds_ids_not_events(tmp_path: Path) -> None:
    log = LogBuilder()
    big = "x" * 4_000
    for i in range(2_000):
        log.span("call", "llm", i * 10, i * 10 + 5, data={"prompt": big}, output={"text": big})
    path = log.write(tmp_path / "big.jsonl")  # about 16 MB of payload
    tracemalloc.start()
    try:
        assert validate_stream(path) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak
