"""JSON snapshots: the one place where user payloads become immutable bytes."""

from __future__ import annotations

from typing import Any

import orjson

from ._credentials import scrub_bytes
from ._errors import InvalidPayloadError

__all__ = [
    "dumps",
    "dumps_payload",
    "json_form",
    "json_form_or_value",
    "metadata_snapshot",
    "snapshot",
]

dumps = orjson.dumps
_dumps = orjson.dumps

_NOT_AN_SDK_OBJECT: Any = object()
_SENTINELS: frozenset[str] = frozenset({"NotGiven", "Omit"})
"""Class names of the SDKs' "argument not given" sentinels (openai, anthropic)."""


def json_form(value: object) -> Any:
    """The JSON form of an SDK object (pydantic model, ``model_dump``/``to_dict``).

    Pydantic models give their wire form (``mode="json"``, aliases, only the
    fields that were set, as the provider SDKs serialize them); objects with
    only ``to_dict()`` give what it returns. Anything else returns a private
    marker (see :func:`dumps_payload`).
    """
    dump = getattr(value, "model_dump", None)
    if dump is not None and callable(dump):
        try:
            return dump(mode="json", by_alias=True, exclude_unset=True)
        except TypeError:  # a model_dump without pydantic's keywords
            return dump()
    to_dict = getattr(value, "to_dict", None)
    if to_dict is not None and callable(to_dict) and not isinstance(value, type):
        return to_dict()
    return _NOT_AN_SDK_OBJECT


def json_form_or_value(value: object) -> Any:
    """:func:`json_form` of an SDK object; any other value is returned unchanged (shallow)."""
    if type(value) is dict:
        return value
    form = json_form(value)
    return value if form is _NOT_AN_SDK_OBJECT else form


class _SentinelFound(Exception):
    """Raised through orjson when a value holds an SDK "not given" sentinel."""


def _default(value: object) -> Any:
    # Called by orjson only for what it cannot serialize itself: plain dicts,
    # lists and scalars never get here, so they pay nothing for this.
    if type(value).__name__ in _SENTINELS:
        raise _SentinelFound
    form = json_form(value)
    if form is _NOT_AN_SDK_OBJECT:
        raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
    return form


def _plain(value: Any) -> Any:
    """``value`` with SDK objects replaced by their JSON form and sentinels dropped."""
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items() if type(v).__name__ not in _SENTINELS}
    if type(value) in (list, tuple):
        return [_plain(v) for v in value if type(v).__name__ not in _SENTINELS]
    if type(value).__name__ in _SENTINELS:
        return None
    form = json_form(value)
    return value if form is _NOT_AN_SDK_OBJECT else _plain(form)


def _bad_path(value: Any, path: str) -> tuple[str, object]:
    """The path of the first part of ``value`` that cannot be serialized, and that part."""
    if type(value) is dict or isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", key
            if type(item).__name__ in _SENTINELS:
                continue
            try:
                orjson.dumps(item, default=_default)
            except _SentinelFound:
                pass
            except TypeError:
                return _bad_path(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            try:
                orjson.dumps(item, default=_default)
            except _SentinelFound:
                pass
            except TypeError:
                return _bad_path(item, f"{path}[{index}]")
    else:
        form = json_form(value)
        if form is not _NOT_AN_SDK_OBJECT:
            return _bad_path(form, path)
    return path, value


def dumps_payload(value: Any, param: str) -> bytes:
    """JSON bytes of a payload; SDK objects become their JSON form, sentinels are omitted.

    Plain JSON values cost exactly one plain ``orjson.dumps``; the conversion
    runs only after orjson refused the value. Raises
    :class:`InvalidPayloadError` naming ``param`` and the path of the offending
    part (``request: expected a JSON-serializable value at
    request.content.messages[3], got set``).
    """
    try:
        return _dumps(value)
    except TypeError:
        pass  # not plain JSON: SDK objects, sentinels, or a caller error
    try:
        return _dumps(value, default=_default)
    except TypeError as exc:
        if isinstance(exc.__cause__, _SentinelFound):
            try:
                return orjson.dumps(_plain(value))
            except TypeError:
                pass
        path, bad = _bad_path(value, param)
        where = "" if path == param else f" at {path}"
        raise InvalidPayloadError(
            f"{param}: expected a JSON-serializable value{where}, got {type(bad).__name__} ({exc})"
        ) from None


def snapshot(value: Any, param: str) -> bytes | None:
    """Serialize ``value`` to JSON bytes, or return ``None`` for ``None``.

    The bytes are the snapshot: later mutation of ``value`` cannot change what
    is recorded. SDK objects are recorded as their JSON form (see
    :func:`dumps_payload`). Raises :class:`InvalidPayloadError` naming
    ``param`` and the path of the offending part (``param.key[2]``) when the
    value is not JSON (non-string keys, sets, arbitrary objects, ...).
    """
    if value is None:
        return None
    try:  # plain JSON: one orjson call, not even the default= argument (hot: every end)
        return _dumps(value)
    except TypeError:
        return dumps_payload(value, param)


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
