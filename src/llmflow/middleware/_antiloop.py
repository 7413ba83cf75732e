"""``AntiLoop``: reject the N-th identical LLM request or tool call within a scope."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import orjson

from llmflow import guardrails
from llmflow._scope import current_span
from llmflow._types import LlmRequest

__all__ = ["AntiLoop"]

_GLOBAL: Final = ""  # the bucket of calls made outside any scope


def _canonical(value: Any) -> bytes:
    # Sorted keys: two dicts that differ only in key order are the same request.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


class AntiLoop:
    """A conditional-execution guardrail: the ``max_repeats``-th identical call is rejected.

    ``max_repeats=3`` lets two identical calls through and rejects the third
    (and every later one) with a reason that carries the count; identical
    means the same identity within the same scope (the innermost open scope
    when the call is made, so each agent run counts on its own). The identity
    of an LLM request is its body (headers are ignored), normalized by
    ``codec`` when one is given (so key order, defaults the codec fills in and
    the SDK's representation do not matter; a body the codec cannot decode
    falls back to canonical JSON); of a tool call, its canonical JSON
    arguments. ``key(request)`` replaces the identity altogether (e.g. to add a
    tool name: the §5 guardrail signature does not pass it). Counts are kept
    for the ``max_scopes`` most recently used scopes.

    Register it with :meth:`register` (both LLM and tool families), or pass the
    instance to ``guardrails.register_llm_conditional_execution`` /
    ``register_tool_conditional_execution`` yourself.
    """

    def __init__(
        self,
        max_repeats: int = 3,
        *,
        codec: Any = None,
        key: Callable[[Any], object] | None = None,
        max_scopes: int = 1024,
    ) -> None:
        for param, value, low in (("max_repeats", max_repeats, 2), ("max_scopes", max_scopes, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{param}: expected an int >= {low}, got {value!r}")
            if value < low:
                raise ValueError(f"{param}: expected an int >= {low}, got {value!r}")
        if codec is not None and not callable(getattr(codec, "decode", None)):
            raise TypeError(f"codec: expected a request codec with decode(), got {codec!r}")
        if key is not None and not callable(key):
            raise TypeError(f"key: expected a callable, got {type(key).__name__}")
        self.max_repeats = max_repeats
        self.codec = codec
        self._key = key
        self._max_scopes = max_scopes
        self._counts: OrderedDict[str, dict[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AntiLoop(max_repeats={self.max_repeats})"

    def identity(self, request: Any) -> bytes:
        """The digest two calls share when they count as identical."""
        is_llm = isinstance(request, LlmRequest)
        if self._key is not None:
            raw = _canonical(self._key(request))
        elif is_llm:
            raw = self._llm_identity(request)
        else:
            raw = _canonical(request)
        # LLM requests and tool arguments never count as each other
        return hashlib.blake2b((b"llm:" if is_llm else b"tool:") + raw, digest_size=16).digest()

    def _llm_identity(self, request: LlmRequest) -> bytes:
        if self.codec is not None:
            try:
                annotated = self.codec.decode(request)
                return _canonical(annotated.model_dump(mode="json", exclude_none=True))
            except Exception:
                pass  # not this codec's shape: the raw body still identifies the call
        return _canonical(request.content)

    def __call__(self, request: Any) -> str | None:
        span = current_span()  # the guardrail's own scope; its parent is the caller's scope
        scope_id = _GLOBAL if span is None or span.parent_uuid is None else span.parent_uuid
        digest = self.identity(request)
        with self._lock:
            counts = self._counts.get(scope_id)
            if counts is None:
                if len(self._counts) >= self._max_scopes:
                    self._counts.popitem(last=False)
                counts = self._counts[scope_id] = {}
            else:
                self._counts.move_to_end(scope_id)
            seen = counts.get(digest, 0) + 1
            counts[digest] = seen
        if seen < self.max_repeats:
            return None
        kind = "LLM request" if isinstance(request, LlmRequest) else "tool call"
        return (
            f"identical {kind} made {seen} times in this scope "
            f"(max_repeats={self.max_repeats}): the agent looks stuck in a loop"
        )

    def register(
        self, name: str = "llmflow.antiloop", priority: int = 0, *, scope: Any = None
    ) -> None:
        """Register as the LLM and the tool conditional-execution guardrail ``name``."""
        guardrails.register_llm_conditional_execution(name, priority, self, scope=scope)
        try:
            guardrails.register_tool_conditional_execution(name, priority, self, scope=scope)
        except BaseException:
            guardrails.deregister_llm_conditional_execution(name, scope=scope)
            raise

    def deregister(self, name: str = "llmflow.antiloop", *, scope: Any = None) -> bool:
        """Remove both registrations; return whether any existed."""
        llm = guardrails.deregister_llm_conditional_execution(name, scope=scope)
        tool = guardrails.deregister_tool_conditional_execution(name, scope=scope)
        return llm or tool
