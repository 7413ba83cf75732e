"""Carrying the caller's scope into worker threads.

A thread starts with an empty ``contextvars`` context, so calls made in a
``ThreadPoolExecutor`` worker would have no parent. :func:`propagate` captures
the caller's context (the scope stack lives in a ``ContextVar``) and runs the
function in a copy of it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from ._errors import ParameterTypeError

__all__ = ["propagate"]

P = ParamSpec("P")
R = TypeVar("R")


def propagate(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap ``fn`` to run in a copy of the context current *now* (the caller's scope).

    ``pool.submit(llmflow.propagate(work), arg)``: calls, scopes and marks in
    ``work`` get the caller's innermost open scope as parent, as if ``work``
    ran inline. The context is captured when ``propagate`` is called, and each
    call of the wrapper runs in its own copy of it, so the wrapper may run in
    many threads at once (``pool.map``) and nothing ``fn`` pushes leaks back
    to the caller or into another call. ``fn`` must be callable
    (:class:`~llmflow.ParameterTypeError` otherwise). Other context
    variables travel too; the wrapper never copies anything else.
    """
    if not callable(fn):
        raise ParameterTypeError(f"fn: expected a callable, got {type(fn).__name__}")
    captured = contextvars.copy_context()

    @functools.wraps(fn)
    def in_callers_context(*args: P.args, **kwargs: P.kwargs) -> R:
        # A Context can be entered by one thread at a time: each call gets its own copy.
        return captured.copy().run(fn, *args, **kwargs)

    return in_callers_context
