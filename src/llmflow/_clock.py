"""Time and identity: epoch-microsecond clock, RFC 3339 formatting, UUIDv7.

Everything inside llmflow carries time as integer epoch microseconds; the wire
form is produced only when an event is serialized.
"""

from __future__ import annotations

import random
import time
from datetime import datetime

from ._errors import InvalidParameterError, ParameterTypeError

__all__ = [
    "MAX_US",
    "MIN_US",
    "format_rfc3339",
    "new_uuid7",
    "now_us",
    "parse_timestamp",
    "to_epoch_us",
]

_time_ns = time.time_ns
_getrandbits = random.getrandbits  # the module-level RNG is reseeded after fork


def now_us() -> int:
    """Current wall-clock time in integer epoch microseconds."""
    return _time_ns() // 1000


_last_ms = -1
_counter = 0
_ms_prefix = ""
_HEX3 = [f"{i:03x}" for i in range(4096)]  # a table beats a format spec on the hot path


def new_uuid7(us: int) -> str:
    """A version-7 UUID string whose time field is ``us`` (epoch microseconds).

    Inside one millisecond the 12-bit ``rand_a`` field is a counter seeded at
    random (RFC 9562, method 1), so ids from one thread sort in creation order
    even when the clock does not move; 62 random bits keep ids unique across
    threads and processes. The time field never goes back (an explicit past
    ``us`` gets the latest millisecond used) and never runs ahead of the clock
    (an explicit future ``us`` gets the current millisecond). No lock: this
    runs for every span, and a thread race can only reorder two ids minted in
    the same millisecond.
    """
    global _last_ms, _counter, _ms_prefix
    ms = us // 1000
    if ms > _last_ms:
        # Read the clock only when the millisecond moves (cheap), so that one
        # future explicit timestamp cannot stamp every later id with the future.
        ms = min(ms, _time_ns() // 1_000_000)
    if ms > _last_ms:
        _last_ms = ms
        counter = _counter = _getrandbits(11)  # headroom before the 12-bit field wraps
        _ms_prefix = prefix = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
    else:
        counter = _counter = _counter + 1
        prefix = _ms_prefix
        if counter > 0xFFF:  # counter exhausted: borrow the next millisecond
            _last_ms = ms = _last_ms + 1
            counter = _counter = 0
            _ms_prefix = prefix = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-7"
    tail = hex(_getrandbits(62) | 0x8000000000000000)  # "0x" + 16 digits, variant 0b10
    return f"{prefix}{_HEX3[counter]}-{tail[2:6]}-{tail[6:]}"


second_cache: tuple[int, str] = (-1, "")
"""The last second formatted, with its ``YYYY-MM-DDTHH:MM:SS`` text (one tuple: thread-safe)."""


def cache_second(second: int) -> tuple[int, str]:
    """Format ``second`` (epoch seconds) and make it the cached one."""
    global second_cache
    t = time.gmtime(second)
    # Not strftime("%Y"): glibc does not pad years before 1000 to four digits.
    text = (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    second_cache = cached = (second, text)
    return cached


def format_rfc3339(us: int) -> str:
    """Format epoch microseconds as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

    The date-time text is cached per second (:data:`second_cache`, which the
    line serializer reads too).
    """
    second, micro = divmod(us, 1_000_000)
    cached = second_cache
    if cached[0] != second:
        cached = cache_second(second)
    return f"{cached[1]}.{micro:06d}Z"


MIN_US = -62_135_596_800_000_000
"""0001-01-01T00:00:00Z in epoch microseconds: the earliest RFC 3339 time."""
MAX_US = 253_402_300_799_999_999
"""9999-12-31T23:59:59.999999Z in epoch microseconds: the latest RFC 3339 time."""


def to_epoch_us(value: object, param: str) -> int:
    """Validate an explicit timestamp and return it as epoch microseconds.

    Accepts a timezone-aware ``datetime`` or an ``int`` of epoch microseconds
    in the RFC 3339 range (years 0001-9999 UTC). Naive datetimes, strings,
    floats, bools and out-of-range values raise ``ParameterTypeError`` or
    ``InvalidParameterError`` naming ``param``.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidParameterError(
                f"{param}: expected a timezone-aware datetime, got a naive datetime "
                f"({value.isoformat()}); attach a tzinfo such as datetime.UTC"
            )
        delta = value - _EPOCH
        us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    elif isinstance(value, int) and not isinstance(value, bool):
        us = value
    else:
        raise ParameterTypeError(
            f"{param}: expected a timezone-aware datetime or int epoch microseconds, "
            f"got {type(value).__name__}"
        )
    if not MIN_US <= us <= MAX_US:
        raise InvalidParameterError(
            f"{param}: {value!r} is outside the RFC 3339 range (years 0001-9999 UTC, "
            f"{MIN_US} to {MAX_US} epoch microseconds)"
        )
    return us


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def parse_timestamp(value: object) -> int:
    """Parse a wire timestamp (RFC 3339 string or int epoch µs) to epoch µs.

    Raises ``ValueError`` for anything else, including strings without a UTC
    offset.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"RFC 3339 timestamp without a UTC offset: {value!r}")
        return to_epoch_us(parsed, "timestamp")
    raise ValueError(f"expected an RFC 3339 string or int epoch microseconds, got {value!r}")
