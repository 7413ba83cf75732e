"""Registration helpers behind ``llmflow.guardrails`` and ``llmflow.intercepts``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._pipeline import family_registry
from ._runtime import get_runtime
from ._scope import Span

__all__ = ["deregister", "register"]


def register(
    family: str, name: str, priority: int, fn: Callable[..., Any], scope: Span | None
) -> None:
    """Add ``fn`` to ``family`` globally, or on ``scope`` (gone when it closes)."""
    family_registry(get_runtime(), family, scope).register(name, priority, fn)


def deregister(family: str, name: str, scope: Span | None) -> bool:
    """Remove ``name`` from ``family`` (globally, or from ``scope``); return whether it existed."""
    if scope is not None and (scope.local is None or family not in scope.local):
        return False
    return family_registry(get_runtime(), family, scope).deregister(name)
