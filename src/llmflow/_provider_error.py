"""What an HTTP error from a provider SDK says, read by duck typing.

The SDKs are never imported: an exception with an int ``status_code`` (or
``response.status_code``) is an HTTP failure — ``openai.APIStatusError``,
``anthropic.APIStatusError``, ``llmflow.http.ProviderHTTPError``,
``httpx.HTTPStatusError`` and the like. Its facts become the end metadata of
the call it failed (the keys of ``docs/events.md``); anything else records
only ``exception.type``/``exception.message``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ._credentials import scrub_text
from ._types import JsonObject

__all__ = ["header", "provider_error_metadata", "response_headers", "status_code"]

# The headers providers put their request id in (OpenAI, Anthropic), read when
# the exception has no ``request_id`` of its own.
_REQUEST_ID_HEADERS: Final = ("x-request-id", "request-id")


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error (``status_code``, else ``response.status_code``), if any."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def response_headers(exc: BaseException) -> Mapping[str, str] | None:
    """The HTTP response headers an error carries (``headers`` or ``response.headers``)."""
    headers = getattr(exc, "headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return headers if isinstance(headers, Mapping) or hasattr(headers, "get") else None


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Header ``name`` (lower case) as a str, case-insensitively; ``None`` when absent or odd."""
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None and isinstance(headers, dict):  # plain dicts are case-sensitive
            lowered = {str(k).lower(): v for k, v in headers.items()}
            value = lowered.get(name)
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _body_error_code(body: object) -> str | None:
    """``error.code``, else ``error.type``, of a provider's error JSON (outer or inner object)."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        body = error
    return _text(body.get("code")) or _text(body.get("type"))


def provider_error_metadata(exc: BaseException) -> JsonObject:
    """The end metadata an HTTP error from a provider gives; ``{}`` for any other exception.

    ``http.status_code``; ``provider.error_code`` (the exception's ``code`` or
    ``error_code``, else the error body's ``code`` or ``type``);
    ``provider.request_id`` (``request_id``, else the response's
    ``x-request-id``/``request-id`` header); ``http.retry_after`` (the
    ``Retry-After``, else ``retry-after-ms``, header as sent). A fact that is
    absent or not a string is left out; strings are scrubbed of secrets.
    Never raises: an attribute that raises when read counts as absent.
    """
    try:
        status = status_code(exc)
        if status is None:
            return {}
        facts: JsonObject = {"http.status_code": status}
        headers = response_headers(exc)
        code = (
            _text(getattr(exc, "code", None))
            or _text(getattr(exc, "error_code", None))
            or _body_error_code(getattr(exc, "body", None))
        )
        request_id = _text(getattr(exc, "request_id", None))
        for name in _REQUEST_ID_HEADERS:
            if request_id is not None:
                break
            request_id = header(headers, name)
        retry_after = header(headers, "retry-after") or header(headers, "retry-after-ms")
        for key, value in (
            ("provider.error_code", code),
            ("provider.request_id", request_id),
            ("http.retry_after", retry_after),
        ):
            if value:
                facts[key] = scrub_text(value)
        return facts
    except Exception:  # an exception object that lies about itself: record what describe gives
        return {}
