"""Fixtures of the CLI tests: the demo log, written once per session by the real demo."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from llmflow.cli.demo import run_demo


@pytest.fixture(scope="session")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.atof.jsonl"
    with contextlib.redirect_stdout(io.StringIO()):
        assert run_demo(path) == 0
    return path
