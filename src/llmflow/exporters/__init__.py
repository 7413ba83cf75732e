"""Exporters: where delivered events go.

An exporter only knows how to export a batch and report the outcome (see
:class:`Exporter`); queueing, ordering, background workers, counting and the
isolation of failures belong to the runtime.
"""

from __future__ import annotations

from llmflow.exporters._base import (
    BaseExporter,
    Exporter,
    ExportResult,
    LineExporter,
    PartialExportError,
)
from llmflow.exporters.jsonl import AtofFileExporter

__all__ = [
    "AtofFileExporter",
    "BaseExporter",
    "ExportResult",
    "Exporter",
    "LineExporter",
    "PartialExportError",
]
