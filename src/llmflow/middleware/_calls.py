"""The LLM call an intercept runs in, for middleware that records on its end event.

While execution intercepts (and, while they build their iterator, stream
execution intercepts) run, the call's span is the innermost open span of the
context. Metadata added with :func:`llmflow._stream.add_end_metadata` goes on
that call's end event only (the start was already emitted).
"""

from __future__ import annotations

from typing import Any

from llmflow._call import Call
from llmflow._scope import current_span
from llmflow._stream import add_end_metadata as _add

__all__ = ["add_end_metadata", "current_call"]


def current_call() -> Call | None:
    """The LLM call whose intercepts are running in this context, or ``None``."""
    span = current_span()
    if isinstance(span, Call) and span.category == "llm" and not span.ended:
        return span
    return None


def add_end_metadata(call: Call | None, items: dict[str, Any]) -> None:
    """Record ``items`` on ``call``'s end event; nothing without a call or once it ended."""
    if call is not None and not call.ended:
        _add(call, items)
