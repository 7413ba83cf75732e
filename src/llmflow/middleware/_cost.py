"""The price of an LLM call, and ``cost.usd``/``cost.source`` on every LLM end event.

Pricing rules (llmflow's :class:`~llmflow.codecs.Usage` counts every prompt
token in ``input_tokens``, cached and cache-written ones included, for every
provider; Anthropic's separate counters are already summed by its codec):

* uncached input = ``input_tokens - cached_tokens - cache_creation_tokens``,
  at the input price;
* ``cached_tokens`` at the cache-read price (OpenAI's and Anthropic's
  discount), ``cache_creation_tokens`` at the cache-write price; either falls
  back to the input price when the model has none;
* ``reasoning_tokens`` are part of ``output_tokens``: priced as output unless
  the model has a separate reasoning price;
* tiered prices use the tier of the whole prompt (``input_tokens``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from llmflow._event import Event
from llmflow._runtime import Runtime, get_runtime
from llmflow.atof._facts import end_model_and_provider
from llmflow.codecs import Usage
from llmflow.events import deregister_metadata_injector, register_metadata_injector
from llmflow.middleware._prices import ModelPrices, Price, PriceTable, Tiered, bundled_table

__all__ = ["Cost", "CostRecorder", "UnknownModelPrice", "price"]

_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)
CACHE_SOURCE: Final = "llmflow.cache"
REPLAY_SOURCE: Final = "llmflow.replay"


class UnknownModelPrice(LookupError):
    """Recorded in diagnostics (``cost:unknown_model``) when a model has no price."""


@dataclass(frozen=True, slots=True)
class Cost:
    """The price of one call in US dollars, with where the prices came from."""

    usd: float
    source: str
    """E.g. ``"genai-prices 0.2.3 (2026-11-30)"``: data set, version, snapshot date."""
    model: str
    """The model id the prices belong to (the name the call used may differ)."""
    provider: str
    input_usd: float
    output_usd: float


def _count(usage: Mapping[str, Any] | Usage, name: str) -> int | None:
    # ``type() is dict`` first: usage read from an event is a plain dict, and
    # the Mapping ABC check costs ~10x more (five fields per call).
    if type(usage) is dict or isinstance(usage, Mapping):
        value = usage.get(name)
    else:
        value = getattr(usage, name, None)
    if value is None:
        return None
    if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(f"usage.{name}: expected a non-negative int or None, got {value!r}")
    if value < 0:
        raise ValueError(f"usage.{name}: expected a non-negative int or None, got {value!r}")
    return value


def _rate(price: Price | None, input_tokens: int) -> float | None:
    if price is None:
        return None
    return price.at(input_tokens) if isinstance(price, Tiered) else price


def cost_of(prices: ModelPrices, usage: Mapping[str, Any] | Usage, source: str) -> Cost | None:
    """Apply the pricing rules of this module to ``usage``; ``None`` when it has no counts
    or counts tokens the model has no price for."""
    if type(usage) is dict and all(type(usage.get(n, 0)) is int for n in _FIELDS):
        # The usage of an end event: plain ints (or absent), read without the checks.
        get = usage.get
        counts = {name: get(name) for name in _FIELDS}
        if any(value < 0 for value in counts.values() if value is not None):
            counts = {name: _count(usage, name) for name in _FIELDS}  # raises, naming it
    else:
        counts = {name: _count(usage, name) for name in _FIELDS}
    if counts["input_tokens"] is None and counts["output_tokens"] is None:
        return None
    prompt = counts["input_tokens"] or 0
    output = counts["output_tokens"] or 0
    cached = min(counts["cached_tokens"] or 0, prompt)
    written = min(counts["cache_creation_tokens"] or 0, prompt - cached)
    reasoning = min(counts["reasoning_tokens"] or 0, output)
    input_rate = _rate(prices.input, prompt)
    output_rate = _rate(prices.output, prompt)
    if (prompt and input_rate is None) or (output and output_rate is None):
        return None
    input_rate = input_rate or 0.0
    output_rate = output_rate or 0.0
    read_rate = _rate(prices.cache_read, prompt)
    write_rate = _rate(prices.cache_write, prompt)
    reasoning_rate = _rate(prices.reasoning, prompt)
    input_usd = (
        (prompt - cached - written) * input_rate
        + cached * (input_rate if read_rate is None else read_rate)
        + written * (input_rate if write_rate is None else write_rate)
    ) / 1e6
    output_usd = (
        (output - reasoning) * output_rate
        + reasoning * (output_rate if reasoning_rate is None else reasoning_rate)
    ) / 1e6
    return Cost(
        input_usd + output_usd, source, prices.model, prices.provider, input_usd, output_usd
    )


def price(
    model: str,
    usage: Usage | Mapping[str, Any],
    provider: str | None = None,
    *,
    table: PriceTable | None = None,
) -> Cost | None:
    """The price of ``usage`` tokens of ``model`` (at ``provider``), from the bundled snapshot.

    ``usage`` is a :class:`~llmflow.codecs.Usage` or its JSON form (the
    ``usage`` of an annotated response). Returns ``None`` when the model is not
    in the table or the usage has no token counts; never ``0`` for "unknown".
    Raises ``TypeError``/``ValueError`` naming the parameter for bad input. No
    network access.
    """
    if not isinstance(model, str) or not model:
        raise TypeError(f"model: expected a non-empty str, got {model!r}")
    if provider is not None and not isinstance(provider, str):
        raise TypeError(f"provider: expected a str or None, got {type(provider).__name__}")
    if not isinstance(usage, (Usage, Mapping)):
        raise TypeError(
            f"usage: expected a llmflow.codecs.Usage or a mapping, got {type(usage).__name__}"
        )
    prices_table = table or bundled_table()
    found = prices_table.lookup(model, provider)
    if found is None:
        return None
    return cost_of(found, usage, prices_table.source)


class CostRecorder:
    """Metadata injector writing ``cost.usd`` and ``cost.source`` on every LLM end event.

    Reads model, provider and usage from the end event itself (its
    ``annotated_response`` and ``model_name``, as :func:`llmflow.atof.span_facts` does),
    so managed, streamed, manual and transport calls are priced alike, on the
    delivery thread, with no change to the call path. ``cost.usd`` is ``null``
    when the model or the usage is unknown; an unknown model is also counted in
    diagnostics as ``cost:unknown_model``. A call answered by
    ``ResponseCache`` or ``replay`` costs ``0.0`` (source ``llmflow.cache`` /
    ``llmflow.replay``). Never raises into the application.
    """

    def __init__(self, *, table: PriceTable | None = None) -> None:
        self._table = table
        self._runtime: Runtime | None = None
        self._name: str | None = None
        self._lock = threading.Lock()
        self.unknown_models: Counter[str] = Counter()
        """How many end events named each model without a known price."""

    @property
    def table(self) -> PriceTable:
        """The price table in use (the bundled snapshot unless one was given)."""
        if self._table is None:
            self._table = bundled_table()
        return self._table

    def register(
        self, name: str = "llmflow.cost", priority: int = 0, *, runtime: Runtime | None = None
    ) -> CostRecorder:
        """Register as a metadata injector on ``runtime`` (default: the current one)."""
        rt = runtime or get_runtime()
        # It prices LLM ends only; saying so keeps every other event on the fast path.
        register_metadata_injector(
            name, priority, self, categories=("llm",), phases=("end",), runtime=rt
        )
        self._runtime, self._name = rt, name
        return self

    def deregister(self) -> bool:
        """Remove the registration made by :meth:`register`; return whether it existed."""
        if self._runtime is None or self._name is None:
            return False
        return deregister_metadata_injector(self._name, runtime=self._runtime)

    def __call__(self, event: Event) -> dict[str, Any] | None:
        if event.scope_category != "end" or event.category != "llm":
            return None
        metadata = event.metadata or {}
        if metadata.get("cache.hit") is True:
            return {"cost.usd": 0.0, "cost.source": CACHE_SOURCE}
        if "replay.source" in metadata:
            return {"cost.usd": 0.0, "cost.source": REPLAY_SOURCE}
        schema = event.data_schema
        profile = event.category_profile
        # Only the fields model and provider are read from (the wire form's names).
        wire = {
            "metadata": metadata,
            "category_profile": profile,
            "data_schema": None if schema is None else {"name": schema.name},
        }
        model, provider = end_model_and_provider(wire)
        response = profile.get("annotated_response") if profile else None
        usage = response.get("usage") if type(response) is dict else None
        if model is None:
            return {"cost.usd": None}
        table = self._table or self.table
        found = table.lookup(model, provider)
        if found is None:
            with self._lock:
                self.unknown_models[model] += 1
            (self._runtime or get_runtime()).count_failure(
                "cost:unknown_model",
                UnknownModelPrice(f"no price for model {model!r} (provider {provider})"),
            )
            return {"cost.usd": None}
        if not isinstance(usage, dict):
            return {"cost.usd": None}
        cost = cost_of(found, usage, table.source)
        if cost is None:
            return {"cost.usd": None}
        return {"cost.usd": cost.usd, "cost.source": cost.source}
