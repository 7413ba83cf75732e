"""Build ATOF logs for the CLI tests: wire-form events with chosen times and facts."""

from __future__ import annotations

import gzip
import itertools
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from llmflow._clock import format_rfc3339

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
_COUNTER = itertools.count(1)


def new_uuid() -> str:
    n = next(_COUNTER)
    return f"01900000-0000-7000-8000-{n:012x}"


@dataclass
class LogBuilder:
    """Collects events; ``span`` adds a start/end pair, ``write`` sorts them by time."""

    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    epoch: bool = False

    def _event(self, ts: int, body: dict[str, Any]) -> None:
        body["timestamp"] = ts if self.epoch else format_rfc3339(ts)
        self.events.append((ts, len(self.events), body))

    def span(
        self,
        name: str,
        category: str,
        start: int,
        end: int | None,
        *,
        parent: str | None = None,
        model: str | None = None,
        usage: dict[str, int] | None = None,
        metadata: dict[str, Any] | None = None,
        data: Any = None,
        output: Any = None,
        profile: dict[str, Any] | None = None,
        uuid: str | None = None,
    ) -> str:
        uuid = uuid or new_uuid()
        start_profile = dict(profile or {})
        if model is not None:
            start_profile["model_name"] = model
        base = {
            "kind": "scope",
            "atof_version": "0.1",
            "uuid": uuid,
            "parent_uuid": parent,
            "name": name,
            "attributes": [],
            "category": category,
        }
        self._event(
            T0 + start,
            {
                **base,
                "scope_category": "start",
                "category_profile": start_profile or None,
                "data": data,
                "data_schema": None,
                "metadata": None,
            },
        )
        if end is not None:
            end_profile = dict(start_profile)
            if usage is not None:
                end_profile["annotated_response"] = {"model": model, "usage": usage}
            self._event(
                T0 + end,
                {
                    **base,
                    "scope_category": "end",
                    "category_profile": end_profile or None,
                    "data": output,
                    "data_schema": None,
                    "metadata": metadata,
                },
            )
        return uuid

    def mark(self, name: str, at: int, *, parent: str | None = None, data: Any = None) -> str:
        uuid = new_uuid()
        self._event(
            T0 + at,
            {
                "kind": "mark",
                "atof_version": "0.1",
                "uuid": uuid,
                "parent_uuid": parent,
                "name": name,
                "data": data,
                "data_schema": None,
                "metadata": None,
            },
        )
        return uuid

    def lines(self) -> list[bytes]:
        return [
            orjson.dumps(body) + b"\n" for _, _, body in sorted(self.events, key=lambda e: e[:2])
        ]

    def write(self, path: Path, *, gz: bool = False) -> Path:
        data = b"".join(self.lines())
        path.write_bytes(gzip.compress(data) if gz else data)
        return path


def run_cli(
    *args: str, input: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m llmflow ARGS`` the way a user does; output as text."""
    done = subprocess.run(
        [sys.executable, "-m", "llmflow", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )
