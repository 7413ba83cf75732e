"""Wire timestamps to epoch µs, fast for the form llmflow writes.

:func:`llmflow._clock.parse_timestamp` is the definition; this is a cache in
front of it for ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: a log has few distinct seconds
in a row, so the second's epoch value is looked up and the microseconds added,
instead of a ``datetime`` round trip per event (readers parse two per span).
"""

from __future__ import annotations

from llmflow._clock import parse_timestamp

__all__ = ["timestamp_us"]

_SECONDS: dict[str, int] = {}
_CACHE_LIMIT = 4096


def timestamp_us(value: object) -> int:
    """Parse a wire timestamp (RFC 3339 string or int epoch µs); ``ValueError`` if invalid."""
    if type(value) is str and len(value) == 27 and value[19] == "." and value[26] == "Z":
        prefix = value[:19]
        second = _SECONDS.get(prefix)
        if second is None:
            if len(_SECONDS) >= _CACHE_LIMIT:
                _SECONDS.clear()
            second = _SECONDS[prefix] = parse_timestamp(prefix + "Z")
        micro = value[20:26]
        if micro.isascii() and micro.isdigit():
            return second + int(micro)
    return parse_timestamp(value)
