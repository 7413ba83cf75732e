"""``CircuitBreaker``: stop calling a provider that keeps failing, per key."""

from __future__ import annotations

import asyncio
import inspect
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from llmflow._call import Call
from llmflow._errors import FlowError
from llmflow._types import Json, LlmRequest
from llmflow.middleware._recording import current_call, record_mark
from llmflow.middleware._retry import classify
from llmflow.middleware._streams import before_first_chunk

__all__ = ["CircuitBreaker", "CircuitOpenError", "State", "default_key"]

State = Literal["closed", "open", "half_open"]
_CLOSED: Final = "closed"
_OPEN: Final = "open"
_HALF_OPEN: Final = "half_open"


class CircuitOpenError(FlowError):
    """The circuit of ``key`` is open: the call failed fast, the provider was not called.

    ``retry_in`` is the number of seconds until the circuit lets a probe call
    through (``0.0`` when it is half-open and its probe slots are taken).
    """

    def __init__(self, key: str, retry_in: float) -> None:
        self.key = key
        self.retry_in = retry_in
        super().__init__(
            f"circuit {key!r} is open after repeated failures; the provider was not called "
            f"(next probe in {retry_in:.3g} s)"
        )


def default_key(request: object, call: Call | None) -> str:
    """``provider/model`` of an LLM request, or the call name (tool calls).

    The provider is the call's ``provider.name`` metadata (set by the HTTP
    transports), else ``anthropic`` when the request carries an
    ``anthropic-version`` header, else the call name.
    """
    name = "call" if call is None else call.name
    if not isinstance(request, LlmRequest):
        return name
    provider = None
    metadata = getattr(call, "metadata", None)
    if isinstance(metadata, dict):
        provider = metadata.get("provider.name")
    if not isinstance(provider, str):
        headers = {str(k).lower() for k in request.headers}
        provider = "anthropic" if "anthropic-version" in headers else name
    model = request.content.get("model")
    return f"{provider}/{model}" if isinstance(model, str) else provider


class _Circuit:
    __slots__ = ("failures", "opened_at", "probes", "state")

    def __init__(self) -> None:
        self.state: State = _CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probes = 0


_Transition = tuple[str, str, str, int]  # key, from, to, failures


