"""The encode side shared by every codec: write an annotated request back into a body.

Encoding compares the annotation of the original request (``before``) with the
annotation being encoded (``after``), both in their JSON form:

* a top-level field whose annotation did not change is copied from the original
  body exactly (same key, same shape, ``null`` kept as ``null``);
* a changed field is written in the provider's canonical shape;
* inside lists (messages, input items, tools) every element whose annotation is
  equal to the annotation of an original element reuses that original element
  verbatim, so an edit touches only what it changed;
* ``extras`` (the unmodeled top-level fields) are written as given, or taken from
  the original when the annotated request leaves them ``None``.

This is what makes ``encode(decode(r), r) == r`` hold exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from llmflow._errors import CodecError, ParameterTypeError
from llmflow._types import Json, JsonObject

from ._annotated import AnnotatedLlmRequest

__all__ = ["ElementPool", "annotation_of", "assemble_body"]


def annotation_of(annotated: AnnotatedLlmRequest) -> JsonObject:
    """The JSON form of ``annotated`` (what ``annotate_request`` returns)."""
    if not isinstance(annotated, AnnotatedLlmRequest):
        raise ParameterTypeError(
            f"encode: expected an AnnotatedLlmRequest, got {type(annotated).__name__}"
        )
    return annotated.model_dump(mode="json", exclude_none=True)


def _key(annotation: Json) -> bytes:
    return orjson.dumps(annotation, option=orjson.OPT_SORT_KEYS)


class ElementPool:
    """Original provider elements, looked up by their annotation for verbatim reuse.

    Each original element is handed out at most once, in original order among
    elements with equal annotations.
    """

    __slots__ = ("_pool",)

    def __init__(self, raws: Iterable[Json], annotations: Iterable[JsonObject]) -> None:
        pool: dict[bytes, list[Json]] = {}
        for raw, annotation in zip(raws, annotations, strict=True):
            pool.setdefault(_key(annotation), []).append(raw)
        self._pool = pool

    def take(self, annotation: JsonObject) -> Json:
        """The original element annotated as ``annotation``, or ``None`` if there is none."""
        candidates = self._pool.get(_key(annotation))
        if candidates:
            return candidates.pop(0)
        return None


def assemble_body(
    body: JsonObject,
    before: JsonObject,
    after: JsonObject,
    fields: Mapping[str, tuple[str, ...]],
    write: Callable[[str, JsonObject], None],
    provider: str,
) -> JsonObject:
    """Build the encoded body from the original ``body`` and the two annotations.

    ``fields`` maps each annotated field name to the body keys that carry it. For
    a changed field ``write(name, out)`` writes its canonical form into ``out``.
    The result keeps the key order of ``body``; new keys come last. A field set in
    ``after`` that ``provider`` has no place for raises ``CodecError``.
    """
    for name in after:
        if name not in fields and name != "extras":
            raise CodecError(f"{provider} requests have no field for this", field=name)
    unmodeled: Mapping[str, Any] = before.get("extras") or {}
    extras: Mapping[str, Any] = after.get("extras", unmodeled)
    out: JsonObject = dict(extras)
    changed = []
    for name, keys in fields.items():
        if after.get(name) == before.get(name):
            for key in keys:
                if key in body and key not in unmodeled:
                    out[key] = body[key]
        else:
            changed.append(name)
    for name in changed:  # after the copies: a changed field may share a key with another
        write(name, out)
    ordered = {key: out[key] for key in body if key in out}
    if len(ordered) != len(out):
        ordered.update(out)
    return ordered
