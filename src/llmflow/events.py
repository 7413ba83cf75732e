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
  One that declares the ``categories``/``phases`` it needs sees only those.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

from ._errors import InvalidParameterError, ParameterTypeError
from ._runtime import (
    PHASES,
    EventHook,
    EventPhase,
    FilteredHook,
    Runtime,
    SanitizerKind,
    get_runtime,
)

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
    name: str,
    priority: int,
    fn: EventHook,
    *,
    categories: Iterable[str] | None = None,
    phases: Iterable[EventPhase] | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Run ``fn`` on events and add the keys it returns to ``metadata``.

    ``categories`` (e.g. ``["llm"]``) and ``phases`` (among ``"start"``,
    ``"end"``, ``"mark"``) restrict it to the events it needs; ``None`` means
    all. Declaring them is also faster: while every injector declares its
    events (and no subscriber or event sanitizer is registered), the other
    events keep the fast path where the caller's thread queues finished lines.
    Raises ``ParameterTypeError``/``InvalidParameterError`` naming a bad filter.
    """
    if categories is not None or phases is not None:
        fn = FilteredHook(fn, _categories(categories), _phases(phases))
    (runtime or get_runtime()).injectors.register(name, priority, fn)


def _categories(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = _strings(value, "categories")
    if not all(items):
        raise InvalidParameterError(f"categories: expected non-empty strings, got {value!r}")
    return frozenset(items)


def _phases(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    items = frozenset(_strings(value, "phases"))
    if not items <= PHASES:
        raise InvalidParameterError(
            f"phases: expected some of {sorted(PHASES)}, got {sorted(items - PHASES)}"
        )
    return items


def _strings(value: object, param: str) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ParameterTypeError(
            f"{param}: expected an iterable of str (e.g. a list), got {type(value).__name__}"
        )
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise ParameterTypeError(f"{param}: expected an iterable of str, got {items!r}")
    return items


def deregister_metadata_injector(name: str, *, runtime: Runtime | None = None) -> bool:
    """Remove a metadata injector; return whether it was registered."""
    return (runtime or get_runtime()).injectors.deregister(name)
