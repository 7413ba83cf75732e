"""TEMPORARY stand-in for the exporter contract (COMMON.md contract 3) until main has it.

Deleted when the ``delivery`` branch is merged: then ``ExportResult`` and
``BaseExporter`` come from ``llmflow.exporters``.
"""

from __future__ import annotations

import enum

from llmflow._runtime import Runtime, get_runtime

__all__ = ["BaseExporter", "ExportResult"]


class ExportResult(enum.Enum):
    """Outcome of one ``export`` call."""

    SUCCESS = "success"
    FAILURE = "failure"


class BaseExporter:
    """Defaults of the exporter protocol."""

    def register(self, name: str | None = None, *, runtime: Runtime | None = None) -> str:
        """Attach to ``runtime`` (default: the process default); return the name used."""
        runtime = runtime or get_runtime()
        name = name or type(self).__name__
        runtime.add_exporter(name, self)  # type: ignore[arg-type]
        return name

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing buffered: everything is delivered."""
        return True

    def shutdown(self, timeout: float | None = None) -> None:
        """Nothing to release."""

    def stats(self) -> dict[str, int]:
        """Exporter-specific counters (none)."""
        return {}
