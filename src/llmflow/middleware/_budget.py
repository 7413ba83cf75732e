"""``Budget``: a spending limit in dollars and/or tokens, for a scope or globally."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

from llmflow import guardrails, intercepts
from llmflow._runtime import get_runtime
from llmflow._scope import Span
from llmflow._types import Json, LlmRequest
from llmflow.middleware._cost import price
from llmflow.middleware._prices import PriceTable
from llmflow.middleware._recording import current_call
from llmflow.middleware._shapes import (
    BUILT_IN,
    StreamTap,
    carries_usage,
    codec_for_chunk,
    codec_for_response,
    tap,
)

__all__ = ["Budget"]

LAST = 1_000_000
"""Default priority of the budget guardrail: after the others."""
OUTERMOST = -1_000_000
"""Default priority of the budget intercepts: around every other intercept."""
_OUTPUT_LIMIT_KEYS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


@dataclass(slots=True)
class _Reservation:
    usd: float
    tokens: int
    settled: bool = False


def _limit(value: object, param: str, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{param}: expected a positive number or None, got {type(value).__name__}")
    if kind is int and not isinstance(value, int):
        raise TypeError(f"{param}: expected a positive int or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{param}: expected a positive finite number, got {value!r}")
    return value


class Budget:
    """Reject LLM calls once ``max_cost_usd`` dollars or ``max_tokens`` tokens are spent.

    One registration adds three entries named ``name``: a conditional guardrail
    that *reserves* each call's worst case before it runs (or rejects it), and
    execution / stream execution intercepts that *settle* the reservation with
    the call's actual usage (streams once they end). Concurrent calls therefore
    cannot overspend together: a call is admitted only if everything spent plus
    everything reserved plus its own reservation fits.

    A reservation assumes at most one input token per byte of the request body
    and at most the request's output limit (``max_tokens`` /
    ``max_completion_tokens`` / ``max_output_tokens``, else
    ``default_output_tokens``). The spend exceeds the limit only by what
    in-flight calls use beyond their reservation, which is nothing when requests
    carry an output limit. A failed call releases its reservation; a stream
    closed early, or a response whose usage cannot be read, is charged its full
    reservation. A model without a known price adds tokens but no dollars (and
    is counted in diagnostics as ``budget:unknown_price``).

    Rejections are guardrail rejections (``GuardrailRejected``, a
    ``llmflow.guardrail_rejected`` mark) whose reason states the spend.
    Raises ``TypeError``/``ValueError`` for missing, zero or negative limits.
    """

    def __init__(
        self,
        *,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        name: str = "llmflow.budget",
        codec: Any | None = None,
        default_output_tokens: int = 4096,
        table: PriceTable | None = None,
    ) -> None:
        self.max_cost_usd: float | None = _limit(max_cost_usd, "max_cost_usd", float)
        self.max_tokens: int | None = _limit(max_tokens, "max_tokens", int)
        if self.max_cost_usd is None and self.max_tokens is None:
            raise ValueError("Budget: give max_cost_usd, max_tokens or both")
        self.default_output_tokens: int = _limit(
            default_output_tokens, "default_output_tokens", int
        )
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        self.name = name
        self.codec = codec
        self._table = table
        self._lock = threading.Lock()
        self._pending: ContextVar[_Reservation | None] = ContextVar(f"budget:{name}", default=None)
        self.spent_usd = 0.0
        """Dollars settled so far."""
        self.spent_tokens = 0
        """Tokens (input + output) settled so far."""
        self.reserved_usd = 0.0
        """Dollars reserved by calls still running."""
        self.reserved_tokens = 0
        """Tokens reserved by calls still running."""
        self.calls = 0
        """Calls that ran and were charged (streams included); failed calls are not."""
        self._scope: Span | None = None

    # -- registration ------------------------------------------------------------------

    def register(self, *, scope: Span | None = None, priority: int | None = None) -> Budget:
        """Register the guardrail and both intercepts, globally or on ``scope``.

        By default the guardrail runs after every other guardrail (nothing is
        reserved for a call another guardrail rejects) and the intercepts are
        outermost (they see the answer of a cache or a replay, which costs
        nothing). ``priority`` puts all three at that priority instead.
        """
        admit = LAST if priority is None else priority
        around = OUTERMOST if priority is None else priority
        guardrails.register_llm_conditional_execution(self.name, admit, self._admit, scope=scope)
        intercepts.register_llm_execution(self.name, around, self._execute, scope=scope)
        intercepts.register_llm_stream_execution(self.name, around, self._stream, scope=scope)
        self._scope = scope
        return self

    def deregister(self) -> bool:
        """Remove the three entries; return whether they were registered."""
        scope = self._scope
        found = guardrails.deregister_llm_conditional_execution(self.name, scope=scope)
        intercepts.deregister_llm_execution(self.name, scope=scope)
        intercepts.deregister_llm_stream_execution(self.name, scope=scope)
        return found

    # -- accounting --------------------------------------------------------------------

    def _state(self) -> str:
        parts = []
        if self.max_cost_usd is not None:
            parts.append(
                f"${self.spent_usd:.6f} spent and ${self.reserved_usd:.6f} reserved "
                f"of ${self.max_cost_usd:.6f}"
            )
        if self.max_tokens is not None:
            parts.append(
                f"{self.spent_tokens} tokens spent and {self.reserved_tokens} reserved "
                f"of {self.max_tokens}"
            )
        return "; ".join(parts)

    def _estimate(self, request: LlmRequest) -> _Reservation:
        body = request.content if isinstance(request.content, dict) else {}
        input_tokens = len(orjson.dumps(body))
        output_tokens = self.default_output_tokens
        for key in _OUTPUT_LIMIT_KEYS:
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                output_tokens = value
                break
        usd = 0.0
        model = body.get("model")
        if self.max_cost_usd is not None and isinstance(model, str) and model:
            cost = price(
                model,
                {"input_tokens": input_tokens, "output_tokens": output_tokens},
                table=self._table,
            )
            usd = 0.0 if cost is None else cost.usd
        return _Reservation(usd, input_tokens + output_tokens)

    def _admit(self, request: LlmRequest) -> str | None:
        stale = self._pending.get()
        if stale is not None:  # admitted, then never executed (a later guardrail rejected)
            self._settle(stale, 0.0, 0, ran=False)
        estimate = self._estimate(request)
        with self._lock:
            over_cost = self.max_cost_usd is not None and (
                self.spent_usd >= self.max_cost_usd
                or self.spent_usd + self.reserved_usd + estimate.usd > self.max_cost_usd
            )
            over_tokens = self.max_tokens is not None and (
                self.spent_tokens >= self.max_tokens
                or self.spent_tokens + self.reserved_tokens + estimate.tokens > self.max_tokens
            )
            if over_cost or over_tokens:
                spent = (self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd) or (
                    self.max_tokens is not None and self.spent_tokens >= self.max_tokens
                )
                head = (
                    "budget spent"
                    if spent
                    else (
                        f"budget cannot cover this call (up to ${estimate.usd:.6f}, "
                        f"{estimate.tokens} tokens)"
                    )
                )
                return f"{head}: {self._state()}"
            self.reserved_usd += estimate.usd
            self.reserved_tokens += estimate.tokens
        self._pending.set(estimate)
        return None

    def _take(self) -> _Reservation:
        reservation = self._pending.get()
        self._pending.set(None)
        return reservation if reservation is not None else _Reservation(0.0, 0)

    def _settle(
        self, reservation: _Reservation, usd: float, tokens: int, *, ran: bool = True
    ) -> None:
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            self.reserved_usd = max(0.0, self.reserved_usd - reservation.usd)
            self.reserved_tokens = max(0, self.reserved_tokens - reservation.tokens)
            self.spent_usd += usd
            self.spent_tokens += tokens
            if ran:
                self.calls += 1

    def _settle_response(
        self, reservation: _Reservation, response: Json, codec: Any | None, model: Any
    ) -> None:
        usage: Any = None
        if codec is not None:
            try:
                annotated = codec.annotate_response(response)
            except Exception:  # unreadable usage: charged the reservation below
                annotated = None
            if isinstance(annotated, dict):
                usage = annotated.get("usage")
                model = annotated.get("model") or model
        if not isinstance(usage, dict) or (
            usage.get("input_tokens") is None and usage.get("output_tokens") is None
        ):
            get_runtime().count_failure(
                f"budget:{self.name}",
                LookupError("cannot read the usage of a response; charged its reservation"),
            )
            self._settle(reservation, reservation.usd, reservation.tokens)
            return
        tokens = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
        usd = 0.0
        if self.max_cost_usd is not None:
            cost = None
            if isinstance(model, str) and model:
                cost = price(model, usage, table=self._table)
            if cost is None:
                get_runtime().count_failure(
                    "budget:unknown_price", LookupError(f"no price for model {model!r}")
                )
            else:
                usd = cost.usd
        self._settle(reservation, usd, tokens)

    # -- the intercepts ----------------------------------------------------------------

    def _charge(self, reservation: _Reservation, call: Any, response: Json, model: Any) -> None:
        if _answered_for_free(call):
            self._settle(reservation, 0.0, 0)
        else:
            codec = self.codec or codec_for_response(response)
            self._settle_response(reservation, response, codec, model)

    def _execute(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        reservation = self._take()
        call = current_call()
        model = request.content.get("model") if isinstance(request.content, dict) else None
        try:
            result = next_(request)
        except BaseException:
            self._settle(reservation, 0.0, 0, ran=False)
            raise
        if inspect.isawaitable(result):
            return self._settle_later(reservation, call, result, model)
        self._charge(reservation, call, result, model)
        return result

    async def _settle_later(
        self, reservation: _Reservation, call: Any, pending: Awaitable[Any], model: Any
    ) -> Any:
        try:
            result = await pending
        except BaseException:
            self._settle(reservation, 0.0, 0, ran=False)
            raise
        self._charge(reservation, call, result, model)
        return result

    def _stream(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        reservation = self._take()
        call = current_call()
        model = request.content.get("model") if isinstance(request.content, dict) else None
        try:
            source = next_(request)
        except BaseException:
            self._settle(reservation, 0.0, 0, ran=False)
            raise
        if _answered_for_free(call):
            self._settle(reservation, 0.0, 0)
            return source
        return tap(source, _Meter(self, reservation, model))


def _answered_for_free(call: Any) -> bool:
    """Whether an inner intercept answered ``call`` without the provider (cache, replay)."""
    metadata = getattr(call, "metadata", None) or {}
    return metadata.get("cache.hit") is True or "replay.source" in metadata


class _Meter(StreamTap):
    """Folds a stream as it passes, then settles the reservation with its usage."""

    def __init__(self, budget: Budget, reservation: _Reservation, model: Any) -> None:
        self.budget = budget
        self.reservation = reservation
        self.model = model
        self.codec = budget.codec
        self.detect = budget.codec is None
        self.accumulator = None if budget.codec is None else budget.codec.stream_accumulator()
        self.built_in = budget.codec is None or budget.codec.data_schema.name in BUILT_IN
        self.first = True

    def chunk(self, chunk: Json) -> None:
        first, self.first = self.first, False
        if self.detect:
            self.detect = False
            self.codec = codec_for_chunk(chunk)
            self.accumulator = None if self.codec is None else self.codec.stream_accumulator()
        if self.accumulator is None or (self.built_in and not carries_usage(chunk, first)):
            return  # a built-in stream's text is not needed to know its usage
        try:
            self.accumulator.collect(chunk)
        except Exception:  # metering never breaks the stream: charged its reservation
            self.accumulator = None

    def done(self) -> None:
        folded: Json = None
        if self.accumulator is not None:
            try:
                folded = self.accumulator.finalize()
            except Exception:
                folded = None
        self.budget._settle_response(self.reservation, folded, self.codec, self.model)

    def failed(self, error: BaseException) -> None:
        self.budget._settle(self.reservation, 0.0, 0, ran=False)

    def closed(self) -> None:
        self.budget._settle(self.reservation, self.reservation.usd, self.reservation.tokens)
