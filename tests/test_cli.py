"""``python -m llmflow validate`` and ``schemas`` (SPEC §1, §2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmflow import mark, scope
from llmflow.cli import main
from llmflow.testing import capture


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmflow", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_good_file(path: Path) -> None:
    with capture() as events:
        with scope("agent", "agent"):
            mark("step")
    path.write_bytes(b"".join(event.to_json() + b"\n" for event in events))


def test_validate_exits_zero_on_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    write_good_file(path)
    result = run_cli("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{path}: valid"


def test_validate_exits_one_and_names_each_violation_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    write_good_file(path)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([lines[0], lines[1], b"{torn"]) + b"\n")  # end lost, junk line
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    out = result.stdout.splitlines()
    assert out[0].startswith(f"{path}:line 1: [pairing] start without an end")
    assert out[1].startswith(f"{path}:line 3: [schema] ")
    assert out[-1] == f"{path}: 2 violation(s)"


def test_validate_reports_a_missing_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"
    result = run_cli("validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr


def test_validate_in_process_returns_the_exit_code(tmp_path: Path) -> None:
    path = tmp_path / "good.jsonl"
    write_good_file(path)
    assert main(["validate", str(path)]) == 0
    path.write_bytes(path.read_bytes() + b"[]\n")
    assert main(["validate", str(path)]) == 1


def test_schemas_check_fails_on_drift_and_passes_after_writing(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    assert main(["schemas", "--check", str(directory)]) == 1
    assert main(["schemas", str(directory)]) == 0
    assert main(["schemas", "--check", str(directory)]) == 0
    first = sorted(directory.glob("*.json"))[0]
    first.write_bytes(first.read_bytes().replace(b"\n", b" \n", 1))
    assert main(["schemas", "--check", str(directory)]) == 1
