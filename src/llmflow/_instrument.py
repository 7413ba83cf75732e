"""``llmflow.instrument(client)``: the one line that records an SDK client's calls."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx2

from llmflow.http import AsyncTransport, Transport

__all__ = ["instrument"]

C = TypeVar("C")


def _is_recording(client: httpx2.Client | httpx2.AsyncClient) -> bool:
    return isinstance(client._transport, (Transport, AsyncTransport))


def _rebuilt(client: Any) -> Any:
    """A client of the same class and settings whose transports record (same connection pool)."""
    wrap: Any = Transport if isinstance(client, httpx2.Client) else AsyncTransport
    transport = wrap(client._transport)
    transport._origin = client  # its finalizer would close the shared pool while we use it
    mounts = {
        pattern.pattern: None if inner is None else wrap(inner)
        for pattern, inner in client._mounts.items()
    }
    return type(client)(
        auth=client.auth,
        params=client.params,
        headers=client.headers,
        cookies=client.cookies,
        timeout=client.timeout,
        follow_redirects=client.follow_redirects,
        max_redirects=client.max_redirects,
        event_hooks=client.event_hooks,
        base_url=client.base_url,
        trust_env=client.trust_env,
        default_encoding=client._default_encoding,
        transport=transport,
        mounts=mounts,
    )


def instrument(client: C) -> C:
    """Return a client of the same class and settings that records every provider call.

    Accepts ``openai.OpenAI``/``AsyncOpenAI``, ``anthropic.Anthropic``/
    ``AsyncAnthropic`` (any SDK client with an ``httpx2`` client and
    ``with_options(http_client=...)``), and ``httpx2.Client``/``AsyncClient``.
    Base URL, timeouts, retries, default headers and the connection pool are
    kept. Instrumenting an instrumented client returns it unchanged (one
    record per request, never two). Nothing is patched: the original client
    keeps working unrecorded. Anything else raises ``TypeError``.
    """
    if isinstance(client, (httpx2.Client, httpx2.AsyncClient)):
        return client if _is_recording(client) else _rebuilt(client)  # type: ignore[no-any-return,unused-ignore]
    http_client = getattr(client, "_client", None)
    with_options = getattr(client, "with_options", None)
    if isinstance(http_client, (httpx2.Client, httpx2.AsyncClient)) and callable(with_options):
        if _is_recording(http_client):
            return client
        return with_options(http_client=_rebuilt(http_client))  # type: ignore[no-any-return]
    raise TypeError(
        "client: expected an openai/anthropic SDK client or an httpx2.Client/AsyncClient, "
        f"got {type(client).__name__}"
    )


instrument.__module__ = "llmflow"  # reprs and docs show the public path
