"""The ``llmflow`` entry point: usage errors, help, Ctrl-C, ``python -m llmflow``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_logs import LogBuilder, run_cli

from llmflow.cli import main


def test_usage_errors_exit_2_and_help_exits_0() -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["stats"]) == 2  # PATH is required
    assert main(["--help"]) == 0


def test_every_command_is_listed_in_the_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "validate", "show", "stats", "tail", "convert", "report", "schemas"):
        assert command in result.stdout


def test_ctrl_c_during_a_command_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from llmflow.cli import stats

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(stats, "compute_stats", interrupted)
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"")
    assert main(["stats", str(path)]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_tail_f_on_a_pipe_stops_on_sigint_with_exit_0() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmflow", "tail", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    log = LogBuilder()
    log.span("ping", "llm", 0, 10)
    process.stdin.write(b"".join(log.lines()))
    process.stdin.flush()
    assert b"ping" in process.stdout.readline()  # started, read, printed: now waiting
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"Traceback" not in err
