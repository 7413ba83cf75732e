"""``retry(...)``: an execution intercept that retries retryable provider failures.

Retryable (the openai SDK's own rules, ``openai/_base_client.py``): HTTP 408,
409, 429 and 5xx, unless the server's ``x-should-retry`` header says otherwise;
connection errors and timeouts. Errors are recognised by duck typing, so the
SDKs are never imported: an exception with an int ``status_code`` and
``headers`` (or ``response.headers``) is an HTTP failure
(``llmflow.http.ProviderHTTPError``, ``openai.APIStatusError``,
``anthropic.APIStatusError``); the SDKs' ``APIConnectionError``/
``APITimeoutError``, httpx/httpx2 transport errors and the builtins
``ConnectionError``/``TimeoutError`` are connection failures.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import math
import random as _random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from llmflow._call import Call
from llmflow._provider_error import header as _header
from llmflow._provider_error import response_headers, status_code
from llmflow._types import Json, LlmRequest
from llmflow.middleware._recording import current_call, record_end, record_mark
from llmflow.middleware._streams import before_first_chunk

__all__ = [
    "Retry",
    "backoff_delay",
    "classify",
    "response_headers",
    "retry",
    "retry_after_seconds",
]

_RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
# Transport failures of the SDKs and their HTTP clients, by class name: the
# module prefix keeps a user's class that happens to share a name out.
_CONNECTION_CLASSES: Final = frozenset(
    {"APIConnectionError", "APITimeoutError", "TimeoutException", "NetworkError",
     "RemoteProtocolError"}
)  # fmt: skip
_CONNECTION_MODULES: Final = frozenset({"openai", "anthropic", "httpx", "httpx2"})


def classify(exc: BaseException) -> str | None:
    """Why ``exc`` is retryable (``"http 429"``, ``"APITimeoutError"``), or ``None``.

    Never raises; an object it cannot read is not retryable.
    """
    status = status_code(exc)
    if status is not None:
        verdict = _header(response_headers(exc), "x-should-retry")
        if verdict == "false":
            return None
        if verdict == "true" or status in _RETRYABLE_STATUS or status >= 500:
            return f"http {status}"
        return None
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return type(exc).__name__
    for cls in type(exc).__mro__:
        if (
            cls.__name__ in _CONNECTION_CLASSES
            and cls.__module__.split(".", 1)[0] in _CONNECTION_MODULES
        ):
            return type(exc).__name__
    return None


def retry_after_seconds(
    headers: Mapping[str, str] | None, wall_clock: Callable[[], float] = time.time
) -> float | None:
    """The server-requested wait: ``retry-after-ms``, else ``Retry-After`` (seconds or HTTP date).

    ``None`` when absent or unreadable; a date in the past is ``0.0``.
    """
    millis = _header(headers, "retry-after-ms")
    if millis is not None:
        try:
            value = float(millis) / 1000
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value
    raw = _header(headers, "retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            return None
        return max(0.0, when.timestamp() - wall_clock())
    return value if math.isfinite(value) and value >= 0 else None


def backoff_delay(
    failures: int, base_delay: float, max_delay: float, jitter: float, retry_after: float | None
) -> float:
    """The wait after the ``failures``-th failed attempt, in ``[0, max_delay]``.

    With ``retry_after`` the server's wait, capped at ``max_delay``; otherwise
    full jitter: ``jitter * min(max_delay, base_delay * 2 ** (failures - 1))``
    with ``jitter`` drawn from ``[0, 1)``.
    """
    if retry_after is not None:
        return min(max_delay, max(0.0, retry_after))
    exponent = min(failures - 1, 64)  # 2**64 * any base is already past every cap
    ceiling = min(max_delay, base_delay * (2.0**exponent))
    return min(max_delay, max(0.0, jitter * ceiling))


def _positive(value: object, param: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{param}: expected a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or math.isinf(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{param}: expected a finite number of seconds {bound}, got {value!r}")
    return float(value)


class _Attempts:
    """The bookkeeping of one call's attempts: counts, the deadline, the records."""

    __slots__ = ("call", "failures", "policy", "started")

    def __init__(self, policy: Retry, call: Call | None) -> None:
        self.policy = policy
        self.call = call
        self.failures = 0
        self.started = policy.clock()

    def after_failure(self, exc: BaseException) -> float | None:
        """The wait before the next attempt, or ``None`` to give up (the caller re-raises)."""
        self.failures += 1
        policy = self.policy
        reason = classify(exc)
        if reason is None:
            self.finish()
            return None
        attempt = self.failures
        if attempt >= policy.max_attempts:
            self._give_up(attempt, reason, "max_attempts")
            return None
        headers = response_headers(exc)
        retry_after = retry_after_seconds(headers, policy.wall_clock)
        delay = backoff_delay(
            attempt, policy.base_delay, policy.max_delay, policy.random(), retry_after
        )
        if policy.deadline is not None and (
            policy.clock() - self.started + delay > policy.deadline
        ):
            self._give_up(attempt, reason, "deadline")
            return None
        self._mark(
            "llmflow.retry",
            {"attempt": attempt, "delay": delay, "reason": reason, "retry_after": retry_after},
        )
        return delay

    def _give_up(self, attempt: int, reason: str, limit: str) -> None:
        data: Json = {"attempts": attempt, "reason": reason, "limit": limit}
        self._mark("llmflow.retry_exhausted", data)
        self.finish()

    def _mark(self, name: str, data: Json) -> None:
        record_mark("retry", name, data, self.call)

    def finish(self, succeeded: bool = False) -> None:
        attempts = self.failures + (1 if succeeded else 0)
        record_end("retry", self.call, {"retry.attempts": attempts})


