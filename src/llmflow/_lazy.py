"""Attributes of a package imported on first use (PEP 562 module ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import FunctionType
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(
    package: str,
    namespace: dict[str, Any],
    attributes: Mapping[str, str],
    *,
    public: bool = False,
) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` that imports ``attributes[name]`` on first use.

    Each value is a module path (relative to ``package`` when it starts with a
    dot); the attribute is that module's ``name``, or the module itself when it
    is the submodule ``package.name``. The value is then cached in
    ``namespace`` (the package's globals), so the hook runs once per name. An
    unknown name raises ``AttributeError`` as a missing attribute does. With
    ``public``, a class or function loaded this way reports ``package`` as its
    ``__module__`` (reprs, tracebacks and pickles show the public path).
    """

    def __getattr__(name: str) -> Any:
        path = attributes.get(name)
        if path is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(path, package)
        value = module if module.__name__ == f"{package}.{name}" else getattr(module, name)
        if public and isinstance(value, (type, FunctionType)):
            value.__module__ = package
        namespace[name] = value
        return value

    return __getattr__
