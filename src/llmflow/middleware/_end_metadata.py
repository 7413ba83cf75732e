"""End metadata from execution intercepts: ``retry.attempts``, ``fallback.model``.

The §5 pipeline gives an execution intercept ``(request, next)`` and nothing
that reaches the call's end event. The current span while an intercept runs is
the call itself (:func:`llmflow.current_scope`), so an intercept can name the
call by its uuid; :func:`add_end_metadata` parks the keys under that uuid and a
metadata injector (the public §5 hook that adds keys to events) puts them on
the call's end event when it is delivered. The injector is installed on a
runtime the first time something is parked for it, so a runtime that never
uses these intercepts keeps its fast path.

Never raises into the call: a value that is not JSON is counted by the
runtime as a failure of the injector (fail open) and the keys are skipped.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
from typing import Final

from llmflow import events
from llmflow._errors import DuplicateRegistrationError
from llmflow._event import Event
from llmflow._runtime import Runtime
from llmflow._scope import Span
from llmflow._types import Json

__all__ = ["INJECTOR_NAME", "add_end_metadata", "current_call"]

INJECTOR_NAME: Final = "llmflow.middleware.end_metadata"
# A parked entry whose end event never reaches the injector (a dropped event, a
# runtime shut down mid-call) must not accumulate: the oldest are evicted.
_MAX_PENDING: Final = 65_536

_pending: OrderedDict[str, dict[str, Json]] = OrderedDict()
_lock = threading.Lock()
_installed: weakref.WeakSet[Runtime] = weakref.WeakSet()


def current_call() -> Span | None:
    """The LLM or tool call whose execution intercepts are running, or ``None``.

    While execution intercepts and ``func`` run, the call is the innermost
    span of the context; elsewhere (stream intercepts, plain code) the
    innermost span is not a call and ``None`` is returned.
    """
    from llmflow._scope import current_span

    span = current_span()
    if span is None or span.category not in ("llm", "tool") or span.ended:
        return None
    return span


def add_end_metadata(call: Span, values: dict[str, Json]) -> None:
    """Add ``values`` to the end event of ``call`` (keys already present are kept)."""
    runtime = call.runtime
    if runtime not in _installed:
        _install(runtime)
    with _lock:
        entry = _pending.get(call.uuid)
        if entry is None:
            if len(_pending) >= _MAX_PENDING:
                _pending.popitem(last=False)
            _pending[call.uuid] = dict(values)
        else:
            entry.update(values)


def _install(runtime: Runtime) -> None:
    with _lock:
        if runtime in _installed:
            return
        _installed.add(runtime)
    with contextlib.suppress(DuplicateRegistrationError):  # a reloaded module installed it
        events.register_metadata_injector(INJECTOR_NAME, 0, _inject, runtime=runtime)


def _inject(event: Event) -> dict[str, Json] | None:
    if event.scope_category != "end" or not _pending:
        return None
    with _lock:
        return _pending.pop(event.uuid, None)
