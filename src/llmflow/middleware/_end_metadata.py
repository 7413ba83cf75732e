"""Which call an execution intercept is running in, and adding facts to its end event.

While execution intercepts and ``func`` run, the call is the innermost span of
the context, so an intercept finds it with :func:`current_call` and records
``retry.attempts`` or ``fallback.model`` on its end event with the runtime's
own :func:`llmflow._stream.add_end_metadata` (the one the HTTP transports use
for the status code). Stream execution intercepts run outside the call span:
there :func:`current_call` is ``None`` and they record marks only.
"""

from __future__ import annotations

from llmflow._pipeline import Call
from llmflow._scope import current_span
from llmflow._stream import add_end_metadata

__all__ = ["add_end_metadata", "current_call"]


def current_call() -> Call | None:
    """The open LLM or tool call whose execution intercepts are running, or ``None``."""
    span = current_span()
    if isinstance(span, Call) and span.category in ("llm", "tool") and not span.ended:
        return span
    return None
