"""Credentials never reach the log: credential headers and secret-shaped text.

Two rules, both applied to what is *recorded*, never to what the provider
receives:

* **Headers.** Every recorded copy of a request loses the headers named in
  :func:`credential_headers` (matched case-insensitively, after stripping
  surrounding whitespace and zero-width characters from the name).
* **Text.** Recorded exception messages and metadata have secret-shaped
  substrings replaced by ``[REDACTED]``: credential query parameters
  (``?key=…``, ``&api_key=…``, ``token=…``), ``Bearer``/``Basic`` credentials
  and well-known API-key shapes (``sk-…``, ``sk-ant-…``, ``AIza…``, ``ghp_…``,
  ``AKIA…``, ``xox?-…``).

Both lists are extendable at run time (:func:`register_credential_header`,
:func:`register_secret_pattern`); nothing can be removed from them.
"""

from __future__ import annotations

import re
import threading
from typing import Final

import orjson

from ._errors import InvalidParameterError, ParameterTypeError

__all__ = [
    "CREDENTIAL_HEADERS",
    "REDACTED",
    "SECRET_PATTERNS",
    "credential_headers",
    "normalize_header_name",
    "register_credential_header",
    "register_secret_pattern",
    "scrub_bytes",
    "scrub_text",
    "strip_credential_fields",
    "strip_credentials",
]

REDACTED: Final = "[REDACTED]"

CREDENTIAL_HEADERS: Final = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "anthropic-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "ocp-apim-subscription-key",
        "x-auth-token",
    }
)
"""The built-in credential headers (lower case); :func:`credential_headers` adds registered ones."""

_QUERY_NAMES: Final = frozenset(
    {
        "key",
        "apikey",
        "api_key",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "auth",
        "client_secret",
        "secret",
        "password",
        "passwd",
        "sig",
        "signature",
        "x_amz_signature",
        "x_amz_credential",
        "x_amz_security_token",
        "x_goog_signature",
        "x_goog_credential",
    }
)
"""Names whose ``name=value`` (URL query, ``key=value`` text) has its value scrubbed."""

SECRET_PATTERNS: Final[tuple[str, ...]] = (
    r"(?i:\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,})",
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_-]{16,}",
    r"\bAIza[0-9A-Za-z_-]{30,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
)
"""The built-in secret shapes (regular expressions) scrubbed from recorded text."""

# Literal pieces (lower case) one of which any built-in shape contains: text
# without any of them skips the regular expressions (most metadata).
_TRIGGERS: Final = (
    "bearer",
    "basic",
    "sk-",
    "aiza",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "akia",
    "asia",
    "xox",
)
# A value never starts with "[": scrubbing twice leaves "key=[REDACTED]" as it is.
_KV: Final = re.compile(r"([A-Za-z][\w-]*)=([^&\s#'\",;()\[\]{}]+)")
_SHAPES: Final = re.compile("|".join(SECRET_PATTERNS))

