"""HTTP transports for the provider SDKs (SPEC §11): record every call on the wire.

::

    client = llmflow.instrument(openai.OpenAI())          # same class, same settings
    client = anthropic.Anthropic(http_client=httpx2.Client(transport=llmflow.http.Transport()))

A request whose method and path match a :class:`Route` becomes one managed LLM
call (or an ``embedder`` scope); every other request passes through untouched.
"""

from llmflow.http._errors import ProviderHTTPError
from llmflow.http._routes import DEFAULT_ROUTES, Route
from llmflow.http._transport import AsyncTransport, Transport

__all__ = ["DEFAULT_ROUTES", "AsyncTransport", "ProviderHTTPError", "Route", "Transport"]

for _name in ("AsyncTransport", "ProviderHTTPError", "Route", "Transport"):
    globals()[_name].__module__ = "llmflow.http"  # tracebacks and records show the public path
del _name
