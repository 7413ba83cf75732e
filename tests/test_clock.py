"""Time and identity: RFC 3339 formatting, explicit timestamps, UUIDv7."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmflow._clock import format_rfc3339, new_uuid7, now_us, parse_timestamp, to_epoch_us

RFC3339_US_Z = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z


def uuid_ms(value: str) -> int:
    return uuid.UUID(value).int >> 80


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid.UUID(new_uuid7(now_us()))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_uuid7_time_field_is_the_creation_millisecond() -> None:
    before = now_us() // 1000
    minted = new_uuid7(now_us())
    after = now_us() // 1000
    # The counter may borrow the next millisecond when exhausted, never more.
    assert before <= uuid_ms(minted) <= after + 1


def test_uuid7_sorts_in_creation_order_within_a_thread() -> None:
    ids = [new_uuid7(now_us()) for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_unique_across_threads() -> None:
    results: list[list[str]] = []

    def mint() -> None:
        results.append([new_uuid7(now_us()) for _ in range(5_000)])

    threads = [threading.Thread(target=mint) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for batch in results for value in batch]
    assert len(set(every)) == len(every) == 20_000


def test_format_rfc3339_has_microseconds_and_z_suffix() -> None:
    assert format_rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert format_rfc3339(1_700_000_000_123_456) == "2023-11-14T22:13:20.123456Z"
    assert format_rfc3339(1_700_000_000_000_001) == "2023-11-14T22:13:20.000001Z"


def test_format_rfc3339_cache_follows_second_changes() -> None:
    seconds = [1_700_000_000, 1_700_000_001, 1_700_000_000, 1_800_000_000]
    for second in seconds:
        expected = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert format_rfc3339(second * 1_000_000 + 7) == f"{expected}.000007Z"


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=MAX_US))
def test_rfc3339_round_trips_to_the_same_microsecond(us: int) -> None:
    text = format_rfc3339(us)
    assert parse_timestamp(text) == us
    assert text.endswith("Z") and len(text) == len("1970-01-01T00:00:00.000000Z")


def test_aware_datetime_converts_to_epoch_microseconds_in_utc() -> None:
    moment = datetime(2024, 5, 6, 7, 8, 9, 123_456, tzinfo=UTC)
    shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    expected = int(moment.timestamp()) * 1_000_000 + 123_456
    assert to_epoch_us(moment, "timestamp") == expected
    assert to_epoch_us(shifted, "timestamp") == expected


def test_int_epoch_microseconds_are_taken_as_is() -> None:
    assert to_epoch_us(1_700_000_000_000_000, "timestamp") == 1_700_000_000_000_000


def test_naive_datetime_is_rejected_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^when: .*naive"):
        to_epoch_us(datetime(2024, 1, 1), "when")


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00Z", 1.5, True, None, b"1"])
def test_non_datetime_non_int_timestamps_are_rejected_naming_the_parameter(value: object) -> None:
    with pytest.raises(TypeError, match=r"^when: expected a timezone-aware datetime or int"):
        to_epoch_us(value, "when")


def test_parse_timestamp_accepts_rfc3339_with_offset_and_int() -> None:
    assert parse_timestamp("1970-01-01T00:00:01Z") == 1_000_000
    assert parse_timestamp("1970-01-01T01:00:01.5+01:00") == 1_500_000
    assert parse_timestamp(42) == 42


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00", "yesterday", 1.0, True, None])
def test_parse_timestamp_rejects_offsetless_and_non_timestamps(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_uuid7_time_never_runs_ahead_of_the_clock_after_a_future_timestamp() -> None:
    future_us = 4_000_000_000_000_000  # 2096
    future_id = new_uuid7(future_us)
    later_id = new_uuid7(now_us())
    now_ms = now_us() // 1000
    assert uuid_ms(future_id) <= now_ms + 1
    assert uuid_ms(later_id) <= now_ms + 1
    assert future_id < later_id


def test_uuid7_time_never_goes_back_for_a_past_timestamp() -> None:
    recent = new_uuid7(now_us())
    past = new_uuid7(1_000_000)  # 1970
    assert uuid_ms(past) >= uuid_ms(recent)
    assert recent < past
