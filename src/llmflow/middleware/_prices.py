"""The bundled price table: a compact snapshot of the ``genai-prices`` data (MIT).

``prices.json`` next to this module holds, per provider, how to recognise its
models and, per model, the USD price per million tokens of uncached input,
output, cache reads, cache writes and (rarely priced apart) reasoning output.
Prices with thresholds ("above 200k input tokens") keep their tiers. Nothing
here touches the network or imports ``genai_prices`` at run time.

Refresh the snapshot from the installed ``genai-prices`` package (a dev-only
tool, not a runtime dependency)::

    python -m llmflow.middleware._prices refresh [PATH]

The refresh resolves date-conditional prices as of noon UTC on the refresh day
and keeps only token prices (per-request, search, audio and image prices are
not part of an LLM call's token usage and are dropped).
"""

from __future__ import annotations

import datetime
import json
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

__all__ = ["ModelPrices", "PriceTable", "Tiered", "bundled_table", "refresh"]

DATA_FILE: Final = "prices.json"
FORMAT: Final = 1

_PRICE_KEYS: Final = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "output_reasoning_mtok": "reasoning",
}

# OpenTelemetry ``gen_ai.provider.name`` values (what ``provider.name`` holds) that
# genai-prices spells differently.
_PROVIDER_ALIASES: Final = {
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "aws.bedrock": "aws",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
    "mistral_ai": "mistral",
    "ibm.watsonx.ai": "ibm",
}

