"""Credentials never reach the log: the header list and how it is applied.

The real request (what the provider receives) keeps every header; only the
copy recorded in events loses the credential headers.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CREDENTIAL_HEADERS", "strip_credentials"]

CREDENTIAL_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "api-key",
        "anthropic-api-key",
        "x-goog-api-key",
    }
)
"""Headers removed (case-insensitively) from every recorded copy of a request."""

_DROPPED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}


def strip_credentials(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` without the credential headers (the same dict when it has none).

    Which keys to drop is cached per key sequence: a client sends the same
    header names on every call.
    """
    keys = tuple(headers)
    drop = _DROPPED_KEYS.get(keys)
    if drop is None:
        if len(_DROPPED_KEYS) >= 256:
            _DROPPED_KEYS.clear()
        drop = _DROPPED_KEYS[keys] = tuple(
            k for k in keys if isinstance(k, str) and k.lower() in CREDENTIAL_HEADERS
        )
    if not drop:
        return headers
    kept = headers.copy()
    for key in drop:
        del kept[key]
    return kept
