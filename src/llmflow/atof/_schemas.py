"""The JSON Schemas checked in under ``schemas/``, generated from the models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ._models import MarkEvent, ScopeEvent

__all__ = ["json_schemas"]


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas (draft 2020-12) of ``schemas/``, keyed by file name."""
    from llmflow.codecs import AnnotatedLlmRequest, AnnotatedLlmResponse

    models: dict[str, tuple[type[BaseModel], str]] = {
        "atof-scope-event.schema.json": (ScopeEvent, "ATOF 0.1 scope event"),
        "atof-mark-event.schema.json": (MarkEvent, "ATOF 0.1 mark event"),
        "annotated-llm-request.schema.json": (AnnotatedLlmRequest, "llmflow annotated request"),
        "annotated-llm-response.schema.json": (AnnotatedLlmResponse, "llmflow annotated response"),
    }
    out: dict[str, dict[str, Any]] = {}
    for filename, (model, title) in models.items():
        schema = model.model_json_schema(mode="validation")
        out[filename] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://llmflow.dev/schemas/{filename}",
            "title": title,
            **{k: v for k, v in schema.items() if k != "title"},
        }
    return out
