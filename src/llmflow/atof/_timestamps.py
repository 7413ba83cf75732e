"""Wire timestamps to epoch µs, fast for the form llmflow writes.

:func:`llmflow._clock.parse_timestamp` is the definition; this is a cache in
front of it for ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: a log has few distinct seconds
in a row, so the second's epoch value is looked up and the microseconds added,
instead of a ``datetime`` round trip per event (readers parse two per span).
"""

from __future__ import annotations

from llmflow._clock import parse_timestamp

__all__ = ["SECONDS", "second_us", "timestamp_us"]

SECONDS: dict[str, int] = {}
"""The cache: ``YYYY-MM-DDTHH:MM:SS`` to its epoch µs (read it inline in hot loops)."""
_CACHE_LIMIT = 4096


def second_us(prefix: str) -> int | None:
    """Epoch µs of a ``YYYY-MM-DDTHH:MM:SS`` (UTC) prefix, cached; ``None`` if it is not one."""
    second = SECONDS.get(prefix)
    if second is None:
        try:
            second = parse_timestamp(prefix + "Z")
        except ValueError:
            return None
        if len(SECONDS) >= _CACHE_LIMIT:
            SECONDS.clear()
        SECONDS[prefix] = second
    return second


def timestamp_us(value: object) -> int:
    """Parse a wire timestamp (RFC 3339 string or int epoch µs); ``ValueError`` if invalid."""
    if type(value) is str and len(value) == 27 and value[19] == "." and value[26] == "Z":
        second = second_us(value[:19])
        micro = value[20:26]
        if second is not None and micro.isascii() and micro.isdigit():
            return second + int(micro)
    return parse_timestamp(value)