_COMPACT_DATE = re.compile(r"-(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


@dataclass(frozen=True, slots=True)
class Tiered:
    """A price that switches, for all tokens, once the prompt exceeds a threshold."""

    base: float
    tiers: tuple[tuple[int, float], ...]
    """``(start, price)`` ascending: above ``start`` input tokens ``price`` applies."""

    def at(self, input_tokens: int) -> float:
        """The price per million tokens for a prompt of ``input_tokens``."""
        price = self.base
        for start, tier_price in self.tiers:
            if input_tokens > start:
                price = tier_price
        return price


Price = float | Tiered


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """USD per million tokens for one model; ``None`` where the provider sets no price."""

    provider: str
    model: str
    input: Price | None
    output: Price | None
    cache_read: Price | None = None
    cache_write: Price | None = None
    reasoning: Price | None = None


def _matches(clause: Mapping[str, Any], text: str) -> bool:
    """Evaluate a match clause on a lower-cased model or provider name."""
    for op, arg in clause.items():
        if op == "eq":
            return bool(text == arg)
        if op == "sw":
            return text.startswith(arg)
        if op == "ew":
            return text.endswith(arg)
        if op == "in":
            return arg in text
        if op == "re":
            return re.search(arg, text) is not None
        if op == "or":
            return any(_matches(c, text) for c in arg)
        if op == "and":
            return all(_matches(c, text) for c in arg)
    return False


def _price(value: Any) -> Price | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return Tiered(float(value["base"]), tuple((int(s), float(p)) for s, p in value["tiers"]))
    return float(value)


class PriceTable:
    """Model lookup over a loaded snapshot (the ``prices.json`` document).

    ``lookup`` mirrors how genai-prices finds a model: by provider (id, alias or
    the provider's own match rule) when one is given, else by the first provider
    whose model rule matches; then the first matching model of that provider or
    of its fallback providers; a compact date suffix (``-20251211``) is retried
    in dashed form. Results are cached.
    """

    def __init__(self, document: Mapping[str, Any]) -> None:
        if document.get("format") != FORMAT:
            raise ValueError(
                f"price table: expected format {FORMAT}, got {document.get('format')!r}"
            )
        self.source: str = f"genai-prices {document['version']} ({document['snapshot_date']})"
        """What ``cost.source`` says: the data set, its version and snapshot date."""
        self.snapshot_date: str = document["snapshot_date"]
        self._providers: list[dict[str, Any]] = list(document["providers"])
        self._by_id = {p["id"]: p for p in self._providers}
        self._cache: dict[tuple[str, str | None], ModelPrices | None] = {}
        self._lock = threading.Lock()

    def _provider(self, provider: str) -> dict[str, Any] | None:
        name = provider.lower().strip()
        name = _PROVIDER_ALIASES.get(name, name)
        found = self._by_id.get(name)
        if found is not None:
            return found
        for entry in self._providers:
            rule = entry.get("provider_match")
            if rule and _matches(rule, name):
                return entry
        return None

    def _model_in(self, provider: dict[str, Any], ref: str, fallback: bool) -> ModelPrices | None:
        for model in provider["models"]:
            if _matches(model["match"], ref):
                p = model["prices"]
                return ModelPrices(
                    provider["id"],
                    model["id"],
                    _price(p.get("input")),
                    _price(p.get("output")),
                    _price(p.get("cache_read")),
                    _price(p.get("cache_write")),
                    _price(p.get("reasoning")),
                )
        if fallback:
            for other_id in provider.get("fallback") or ():
                other = self._by_id.get(other_id)
                if other is not None and (found := self._model_in(other, ref, False)):
                    return found
        return None

    def _find(self, ref: str, provider: str | None) -> ModelPrices | None:
        if provider is not None:
            entry = self._provider(provider)
            candidates = [] if entry is None else [entry]
        else:
            candidates = [
                p for p in self._providers if p.get("match") and _matches(p["match"], ref)
            ][:1]
        for entry in candidates:
            found = self._model_in(entry, ref, True)
            if found is None:
                dashed = _COMPACT_DATE.sub(r"-\1-\2-\3", ref)
                if dashed != ref:
                    found = self._model_in(entry, dashed, True)
            if found is not None:
                return found
        return None

    def lookup(self, model: str, provider: str | None = None) -> ModelPrices | None:
        """The prices of ``model`` (at ``provider`` when given), or ``None`` when unknown."""
        key = (model, provider)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._find(model.lower(), provider)
        if found is None and provider is not None:
            # A provider name the data does not know (a gateway, a self-hosted server)
            # still serves known models: price them by the model name alone.
            found = self._find(model.lower(), None)
        with self._lock:
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = found
        return found


_BUNDLED: PriceTable | None = None


def bundled_table() -> PriceTable:
    """The price table shipped with llmflow (loaded once, on first use)."""
    global _BUNDLED
    if _BUNDLED is None:
        text = resources.files("llmflow.middleware").joinpath(DATA_FILE).read_text("utf-8")
        _BUNDLED = PriceTable(json.loads(text))
    return _BUNDLED


# -- refresh (dev tool: reads the installed genai-prices) ---------------------------


def _clause(logic: Any) -> dict[str, Any]:
    kind = type(logic).__name__
    simple = {
        "ClauseEquals": ("eq", "equals"),
        "ClauseStartsWith": ("sw", "starts_with"),
        "ClauseEndsWith": ("ew", "ends_with"),
        "ClauseContains": ("in", "contains"),
    }
    if kind in simple:
        op, attr = simple[kind]
        return {op: getattr(logic, attr).lower()}
    if kind == "ClauseRegex":
        return {"re": logic.regex}
    if kind == "ClauseOr":
        return {"or": [_clause(c) for c in logic.or_]}
    if kind == "ClauseAnd":
        return {"and": [_clause(c) for c in logic.and_]}
    raise ValueError(f"genai-prices: unknown match clause {kind}")


def _number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number


def _price_json(value: Any) -> Any:
    if type(value).__name__ == "TieredPrices":
        return {
            "base": _number(value.base),
            "tiers": [[t.start, _number(t.price)] for t in value.tiers],
        }
    return _number(value)


def build_document(when: datetime.date | None = None) -> dict[str, Any]:
    """Build the ``prices.json`` document from the installed ``genai-prices``.

    Raises ``ImportError`` naming the package when it is not installed.
    """
    try:
        from importlib.metadata import version

        from genai_prices.data import providers
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "refreshing the price table needs the genai-prices package: pip install genai-prices"
        ) from exc
    day = when or datetime.datetime.now(datetime.UTC).date()
    at = datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)
    out: list[dict[str, Any]] = []
    for provider in providers:
        models = []
        for model in provider.models:
            chosen = model.get_prices(at)
            prices = {
                short: _price_json(getattr(chosen, key, None))
                for key, short in _PRICE_KEYS.items()
                if getattr(chosen, key, None) is not None
            }
            if "input" not in prices and "output" not in prices:
                continue  # not priced by tokens (audio, search, per request)
            models.append({"id": model.id, "match": _clause(model.match), "prices": prices})
        entry: dict[str, Any] = {"id": provider.id, "models": models}
        if provider.model_match is not None:
            entry["match"] = _clause(provider.model_match)
        if provider.provider_match is not None:
            entry["provider_match"] = _clause(provider.provider_match)
        if provider.fallback_model_providers:
            entry["fallback"] = list(provider.fallback_model_providers)
        out.append(entry)
    return {
        "format": FORMAT,
        "source": "genai-prices (https://github.com/pydantic/genai-prices), MIT licence",
        "version": version("genai-prices"),
        "snapshot_date": day.isoformat(),
        "providers": out,
    }


def refresh(path: str | Path | None = None, when: datetime.date | None = None) -> Path:
    """Write a fresh snapshot to ``path`` (default: the bundled ``prices.json``)."""
    target = Path(path) if path is not None else Path(__file__).with_name(DATA_FILE)
    document = build_document(when)
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    target.write_text(text + "\n", encoding="utf-8")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmflow.middleware._prices refresh [PATH]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "refresh" or len(args) > 2:
        print("usage: python -m llmflow.middleware._prices refresh [PATH]", file=sys.stderr)
        return 2
    target = refresh(args[1] if len(args) == 2 else None)
    document = json.loads(target.read_text("utf-8"))
    count = sum(len(p["models"]) for p in document["providers"])
    print(f"wrote {target}: {count} models, genai-prices {document['version']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
