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
_MINUTES: dict[str, int | None] = {}
"""``YYYY-MM-DDTHH:MM:`` to the epoch µs of its second 00, ``None`` if not a valid minute."""
_CACHE_LIMIT = 4096


def second_us(prefix: str) -> int | None:
    """Epoch µs of a ``YYYY-MM-DDTHH:MM:SS`` (UTC) prefix, cached; ``None`` if it is not one.

    A new second of a known minute is that minute's value plus the seconds (a
    log moves through a new second every few lines); anything else is parsed.
    """
    second = SECONDS.get(prefix)
    if second is None:
        second = _of_minute(prefix)
        if second is None:
            try:
                second = parse_timestamp(prefix + "Z")
            except ValueError:
                return None
        if len(SECONDS) >= _CACHE_LIMIT:
            SECONDS.clear()
        SECONDS[prefix] = second
    return second


def _of_minute(prefix: str) -> int | None:
    """``second_us`` of a canonical prefix through its minute; ``None`` to parse it instead."""
    seconds = prefix[17:]
    if not (
        len(prefix) == 19
        and prefix[16] == ":"
        and seconds.isascii()
        and seconds.isdigit()
        and seconds < "60"
    ):
        return None
    minute = prefix[:17]
    if minute not in _MINUTES:
        if len(_MINUTES) >= _CACHE_LIMIT:
            _MINUTES.clear()
        canonical = (
            minute.isascii()
            and minute[4] == minute[7] == "-"
            and minute[10] == "T"
            and minute[13] == ":"
            and (minute[:4] + minute[5:7] + minute[8:10] + minute[11:13] + minute[14:16]).isdigit()
        )
        try:
            _MINUTES[minute] = parse_timestamp(minute + "00Z") if canonical else None
        except ValueError:
            _MINUTES[minute] = None
    start = _MINUTES[minute]
    return None if start is None else start + int(seconds) * 1_000_000


def timestamp_us(value: object) -> int:
    """Parse a wire timestamp (RFC 3339 string or int epoch µs); ``ValueError`` if invalid."""
    if type(value) is str and len(value) == 27 and value[19] == "." and value[26] == "Z":
        second = second_us(value[:19])
        micro = value[20:26]
        if second is not None and micro.isascii() and micro.isdigit():
            return second + int(micro)
    return parse_timestamp(value)
