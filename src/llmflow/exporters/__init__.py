"""Exporters: where delivered events go.

An exporter only knows how to write a batch (see :class:`Exporter`); queueing,
ordering and isolation of failures belong to the runtime.
"""

from __future__ import annotations

from llmflow._runtime import Exporter, LineExporter

from .jsonl import AtofFileExporter

__all__ = ["AtofFileExporter", "Exporter", "LineExporter"]
