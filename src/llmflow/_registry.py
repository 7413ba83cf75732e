"""Named, prioritized registries: the storage behind every middleware family.

A registry maps a unique name to ``(priority, callable)``. Iteration order is
ascending priority, ties broken by name. The ordered snapshot is cached, so a
pipeline reads a tuple and never sorts on the hot path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from ._errors import DuplicateRegistrationError, ParameterTypeError

__all__ = ["Entry", "Registry"]

F = TypeVar("F", bound=Callable[..., object])


class Entry(Generic[F]):
    """One registered callable."""

    __slots__ = ("fn", "name", "priority")

    def __init__(self, name: str, priority: int, fn: F) -> None:
        self.name = name
        self.priority = priority
        self.fn = fn

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.priority}, {self.fn!r})"


class Registry(Generic[F]):
    """A thread-safe set of uniquely named entries ordered by ``(priority, name)``.

    ``on_change`` is called after every change (register, deregister, clear).
    """

    __slots__ = ("_entries", "_lock", "_on_change", "entries", "kind")

    def __init__(self, kind: str, on_change: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}
        self.entries: tuple[Entry[F], ...] = ()
        """The entries in call order: an immutable snapshot, replaced on every change."""
        self._lock = threading.Lock()
        self._on_change = on_change

    def register(self, name: str, priority: int, fn: F) -> None:
        """Add ``fn`` under ``name``; a name already present raises.

        Raises :class:`ParameterTypeError` for a non-string name, a non-int priority or a
        non-callable ``fn``, and :class:`DuplicateRegistrationError` for a
        duplicate name.
        """
        if not isinstance(name, str) or not name:
            raise ParameterTypeError(f"name: expected a non-empty str, got {name!r}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise ParameterTypeError(f"priority: expected an int, got {type(priority).__name__}")
        if not callable(fn):
            raise ParameterTypeError(f"fn: expected a callable, got {type(fn).__name__}")
        with self._lock:
            if name in self._entries:
                raise DuplicateRegistrationError(
                    f"name: {self.kind} {name!r} is already registered; "
                    f"deregister it first or choose another name"
                )
            self._entries[name] = Entry(name, priority, fn)
            self._reorder()

    def deregister(self, name: str) -> bool:
        """Remove ``name``; return whether it was registered."""
        with self._lock:
            if self._entries.pop(name, None) is None:
                return False
            self._reorder()
            return True

    def _reorder(self) -> None:
        self.entries = tuple(sorted(self._entries.values(), key=lambda e: (e.priority, e.name)))
        if self._on_change is not None:
            self._on_change()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._entries.clear()
            self._reorder()