_lock = threading.Lock()
_extra_headers: frozenset[str] = frozenset()
_headers: frozenset[str] = CREDENTIAL_HEADERS
_user_patterns: tuple[str, ...] = ()
_user_re: re.Pattern[str] | None = None
_DROPPED_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _kv(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.lower().replace("-", "_") in _QUERY_NAMES:
        return f"{name}={REDACTED}"
    return match.group(0)


def _shape(match: re.Match[str]) -> str:
    scheme, space, _rest = match.group(0).partition(" ")
    if space and scheme.lower() in ("bearer", "basic"):
        return f"{scheme} {REDACTED}"
    return REDACTED


def scrub_text(text: str) -> str:
    """``text`` with every secret-shaped substring replaced by ``[REDACTED]``.

    A credential parameter keeps its name (``key=[REDACTED]``), a ``Bearer``
    credential its scheme. Text with no trigger is returned as is, cheaply.
    """
    low = text.lower()
    if "=" in low:
        text = _KV.sub(_kv, text)
    for trigger in _TRIGGERS:
        if trigger in low:
            text = _SHAPES.sub(_shape, text)
            break
    user = _user_re
    if user is not None:
        text = user.sub(REDACTED, text)
    return text


def _scrub_value(value: object) -> object:
    if type(value) is str:
        return scrub_text(value)
    if type(value) is dict:
        return {k: _scrub_value(v) for k, v in value.items()}
    if type(value) is list:
        return [_scrub_value(v) for v in value]
    return value


def scrub_bytes(raw: bytes) -> bytes:
    """:func:`scrub_text` applied to every string value of a JSON snapshot.

    Returns ``raw`` itself when nothing is secret-shaped (the common case is a
    few substring tests); otherwise the snapshot is parsed, its string values
    scrubbed and serialized again, so the result is always valid JSON.
    """
    if _user_re is None:
        # Tested as text: ``bytes in bytes`` first tries the needle as an int and
        # raises and clears a TypeError inside CPython, for each test.
        low = raw.lower().decode("latin-1")
        if "=" not in low:
            for trigger in _TRIGGERS:
                if trigger in low:
                    break
            else:
                return raw
    value = orjson.loads(raw)
    scrubbed = orjson.dumps(_scrub_value(value))
    return raw if scrubbed == raw else scrubbed


def register_secret_pattern(pattern: str) -> None:
    """Also scrub text matching ``pattern`` (a regular expression) from recorded text.

    Raises :class:`InvalidParameterError` for a pattern that does not compile
    or can match the empty string.
    """
    global _user_patterns, _user_re
    if not isinstance(pattern, str) or not pattern:
        raise ParameterTypeError(f"pattern: expected a non-empty str, got {pattern!r}")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise InvalidParameterError(f"pattern: not a regular expression ({exc})") from None
    if compiled.match("") is not None:
        raise InvalidParameterError(f"pattern: {pattern!r} matches the empty string")
    with _lock:
        if pattern not in _user_patterns:
            _user_patterns = (*_user_patterns, pattern)
            _user_re = re.compile("|".join(f"(?:{p})" for p in _user_patterns))


# -- headers ------------------------------------------------------------------------

_INVISIBLE: Final = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalize_header_name(name: str) -> str:
    """``name`` as matched against the list: no surrounding whitespace or zero-width
    characters, lower case."""
    return name.translate(_INVISIBLE).strip().lower()


def credential_headers() -> frozenset[str]:
    """Every header name stripped from recorded requests: built-in plus registered."""
    return _headers


def register_credential_header(name: str) -> None:
    """Also strip header ``name`` (any case) from every recorded request from now on.

    Raises :class:`ParameterTypeError` unless ``name`` is a non-empty str.
    """
    global _extra_headers, _headers
    if not isinstance(name, str) or not normalize_header_name(name):
        raise ParameterTypeError(f"name: expected a non-empty header name, got {name!r}")
    with _lock:
        _extra_headers = _extra_headers | {normalize_header_name(name)}
        _headers = CREDENTIAL_HEADERS | _extra_headers
        _DROPPED_KEYS.clear()


def strip_credentials(headers: dict[str, str], param: str = "request.headers") -> dict[str, str]:
    """``headers`` without the credential headers (the same dict when it has none).

    The type is checked here, where the headers are used, so a request whose
    ``headers`` were replaced after construction still raises
    :class:`ParameterTypeError` naming ``param``. Which keys to drop is cached
    per key sequence: a client sends the same header names on every call.
    """
    if not isinstance(headers, dict):
        raise ParameterTypeError(
            f"{param}: expected a dict of str to str, got {type(headers).__name__}"
        )
    keys: tuple[str, ...] = tuple(headers)
    drop = _DROPPED_KEYS.get(keys)
    if drop is None:
        names = _headers
        if len(_DROPPED_KEYS) >= 256:
            _DROPPED_KEYS.clear()
        drop = _DROPPED_KEYS[keys] = tuple(
            k for k in keys if isinstance(k, str) and normalize_header_name(k) in names
        )
    if not drop:
        return headers
    kept = headers.copy()
    for key in drop:
        del kept[key]
    return kept


CREDENTIAL_FIELDS: Final = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "x_api_key",
        "authorization",
        "Authorization",
        "access_token",
        "client_secret",
        "password",
        "secret_key",
        "aws_secret_access_key",
    }
)
"""Body fields removed from the top level of recorded requests and tool arguments."""

_HEADER_FIELDS: Final = frozenset({"extra_headers", "headers", "default_headers"})
_FIELD_TRIGGERS: Final = CREDENTIAL_FIELDS | _HEADER_FIELDS


def strip_credential_fields(body: dict[str, object]) -> dict[str, object]:
    """``body`` without credential fields at its top level (the same dict when it has none).

    Per-call SDK options that end up in a body dict are the usual carriers:
    ``api_key=...`` is removed, and ``extra_headers``/``headers`` dicts lose
    their credential headers (see :func:`strip_credentials`). The check is one
    set test over the top-level keys; nested user content is not walked.
    """
    if _FIELD_TRIGGERS.isdisjoint(body):
        return body
    kept: dict[str, object] = {}
    for key, value in body.items():
        if key in CREDENTIAL_FIELDS:
            continue
        if key in _HEADER_FIELDS and isinstance(value, dict):
            kept[key] = strip_credentials(value, key)
        else:
            kept[key] = value
    return kept
