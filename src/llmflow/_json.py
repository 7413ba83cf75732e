"""JSON snapshots: the one place where user payloads become immutable bytes."""

from __future__ import annotations

from typing import Any

import orjson

from ._credentials import scrub_bytes
from ._errors import InvalidPayloadError

__all__ = ["check_metadata", "dumps", "metadata_snapshot", "snapshot"]

dumps = orjson.dumps


def snapshot(value: Any, param: str) -> bytes | None:
    """Serialize ``value`` to JSON bytes, or return ``None`` for ``None``.

    The bytes are the snapshot: later mutation of ``value`` cannot change what
    is recorded. Raises :class:`InvalidPayloadError` naming ``param`` when the
    value is not JSON (non-string keys, sets, arbitrary objects, ...).
    """
    if value is None:
        return None
    try:
        return dumps(value)
    except TypeError as exc:
        raise InvalidPayloadError(
            f"{param}: expected a JSON-serializable value, got {type(value).__name__} ({exc})"
        ) from None


def metadata_snapshot(value: Any, param: str = "metadata") -> bytes | None:
    """Validate and snapshot ``metadata``: ``None`` or a dict with non-empty string keys.

    Returns the JSON bytes (``None`` for ``None``) with secret-shaped text
    scrubbed (see :func:`llmflow._credentials.scrub_bytes`); raises
    :class:`InvalidPayloadError` naming ``param`` otherwise.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidPayloadError(f"{param}: expected a dict or None, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise InvalidPayloadError(f"{param}: keys must be non-empty strings, got {key!r}")
    return scrub_bytes(snapshot(value, param))  # type: ignore[arg-type]


check_metadata = metadata_snapshot
"""Former name of :func:`metadata_snapshot`, still used by ``_runtime``; do not use in new code."""
