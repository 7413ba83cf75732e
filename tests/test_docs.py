"""Every Python block of README.md and docs/*.md runs as written.

Each block runs on its own, as a user who copies it would run it: a fresh
interpreter, an empty temporary working directory, no ``LLMFLOW_*`` variables.
A block that cannot run on its own is preceded by ``<!-- no-run: reason -->``;
it is reported as skipped with that reason, so the count of such blocks shows
in every test run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_NO_RUN = r"(?:<!--\s*no-run:\s*(?P<why>.+?)\s*-->\s*\n)?"
_BLOCK = re.compile(_NO_RUN + r"```python\n(?P<code>.*?)```", re.S)


def _blocks() -> list[pytest.ParameterSet]:
    params = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))
            marks = [pytest.mark.skip(reason=f"no-run: {match['why']}")] if match["why"] else []
            params.append(
                pytest.param(match["code"], id=f"{page.relative_to(ROOT)}:{line}", marks=marks)
            )
    return params


def test_the_docs_have_python_blocks() -> None:
    assert len(_blocks()) >= 20


@pytest.mark.parametrize("code", _blocks())
def test_doc_block_runs(code: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMFLOW_", "OTEL_"))}
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
