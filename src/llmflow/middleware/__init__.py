"""Ready-made middleware (SPEC §14), each registered with the §5 registries.

Resilience: :func:`retry`, :func:`timeout`, :class:`CircuitBreaker`,
:func:`fallback` (execution intercepts, each with a ``.stream`` variant).
Cost and budgets: :class:`CostRecorder` (``cost.usd``/``cost.source`` on every
LLM end event), :func:`price`, :class:`Budget`. Caching and record/replay:
:class:`ResponseCache`, :func:`replay`. Safety: :func:`redact` (every
sanitizer family at once), :class:`AntiLoop` (a conditional-execution
guardrail). See ``docs/middleware.md``.
"""

from __future__ import annotations

from llmflow.middleware._antiloop import AntiLoop
from llmflow.middleware._breaker import CircuitBreaker, CircuitOpenError
from llmflow.middleware._budget import Budget
from llmflow.middleware._cache import ResponseCache
from llmflow.middleware._cost import Cost, CostRecorder, UnknownModelPrice, price
from llmflow.middleware._fallback import Fallback, fallback
from llmflow.middleware._redact import Redaction, Redactor, redact
from llmflow.middleware._replay import Replay, ReplayError, ReplayMissError, replay
from llmflow.middleware._retry import Retry, retry
from llmflow.middleware._timeout import CallTimeoutError, Timeout, timeout

__all__ = [
    "AntiLoop",
    "Budget",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Cost",
    "CostRecorder",
    "Fallback",
    "Redaction",
    "Redactor",
    "Replay",
    "ReplayError",
    "ReplayMissError",
    "ResponseCache",
    "Retry",
    "Timeout",
    "UnknownModelPrice",
    "fallback",
    "price",
    "redact",
    "replay",
    "retry",
    "timeout",
]

# Tracebacks, reprs and recorded ``exception.type`` show the public path.
for _name in __all__:
    globals()[_name].__module__ = __name__
