"""``fallback(models)``: answer with the next model when one fails."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterable
from typing import Any

from llmflow._call import Call
from llmflow._types import Json, LlmRequest
from llmflow.middleware._breaker import CircuitOpenError
from llmflow.middleware._recording import current_call, record_end, record_mark
from llmflow.middleware._retry import classify
from llmflow.middleware._streams import before_first_chunk

__all__ = ["Fallback", "fallback", "with_model"]


def with_model(request: LlmRequest, model: str) -> LlmRequest:
    """``request`` with its body's ``model`` replaced (OpenAI and Anthropic bodies alike)."""
    if not isinstance(request, LlmRequest):
        raise TypeError(
            f"request: fallback rewrites LlmRequest bodies, got {type(request).__name__}; "
            f"pass rewrite= for other shapes"
        )
    return LlmRequest(request.headers, {**request.content, "model": model})


def _fallback_reason(exc: BaseException) -> str | None:
    if isinstance(exc, CircuitOpenError):
        return "circuit open"
    return classify(exc)


class _Models:
    """Which model a call is on and what to try next."""

    __slots__ = ("call", "current", "index", "owner")

    def __init__(self, owner: Fallback, request: Any, call: Call | None) -> None:
        self.owner = owner
        self.call = call
        self.index = 0
        content = getattr(request, "content", None)
        model = content.get("model") if isinstance(content, dict) else None
        self.current = model if isinstance(model, str) else None

    def next_request(self, request: Any, exc: BaseException) -> Any:
        """The request for the next model, or ``None`` when this failure is final."""
        reason = _fallback_reason(exc)
        models = self.owner.models
        if reason is None or self.index >= len(models):
            return None
        model = models[self.index]
        self.index += 1
        data: Json = {"from": self.current, "to": model, "reason": reason}
        record_mark("fallback", "llmflow.fallback", data, self.call)
        self.current = model
        return self.owner.rewrite(request, model)

    def answered(self) -> None:
        if self.index and self.current is not None:
            record_end("fallback", self.call, {"fallback.model": self.current})


class Fallback:
    """An execution intercept that re-sends a failed call with the next model of ``models``.

    Only failures :func:`llmflow.middleware.retry` would retry (429, 5xx,
    connection errors, timeouts) and :class:`CircuitOpenError` move on; any
    other exception propagates at once, and the last model's failure
    propagates unchanged. Each switch is an ``llmflow.fallback`` mark
    (``from``, ``to``, ``reason``); when another model answered, the end event
    gets ``fallback.model``. Register it outside :func:`retry` (a lower
    priority number) to retry each model before moving on, inside a
    :class:`CircuitBreaker` keyed by model to skip models whose circuit is
    open.
    """

    __slots__ = ("models", "rewrite")

    def __init__(self, models: tuple[str, ...], rewrite: Callable[[Any, str], Any]) -> None:
        self.models = models
        self.rewrite = rewrite

    def __repr__(self) -> str:
        return f"fallback({list(self.models)!r})"

    def __call__(self, request: Any, call_next: Callable[..., Any]) -> Any:
        state = _Models(self, request, current_call())
        current = request
        while True:
            try:
                result = call_next(current)
            except Exception as exc:
                current = state.next_request(request, exc)
                if current is None:
                    raise
                continue
            if inspect.isawaitable(result):
                return self._continue_async(state, request, result, call_next)
            state.answered()
            return result

    async def _continue_async(
        self, state: _Models, request: Any, pending: Any, call_next: Callable[..., Any]
    ) -> Any:
        while True:
            try:
                result = await pending if inspect.isawaitable(pending) else pending
            except Exception as exc:
                current = state.next_request(request, exc)
                if current is None:
                    raise
                try:
                    pending = call_next(current)
                except Exception as sync_exc:  # a sync func failed at once: same rule
                    pending = _raise(sync_exc)
                continue
            state.answered()
            return result

    def stream(self, request: LlmRequest, call_next: Callable[..., Any]) -> Any:
        """Stream intercept: the next model when a stream fails before its first chunk.

        Serves the async and the ``_sync`` stream entry points alike.
        """
        state = _Models(self, request, None)

        def decide(exc: BaseException) -> tuple[float, Any] | None:
            following = state.next_request(request, exc)
            return None if following is None else (0.0, following)

        return before_first_chunk(call_next, decide, _ignore, time.sleep, asyncio.sleep)


def _ignore(error: BaseException | None) -> None:
    return None


async def _raise(exc: BaseException) -> Any:
    raise exc


def fallback(
    models: Iterable[str],
    *,
    codec: Any = None,
    rewrite: Callable[[Any, str], Any] | None = None,
) -> Fallback:
    """Build a fallback execution intercept trying ``models`` in order after the request's own.

    The request for another model is built by ``rewrite(request, model)`` when
    given, else through ``codec`` (decode, change the annotated model, encode
    back: every other field kept), else by replacing the body's ``model`` key,
    which is where the OpenAI Chat, Responses and Anthropic Messages APIs take
    it. Raises ``ValueError`` naming ``models`` when it is empty or holds
    anything but non-empty strings.
    """
    if isinstance(models, str):
        raise TypeError(f"models: expected a list of model names, got the str {models!r}")
    names = tuple(models)
    if not names:
        raise ValueError("models: expected at least one model name to fall back to, got none")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"models: expected non-empty model names, got {name!r}")
    if rewrite is not None and not callable(rewrite):
        raise TypeError(f"rewrite: expected a callable, got {type(rewrite).__name__}")
    if codec is not None and not all(
        callable(getattr(codec, method, None)) for method in ("decode", "encode")
    ):
        raise TypeError(f"codec: expected a request codec (decode, encode), got {codec!r}")
    if rewrite is None:
        rewrite = with_model if codec is None else _through(codec)
    return Fallback(names, rewrite)


def _through(codec: Any) -> Callable[[Any, str], Any]:
    def rewrite(request: LlmRequest, model: str) -> LlmRequest:
        annotated = codec.decode(request)
        return codec.encode(annotated.model_copy(update={"model": model}), request)  # type: ignore[no-any-return]

    return rewrite
