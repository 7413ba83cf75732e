"""The one error the transports add: an HTTP error status seen by execution intercepts."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
        text = body[:200].decode("utf-8", "replace")
        super().__init__(f"HTTP {status_code} from the provider: {text}")
