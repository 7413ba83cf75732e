"""The ``llmflow`` entry point: usage errors, help, Ctrl-C, ``python -m llmflow``."""

from __future__ import annotations

import os
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


_HEAVY = ("asyncio", "ssl", "pydantic", "httpx2", "llmflow._runtime", "llmflow._llm")


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter with no exporter configured by the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMFLOW_")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )


@pytest.mark.parametrize("command", ["stats", "show", "tail"])
def test_log_commands_import_neither_the_runtime_nor_asyncio_nor_ssl(
    command: str, tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl"
    log = LogBuilder()
    log.span("openai.chat", "llm", 0, 900, model="gpt-4o", usage={"input_tokens": 3})
    log.write(path)
    result = _fresh(
        "import sys\n"
        "from llmflow.cli import main\n"
        f"assert main([{command!r}, {str(path)!r}]) == 0\n"
        f"print(sorted(m for m in {_HEAVY!r} if m in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_import_llmflow_loads_the_runtime_on_first_use_under_the_public_path() -> None:
    result = _fresh(
        "import sys, llmflow\n"
        "assert 'llmflow._runtime' not in sys.modules and 'asyncio' not in sys.modules\n"
        "assert set(llmflow.__all__) <= set(dir(llmflow))\n"
        "runtime = llmflow.Runtime\n"
        "assert 'llmflow._runtime' in sys.modules\n"
        "assert runtime.__module__ == 'llmflow' and llmflow.llm_call.__module__ == 'llmflow'\n"
        "assert llmflow.GuardrailRejected.__module__ == 'llmflow'\n"
        "from llmflow import get_runtime, testing\n"
        "assert get_runtime() is llmflow.get_runtime() and testing is llmflow.testing\n"
        "print('ok')\n"
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_each_command_module_adds_its_own_arguments_only_when_chosen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from llmflow.cli import COMMANDS

    for name, _ in COMMANDS:
        assert main([name, "--help"]) == 0
        assert f"usage: llmflow {name}" in capsys.readouterr().out
    result = _fresh(
        "import sys\n"
        "from llmflow.cli import main\n"
        "assert main(['--help']) == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('llmflow.cli.')))\n"
    )
    assert result.stdout.splitlines()[-1] == "['llmflow.cli._input']", result.stderr
