"""What an intercept may learn about, and add to, the LLM call it runs in.

While execution intercepts (and, while they build their iterator, stream
execution intercepts) run, the call's span is the innermost open span of the
context. Metadata added here goes on that call's end event only (the start was
already emitted), merged under whatever the end itself records.
"""

from __future__ import annotations

from typing import Any

from llmflow._json import check_metadata
from llmflow._pipeline import Call
from llmflow._scope import current_span

__all__ = ["add_end_metadata", "current_call"]


def current_call() -> Call | None:
    """The LLM call whose intercepts are running in this context, or ``None``."""
    span = current_span()
    if isinstance(span, Call) and span.category == "llm" and not span.ended:
        return span
    return None


def add_end_metadata(call: Call | None, items: dict[str, Any]) -> None:
    """Record ``items`` on ``call``'s end event (no-op without a call or once it ended).

    Raises ``InvalidPayloadError`` for keys that are not non-empty strings or
    values that are not JSON.
    """
    if call is None or call.ended:
        return
    merged = {**call.metadata, **items} if call.metadata else dict(items)
    raw = check_metadata(merged, "metadata")
    call.metadata, call.metadata_raw = merged, raw
