"""Exporters: where delivered events go.

An exporter only knows how to export a batch and report the outcome (see
:class:`Exporter`); queueing, ordering, background workers, counting and the
isolation of failures belong to the runtime. ``OpenTelemetryExporter``,
``HttpExporter``, ``ParquetExporter``, ``write_parquet`` and the shipper
(``ship``, ``start_shipper``: deliver the JSONL log from another process) are imported on
first use, so ``import llmflow`` never loads OpenTelemetry or pyarrow (they
need the ``otel`` and ``parquet`` extras).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmflow._event import LineParts
from llmflow._lazy import lazy_getattr
from llmflow.exporters._base import (
    BaseExporter,
    Exporter,
    ExportResult,
    LineExporter,
    PartialExportError,
)
from llmflow.exporters.jsonl import AtofFileExporter

if TYPE_CHECKING:
    from llmflow._ship import Shipper, ShipResult, ship, start_shipper
    from llmflow.exporters.http import HttpExporter
    from llmflow.exporters.otel import OpenTelemetryExporter
    from llmflow.exporters.parquet import ParquetExporter, write_parquet

__all__ = [
    "AtofFileExporter",
    "BaseExporter",
    "ExportResult",
    "Exporter",
    "HttpExporter",
    "LineExporter",
    "LineParts",
    "OpenTelemetryExporter",
    "ParquetExporter",
    "PartialExportError",
    "ShipResult",
    "Shipper",
    "ship",
    "start_shipper",
    "write_parquet",
]

_LAZY = {
    "HttpExporter": "llmflow.exporters.http",
    "OpenTelemetryExporter": "llmflow.exporters.otel",
    "ParquetExporter": "llmflow.exporters.parquet",
    "write_parquet": "llmflow.exporters.parquet",
    "ship": "llmflow._ship",
    "start_shipper": "llmflow._ship",
    "Shipper": "llmflow._ship",
    "ShipResult": "llmflow._ship",
}


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)
