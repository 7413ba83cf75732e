"""``llmflow tail [-f]`` (SPEC §13): calls as they end, growth, rotation, truncation, Ctrl-C.

The follow tests run two real processes: a writer appending to a log and
``python -m llmflow tail -f`` reading it; the tail is stopped with SIGINT.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_logs import LogBuilder, run_cli

WRITER = r"""
import sys, time
path, mode = sys.argv[1], sys.argv[2]
lines = sys.stdin.buffer.read().splitlines(keepends=True)
with open(path, "ab", buffering=0) as out:
    for line in lines:
        if mode == "split":  # a writer caught mid-line: half now, the rest later
            out.write(line[:25]); time.sleep(0.05); out.write(line[25:])
        else:
            out.write(line)
        time.sleep(0.02)
"""


def call_log(names: list[str], start: int = 0) -> LogBuilder:
    log = LogBuilder()
    for i, name in enumerate(names):
        at = start + i * 1_000
        log.span(
            name, "llm", at, at + 500, model="m", usage={"input_tokens": 3, "output_tokens": 2}
        )
    return log


class Tail:
    """``llmflow tail -f`` in a child process, read line by line with a deadline."""

    def __init__(self, path: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmflow", "tail", "-f", *args, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        self._buffer = b""

    def read_lines(self, count: int, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while self._buffer.count(b"\n") < count:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; got {self._buffer!r}"
            if self._selector.select(left):
                chunk = os.read(self.process.stdout.fileno(), 65536)
                assert chunk, f"tail exited early: {self.stop()}"
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n", count)
        return [line.decode() for line in lines]

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=30)
        return self.process.returncode, err.decode()


def write_slowly(path: Path, log: LogBuilder, mode: str = "whole") -> None:
    subprocess.run(
        [sys.executable, "-c", WRITER, str(path), mode],
        input=b"".join(log.lines()),
        check=True,
        timeout=60,
    )


def test_tail_without_follow_prints_the_last_calls_and_exits(demo_log: Path) -> None:
    result = run_cli("tail", "-n", "2", str(demo_log))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:4] == ["llm", "anthropic.messages", "[claude-3-5-haiku-latest]"]
    assert lines[0].endswith("tokens 22→12  $0.000066  ok")
    assert lines[1].split()[1:3] == ["llm", "anthropic.messages"]
    assert lines[1].endswith(
        "3 attempts  !! llmflow.http.ProviderHTTPError: HTTP 529 from the provider: Overloaded"
    )


def test_tail_filters_by_category_name_and_errors(demo_log: Path) -> None:
    out = run_cli("tail", "--category", "tool", str(demo_log)).stdout.splitlines()
    assert len(out) == 2 and all("get_weather" in line for line in out)
    out = run_cli("tail", "--name", "anthropic.*", str(demo_log)).stdout.splitlines()
    assert len(out) == 2 and all("[claude-3-5-haiku-latest]" in line for line in out)
    out = run_cli("tail", "--errors", "--category", "all", str(demo_log)).stdout.splitlines()
    assert len(out) == 2 and "HTTP 529" in out[0] and "REJECTED" in out[1]


def test_tail_follow_prints_each_call_as_a_writer_process_ends_it_and_stops_on_sigint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.jsonl"
    call_log(["backlog-1", "backlog-2"]).write(path)
    tail = Tail(path, "-n", "1")
    assert "backlog-2" in tail.read_lines(1)[0]
    write_slowly(path, call_log([f"live-{i}" for i in range(5)], start=10_000), mode="split")
    lines = tail.read_lines(5)
    assert [line.split()[2] for line in lines] == [f"live-{i}" for i in range(5)]
    assert all(line.endswith("tokens 3→2  ok") for line in lines)
    code, err = tail.stop()
    assert code == 0
    assert "Traceback" not in err and "warning" not in err  # a half-written line is no problem


def test_tail_follow_reads_a_rotated_file_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    call_log(["before"]).write(path)
    tail = Tail(path)
    assert "before" in tail.read_lines(1)[0]
    path.rename(tmp_path / "app.jsonl.1")  # logrotate: move away, start a new file
    write_slowly(path, call_log(["after-rotation-1", "after-rotation-2"], start=50_000))
    lines = tail.read_lines(2)
    assert [line.split()[2] for line in lines] == ["after-rotation-1", "after-rotation-2"]
    code, err = tail.stop()
    assert code == 0 and "rotated or truncated" in err


def test_tail_follow_starts_over_when_the_file_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    call_log(["first-a", "first-b", "first-c"]).write(path)
    tail = Tail(path)
    assert len(tail.read_lines(3)) == 3
    path.write_bytes(b"")  # truncate in place (copytruncate)
    time.sleep(0.3)
    write_slowly(path, call_log(["second"], start=90_000))
    assert "second" in tail.read_lines(1)[0]
    code, _ = tail.stop()
    assert code == 0


def test_tail_of_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("tail", "-f", str(tmp_path / "nope.jsonl"))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("nope.jsonl: No such file or directory")


def test_tail_follow_refuses_a_gzip_file_in_one_line(demo_log: Path, tmp_path: Path) -> None:
    import gzip

    gz = tmp_path / "demo.jsonl.gz"
    gz.write_bytes(gzip.compress(demo_log.read_bytes()))
    result = run_cli("tail", "-f", str(gz))
    assert result.returncode == 2
    assert result.stderr == f"llmflow tail: -f follows plain files; {gz} is gzip\n"
    # without -f it reads it: the six LLM and tool calls
    assert len(run_cli("tail", str(gz)).stdout.splitlines()) == 6