class CircuitBreaker:
    """Closed → open after ``failure_threshold`` consecutive failures of a key; open fails fast.

    Register the instance with ``intercepts.register_llm_execution`` (and
    :attr:`stream` with ``register_llm_stream_execution``; tool execution works
    too, keyed by tool name). After ``recovery_time`` seconds an open circuit
    turns half-open and lets ``half_open_max_calls`` probe calls through: a
    success closes it, a failure opens it again. While open, a call raises
    :class:`CircuitOpenError` without calling the provider (the llm end event
    records it). A failure is an exception ``is_failure`` accepts (default:
    the retryable failures of :func:`llmflow.middleware.retry`: 429, 5xx,
    connection errors, timeouts); other exceptions leave the state as it is.
    Every transition is an ``llmflow.circuit`` mark (``key``, ``from``,
    ``to``, ``failures``). State is guarded by a lock: one breaker serves
    asyncio tasks and threads alike, and the lock is never held across an
    ``await``.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_time: float = 30.0,
        *,
        key: Callable[[Any, Call | None], str] = default_key,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        _check_count(failure_threshold, "failure_threshold")
        _check_count(half_open_max_calls, "half_open_max_calls")
        if isinstance(recovery_time, bool) or not isinstance(recovery_time, (int, float)):
            raise TypeError(f"recovery_time: expected a number of seconds, got {recovery_time!r}")
        if not math.isfinite(recovery_time) or recovery_time <= 0:
            raise ValueError(
                f"recovery_time: expected a finite number of seconds > 0, got {recovery_time!r}"
            )
        for param, fn in (("key", key), ("clock", clock)):
            if not callable(fn):
                raise TypeError(f"{param}: expected a callable, got {type(fn).__name__}")
        if is_failure is not None and not callable(is_failure):
            raise TypeError(f"is_failure: expected a callable, got {type(is_failure).__name__}")
        self.failure_threshold = failure_threshold
        self.recovery_time = float(recovery_time)
        self.half_open_max_calls = half_open_max_calls
        self._key = key
        self._is_failure = is_failure or (lambda exc: classify(exc) is not None)
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold}, "
            f"recovery_time={self.recovery_time})"
        )

    def state(self, key: str) -> State:
        """The state of ``key`` now (an open circuit past ``recovery_time`` reads half-open)."""
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None:
                return _CLOSED
            if circuit.state == _OPEN and self._clock() - circuit.opened_at >= self.recovery_time:
                return _HALF_OPEN
            return circuit.state

    # -- the three moments of a call ------------------------------------------------

    def _admit(self, key: str, call: Call | None) -> None:
        """Let a call through or raise :class:`CircuitOpenError`."""
        transition: _Transition | None = None
        error: CircuitOpenError | None = None
        with self._lock:
            circuit = self._circuits.get(key)
            if circuit is None:
                circuit = self._circuits[key] = _Circuit()
            if circuit.state == _OPEN:
                waited = self._clock() - circuit.opened_at
                if waited < self.recovery_time:
                    error = CircuitOpenError(key, self.recovery_time - waited)
                else:
                    circuit.state = _HALF_OPEN
                    circuit.probes = 0
                    transition = (key, _OPEN, _HALF_OPEN, circuit.failures)
            if error is None and circuit.state == _HALF_OPEN:
                if circuit.probes >= self.half_open_max_calls:
                    error = CircuitOpenError(key, 0.0)
                else:
                    circuit.probes += 1
        _record(transition, call)
        if error is not None:
            raise error

    def _settle(self, key: str, call: Call | None, error: BaseException | None) -> None:
        """Record the outcome of an admitted call."""
        failed = error is not None and isinstance(error, Exception) and self._is_failure(error)
        neutral = error is not None and not failed
        transition: _Transition | None = None
        with self._lock:
            circuit = self._circuits[key]
            half_open = circuit.state == _HALF_OPEN
            if half_open:
                circuit.probes = max(0, circuit.probes - 1)
            if neutral:
                pass
            elif not failed:
                circuit.failures = 0
                if half_open:
                    circuit.state = _CLOSED
                    transition = (key, _HALF_OPEN, _CLOSED, 0)
            else:
                circuit.failures += 1
                if half_open or (
                    circuit.state == _CLOSED and circuit.failures >= self.failure_threshold
                ):
                    transition = (key, circuit.state, _OPEN, circuit.failures)
                    circuit.state = _OPEN
                    circuit.opened_at = self._clock()
        _record(transition, call)

    # -- intercepts -----------------------------------------------------------------

    def __call__(self, request: Any, call_next: Callable[..., Any]) -> Any:
        call = current_call()
        key = self._key(request, call)
        self._admit(key, call)
        try:
            result = call_next()
        except BaseException as exc:
            self._settle(key, call, exc)
            raise
        if inspect.isawaitable(result):
            return self._settle_async(key, call, result)
        self._settle(key, call, None)
        return result

    async def _settle_async(self, key: str, call: Call | None, awaitable: Any) -> Any:
        try:
            result = await awaitable
        except BaseException as exc:
            self._settle(key, call, exc)
            raise
        self._settle(key, call, None)
        return result

    def stream(self, request: LlmRequest, call_next: Callable[..., Any]) -> Any:
        """Stream intercept: the outcome is the first chunk (success) or the error before it.

        Serves the async and the ``_sync`` stream entry points alike; a stream
        closed before its first chunk says nothing about the provider.
        """
        key = self._key(request, None)
        self._admit(key, None)

        def outcome(error: BaseException | None) -> None:
            self._settle(key, None, error)

        return before_first_chunk(call_next, _fail, outcome, time.sleep, asyncio.sleep)


def _fail(exc: BaseException) -> None:
    return None


def _record(transition: _Transition | None, call: Call | None) -> None:
    if transition is not None:
        key, before, after, failures = transition
        data: Json = {"key": key, "from": before, "to": after, "failures": failures}
        record_mark("circuit_breaker", "llmflow.circuit", data, call)


def _check_count(value: object, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{param}: expected an int >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{param}: expected an int >= 1, got {value!r}")
