"""The one error the transports add: an HTTP error status seen by execution intercepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from llmflow._errors import FlowError

if TYPE_CHECKING:
    import httpx2

__all__ = ["ProviderHTTPError"]


class ProviderHTTPError(FlowError):
    """The provider answered with an HTTP error status (4xx/5xx).

    Raised inside the execution intercepts of a call made through
    :class:`llmflow.http.Transport`, so that retry middleware can act on it
    (``status_code``, ``headers`` such as ``retry-after``, ``body``). When no
    intercept handles it, the SDK still receives the original ``response``
    and raises its own typed error; this exception never reaches the SDK.
    """

    def __init__(
        self,
        status_code: int,
        headers: httpx2.Headers,
        body: bytes,
        response: httpx2.Response | None = None,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.response = response
        super().__init__(f"HTTP {status_code} from the provider: {_summary(body)}")


def _summary(body: bytes) -> str:
    """The provider's error message when the body is its error JSON, else the body's start."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str):
        return message[:200]
    return body[:200].decode("utf-8", "replace")