class Retry:
    """An execution intercept (and, as :attr:`stream`, a stream execution intercept) that retries.

    Use :func:`retry` to build one. Works in the async entry points and their
    ``_sync`` twins: it waits with ``async_sleep`` when ``next()`` returned an
    awaitable and with ``sleep`` otherwise. Only retryable failures (see
    :func:`classify`) are retried; any other exception, and the last one when
    attempts or the deadline run out, propagates unchanged. Never retries
    ``BaseException`` (cancellation, ``KeyboardInterrupt``).
    """

    __slots__ = (
        "async_sleep",
        "base_delay",
        "clock",
        "deadline",
        "max_attempts",
        "max_delay",
        "random",
        "sleep",
        "wall_clock",
    )

    def __init__(
        self,
        max_attempts: int,
        base_delay: float,
        max_delay: float,
        deadline: float | None,
        sleep: Callable[[float], object],
        async_sleep: Callable[[float], Awaitable[object]],
        clock: Callable[[], float],
        random: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.deadline = deadline
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.clock = clock
        self.random = random
        self.wall_clock = wall_clock

    def __repr__(self) -> str:
        return (
            f"retry(max_attempts={self.max_attempts}, base_delay={self.base_delay}, "
            f"max_delay={self.max_delay}, deadline={self.deadline})"
        )

    def __call__(self, request: Any, call_next: Callable[..., Any]) -> Any:
        attempts = _Attempts(self, current_call())
        while True:
            try:
                result = call_next()
            except Exception as exc:
                delay = attempts.after_failure(exc)
                if delay is None:
                    raise
                # The sync entry point, or a sync provider function that failed before the
                # async pipeline handed back an awaitable: waiting here is what that
                # function's own blocking call already does.
                self.sleep(delay)
                continue
            if inspect.isawaitable(result):
                return self._continue_async(attempts, result, call_next)
            attempts.finish(succeeded=True)
            return result

    async def _continue_async(
        self, attempts: _Attempts, pending: Any, call_next: Callable[..., Any]
    ) -> Any:
        while True:
            try:
                if pending is None:
                    pending = call_next()
                result = await pending if inspect.isawaitable(pending) else pending
            except Exception as exc:
                pending = None
                delay = attempts.after_failure(exc)
                if delay is None:
                    raise
                await self.async_sleep(delay)
                continue
            attempts.finish(succeeded=True)
            return result

    def stream(self, request: LlmRequest, call_next: Callable[..., Any]) -> Any:
        """Stream execution intercept: retry a stream that fails before its first chunk.

        Serves ``llm_stream_call_execute`` (async iterator, ``async_sleep``)
        and ``llm_stream_call_execute_sync`` (iterator, ``sleep``) alike. Once
        a chunk has been yielded a failure propagates (the caller has seen part
        of the answer). Stream intercepts do not run inside the call span, so
        the ``llmflow.retry`` marks go under the caller's scope and no
        ``retry.attempts`` is written.
        """
        attempts = _Attempts(self, None)

        def decide(exc: BaseException) -> tuple[float, Any] | None:
            delay = attempts.after_failure(exc)
            return None if delay is None else (delay, request)

        return before_first_chunk(call_next, decide, _ignore, self.sleep, self.async_sleep)


def _ignore(error: BaseException | None) -> None:
    return None


def retry(
    max_attempts: int = 4,
    *,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    deadline: float | None = 120.0,
    sleep: Callable[[float], object] = time.sleep,
    async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    random: Callable[[], float] = _random.random,
    wall_clock: Callable[[], float] = time.time,
) -> Retry:
    """Build a retry execution intercept; register it with ``intercepts.register_llm_execution``.

    Exponential backoff with full jitter (``random() * min(max_delay,
    base_delay * 2**(n-1))`` after the n-th failure); a ``Retry-After`` (seconds
    or HTTP date) or ``retry-after-ms`` header on the failure replaces the
    backoff, capped at ``max_delay``. At most ``max_attempts`` calls in all; no
    wait that would end after ``deadline`` seconds from the first attempt
    (then the last error propagates). Each retry leaves an ``llmflow.retry``
    mark (``attempt``, ``delay``, ``reason``, ``retry_after``) under the call,
    giving up on a retryable failure an ``llmflow.retry_exhausted`` mark, and
    the end event gets ``retry.attempts``. ``sleep``/``async_sleep``/``clock``/
    ``random``/``wall_clock`` are injectable for tests.

    Raises ``ValueError`` naming the parameter for a limit that is not positive.
    """
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise TypeError(f"max_attempts: expected an int >= 1, got {max_attempts!r}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts: expected an int >= 1, got {max_attempts!r}")
    for param, fn in (
        ("sleep", sleep),
        ("async_sleep", async_sleep),
        ("clock", clock),
        ("random", random),
        ("wall_clock", wall_clock),
    ):
        if not callable(fn):
            raise TypeError(f"{param}: expected a callable, got {type(fn).__name__}")
    return Retry(
        max_attempts,
        _positive(base_delay, "base_delay", allow_zero=True),
        _positive(max_delay, "max_delay"),
        None if deadline is None else _positive(deadline, "deadline"),
        sleep,
        async_sleep,
        clock,
        random,
        wall_clock,
    )
