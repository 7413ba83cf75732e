"""Event sanitizers and metadata injectors: hooks on the publication path.

Both run on the delivery thread, before subscribers and exporters see an event,
and both take the :class:`~llmflow.Event` and return a mapping or ``None``.

* A sanitizer for ``"mark"``, ``"scope_start"`` or ``"scope_end"`` events
  returns replacements for any of ``data``, ``category_profile`` and
  ``metadata`` (``None``: keep the event as is). Any other key, a non-JSON
  value or an exception fails closed: all three fields are cleared and the
  failure is counted.
* A metadata injector returns keys to add to ``metadata``; keys already present
  are never overwritten. An exception skips that injector only (fail open).
"""

from __future__ import annotations

from typing import get_args

from ._errors import InvalidParameterError
from ._runtime import EventHook, Runtime, SanitizerKind, get_runtime

__all__ = [
    "deregister_metadata_injector",
    "deregister_sanitizer",
    "register_metadata_injector",
    "register_sanitizer",
]

_KINDS = get_args(SanitizerKind)


def _check_kind(kind: str) -> SanitizerKind:
    if kind not in _KINDS:
        raise InvalidParameterError(f"kind: expected one of {list(_KINDS)}, got {kind!r}")
    return kind  # type: ignore[return-value]


def register_sanitizer(
    kind: SanitizerKind, name: str, priority: int, fn: EventHook, *, runtime: Runtime | None = None
) -> None:
    """Run ``fn`` on every event of ``kind`` before delivery."""
    (runtime or get_runtime()).sanitizers[_check_kind(kind)].register(name, priority, fn)


def deregister_sanitizer(kind: SanitizerKind, name: str, *, runtime: Runtime | None = None) -> bool:
    """Remove a sanitizer; return whether it was registered."""
    return (runtime or get_runtime()).sanitizers[_check_kind(kind)].deregister(name)


def register_metadata_injector(
    name: str, priority: int, fn: EventHook, *, runtime: Runtime | None = None
) -> None:
    """Run ``fn`` on every event and add the keys it returns to ``metadata``."""
    (runtime or get_runtime()).injectors.register(name, priority, fn)


def deregister_metadata_injector(name: str, *, runtime: Runtime | None = None) -> bool:
    """Remove a metadata injector; return whether it was registered."""
    return (runtime or get_runtime()).injectors.deregister(name)
