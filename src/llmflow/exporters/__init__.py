"""Exporters: where delivered events go.

An exporter only knows how to export a batch and report the outcome (see
:class:`Exporter`); queueing, ordering, background workers, counting and the
isolation of failures belong to the runtime.
``OpenTelemetryExporter`` is imported on first use, so ``import llmflow``
never imports OpenTelemetry (it needs the ``otel`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.exporters._base import (
    BaseExporter,
    Exporter,
    ExportResult,
    LineExporter,
    PartialExportError,
)
from llmflow.exporters.jsonl import AtofFileExporter

if TYPE_CHECKING:
    from llmflow.exporters.otel import OpenTelemetryExporter

__all__ = [
    "AtofFileExporter",
    "BaseExporter",
    "ExportResult",
    "Exporter",
    "LineExporter",
    "OpenTelemetryExporter",
    "PartialExportError",
]

_LAZY = {"OpenTelemetryExporter": "llmflow.exporters.otel"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmflow.exporters' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
