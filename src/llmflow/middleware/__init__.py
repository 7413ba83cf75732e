"""Ready-made middleware (SPEC §14), each registered with the §5 registries.

Resilience: :func:`retry`, :func:`timeout`, :class:`CircuitBreaker`,
:func:`fallback` (execution intercepts, each with a ``.stream`` variant).
Safety: :func:`redact` (every sanitizer family at once), :class:`AntiLoop`
(a conditional-execution guardrail). See ``docs/middleware.md``.
"""

from __future__ import annotations

from llmflow.middleware._antiloop import AntiLoop
from llmflow.middleware._breaker import CircuitBreaker, CircuitOpenError
from llmflow.middleware._fallback import Fallback, fallback
from llmflow.middleware._redact import Redaction, Redactor, redact
from llmflow.middleware._retry import Retry, retry
from llmflow.middleware._timeout import CallTimeoutError, Timeout, timeout

__all__ = [
    "AntiLoop",
    "CallTimeoutError",
    "CircuitBreaker",
    "CircuitOpenError",
    "Fallback",
    "Redaction",
    "Redactor",
    "Retry",
    "Timeout",
    "fallback",
    "redact",
    "retry",
    "timeout",
]

# Tracebacks, reprs and recorded ``exception.type`` show the public path.
for _name in __all__:
    globals()[_name].__module__ = __name__
