"""Which call an execution intercept runs in, and recording what a middleware did.

While execution intercepts and ``func`` run, the call is the innermost span of
the context, so an intercept finds it with :func:`current_call` and records
``retry.attempts`` or ``fallback.model`` on its end event with the runtime's
own ``add_end_metadata`` (the one the HTTP transports use for the status
code). Stream execution intercepts run outside the call span: there
:func:`current_call` is ``None`` and they record marks only.

Recording never breaks the call it describes: a failure to emit a mark or to
add metadata is counted in diagnostics as ``middleware:<name>`` (fail open).
"""

from __future__ import annotations

from llmflow._call import Call
from llmflow._runtime import get_runtime
from llmflow._scope import current_span, mark
from llmflow._stream import add_end_metadata
from llmflow._types import Json, JsonObject

__all__ = ["current_call", "record_end", "record_mark"]


def current_call() -> Call | None:
    """The open LLM or tool call whose execution intercepts are running, or ``None``."""
    span = current_span()
    if isinstance(span, Call) and span.category in ("llm", "tool") and not span.ended:
        return span
    return None


def record_mark(source: str, name: str, data: Json, call: Call | None) -> None:
    """Emit mark ``name`` under ``call`` (else the current scope); failures are counted."""
    try:
        mark(name, data=data, parent=call)
    except Exception as exc:
        _count(source, call, exc)


def record_end(source: str, call: Call | None, metadata: JsonObject) -> None:
    """Add ``metadata`` to the end event of ``call`` (nothing without one or once it ended).

    Failures are counted, never raised.
    """
    if call is None or call.ended:
        return
    try:
        add_end_metadata(call, metadata)
    except Exception as exc:
        _count(source, call, exc)


def _count(source: str, call: Call | None, exc: Exception) -> None:
    runtime = call.runtime if call is not None else get_runtime()
    runtime.count_failure(f"middleware:{source}", exc)
