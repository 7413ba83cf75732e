"""Exporters: where delivered events go.

An exporter only knows how to write a batch (see :class:`Exporter`); queueing,
ordering and isolation of failures belong to the runtime. ``HttpExporter`` and
``ParquetExporter`` are imported on first use, so ``import llmflow`` never
loads pyarrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from llmflow._runtime import Exporter, LineExporter

from .jsonl import AtofFileExporter

if TYPE_CHECKING:
    from .http import HttpExporter
    from .parquet import ParquetExporter, write_parquet

__all__ = [
    "AtofFileExporter",
    "Exporter",
    "HttpExporter",
    "LineExporter",
    "ParquetExporter",
    "write_parquet",
]

_LAZY = {
    "HttpExporter": "llmflow.exporters.http",
    "ParquetExporter": "llmflow.exporters.parquet",
    "write_parquet": "llmflow.exporters.parquet",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llmflow.exporters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
