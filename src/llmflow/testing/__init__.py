"""Test helpers: capture the events of a block, and a loopback provider server.

::

    with llmflow.testing.capture() as events:
        run_my_agent()
    assert [e.name for e in events] == [...]

    with llmflow.testing.FakeProvider() as provider:
        client = openai.OpenAI(base_url=provider.base_url + "/v1", api_key="sk-test")
        provider.script(Reply(text="hello"))

``FakeProvider`` and its reply types are imported on first use, so
``import llmflow`` does not pay for ``http.server``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmflow.testing._capture import capture

if TYPE_CHECKING:
    from llmflow.testing._fake_provider import (
        Drop,
        ErrorReply,
        FakeProvider,
        RawReply,
        RecordedRequest,
        Reply,
        ToolCall,
    )

__all__ = [
    "Drop",
    "ErrorReply",
    "FakeProvider",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "capture",
]

_LAZY = frozenset(__all__) - {"capture"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from llmflow.testing import _fake_provider

        return getattr(_fake_provider, name)
    raise AttributeError(f"module 'llmflow.testing' has no attribute {name!r}")
