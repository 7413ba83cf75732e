"""Which HTTP requests are provider calls: routes, their codecs, and the provider name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from llmflow.codecs import AnthropicMessagesCodec, OpenAIChatCodec, OpenAIResponsesCodec
from llmflow.codecs._codec import ProviderCodec

__all__ = ["DEFAULT_ROUTES", "Route", "match_route", "provider_name"]


@dataclass(frozen=True, slots=True)
class Route:
    """A provider endpoint: requests whose method and URL path match become one call.

    ``path`` is a regular expression searched in the URL path. ``codec``
    annotates requests, responses and folds SSE streams (``None``: recorded
    raw). ``category`` is ``"llm"`` (a managed LLM call) or ``"embedder"`` (an
    embedder scope). ``provider`` names the provider when neither the host nor
    the headers do; ``named_events`` says whether its SSE frames carry an
    ``event:`` line (Anthropic, OpenAI Responses) or not (OpenAI chat).
    ``response_key`` is a key every well-formed JSON answer has; an answer
    without it is counted as a codec failure (and still reaches the SDK).
    """

    name: str
    path: str
    codec: ProviderCodec | None = None
    method: str = "POST"
    category: Literal["llm", "embedder"] = "llm"
    provider: str | None = None
    named_events: bool = True
    response_key: str | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty call name, got {self.name!r}")
        if self.category not in ("llm", "embedder"):
            raise ValueError(f"category: expected 'llm' or 'embedder', got {self.category!r}")
        try:
            pattern = re.compile(self.path)
        except (re.error, TypeError) as exc:
            raise ValueError(
                f"path: expected a regular expression, got {self.path!r} ({exc})"
            ) from None
        object.__setattr__(self, "_pattern", pattern)

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and URL path is this route's."""
        return method == self.method and self._pattern.search(path) is not None


DEFAULT_ROUTES: tuple[Route, ...] = (
    Route(
        "openai.chat",
        r"/chat/completions$",  # also Azure's /openai/deployments/{d}/chat/completions
        OpenAIChatCodec(),
        provider="openai",
        named_events=False,
        response_key="choices",
    ),
    Route(
        "openai.responses",
        r"/responses$",
        OpenAIResponsesCodec(),
        provider="openai",
        response_key="output",
    ),
    Route(
        "anthropic.messages",
        r"^(?!.*/threads/).*/messages$",  # not OpenAI's /threads/{id}/messages
        AnthropicMessagesCodec(),
        provider="anthropic",
        response_key="content",
    ),
    Route(
        "openai.embeddings",
        r"/embeddings$",
        None,
        category="embedder",
        provider="openai",
        response_key="data",
    ),
)
"""The built-in routes, first match wins; pass ``routes=`` to replace or extend them."""


def match_route(routes: tuple[Route, ...], method: str, path: str) -> Route | None:
    """The first route matching ``method`` and ``path``, or ``None`` (pass through)."""
    for route in routes:
        if route.matches(method, path):
            return route
    return None


_HOSTS = (
    (".openai.azure.com", "azure.ai.openai"),
    (".cognitiveservices.azure.com", "azure.ai.openai"),
    (".services.ai.azure.com", "azure.ai.inference"),
    ("api.openai.com", "openai"),
    ("api.anthropic.com", "anthropic"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.mistral.ai", "mistral_ai"),
    ("api.deepseek.com", "deepseek"),
    ("generativelanguage.googleapis.com", "gcp.gemini"),
)


_HOST_PROVIDERS: dict[str, str | None] = {}
"""The provider of each host seen (a client talks to a few hosts): no suffix scan per call."""
_UNKNOWN: Final[object] = object()


def _host_provider(host: str) -> str | None:
    """The provider a known host names (``_HOSTS``), else ``None``; cached per host."""
    found = _HOST_PROVIDERS.get(host, _UNKNOWN)
    if found is not _UNKNOWN:
        return found  # type: ignore[return-value]
    name = None
    lowered = host.lower()
    for suffix, provider in _HOSTS:
        if lowered == suffix.lstrip(".") or lowered.endswith(suffix):
            name = provider
            break
    if len(_HOST_PROVIDERS) >= 256:
        _HOST_PROVIDERS.clear()
    _HOST_PROVIDERS[host] = name
    return name


def provider_name(host: str, path: str, headers: Mapping[str, str], route: Route) -> str | None:
    """The provider of a call (OpenTelemetry ``gen_ai.provider.name`` values).

    Known hosts first, then Azure's ``/openai/deployments/`` path or ``api-key``
    header, the ``anthropic-version`` header, and last the route's provider
    (a local vLLM or Ollama server speaking the OpenAI API is ``openai``).
    """
    name = _host_provider(host)
    if name is not None:
        return name
    if "/openai/deployments/" in path or "api-key" in headers:
        return "azure.ai.openai"
    if "anthropic-version" in headers:
        return "anthropic"
    return route.provider
