"""Credentials never reach the log (issue 12 items 12, 13; docs/security.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import llmflow
from llmflow import LlmRequest, _credentials, testing
from llmflow.credentials import (
    REDACTED,
    credential_headers,
    register_credential_header,
    register_secret_pattern,
    scrub_text,
)


@pytest.fixture(autouse=True)
def _restore_lists() -> Iterator[None]:
    """Registered headers and patterns are process-wide: undo them after each test."""
    saved = (_credentials._extra_headers, _credentials._headers)
    saved_patterns = (_credentials._user_patterns, _credentials._user_re)
    yield
    _credentials._extra_headers, _credentials._headers = saved
    _credentials._user_patterns, _credentials._user_re = saved_patterns
    _credentials._DROPPED_KEYS.clear()


def _body() -> dict[str, Any]:
    return {"model": "m", "messages": []}


def _recorded_headers(headers: Any) -> dict[str, Any]:
    with testing.capture() as events:
        llmflow.llm_call("chat", LlmRequest(headers, _body()))
    return dict(events[0].data["headers"])


@pytest.mark.parametrize(
    "name",
    [
        "X-Amz-Security-Token",
        "Ocp-Apim-Subscription-Key",
        "X-Auth-Token",
        "Set-Cookie",
        " Authorization ",
        "\tx-api-key",
        "Authorization\u200b",
        "\ufeffCookie",
    ],
)
def test_credential_headers_are_stripped_whatever_their_case_padding_or_invisible_chars(
    name: str,
) -> None:
    assert _recorded_headers({name: "secret", "accept": "json"}) == {"accept": "json"}


def test_the_provider_still_receives_every_header() -> None:
    sent: list[dict[str, str]] = []
    headers = {"X-Auth-Token": "t", "accept": "json"}
    llmflow.llm_call_execute_sync(
        "chat", LlmRequest(dict(headers), _body()), lambda r: sent.append(r.headers)
    )
    assert sent == [headers]


def test_a_registered_header_is_stripped_from_then_on() -> None:
    assert _recorded_headers({"X-Tenant-Secret": "s"}) == {"X-Tenant-Secret": "s"}
    register_credential_header("x-tenant-secret")
    assert "x-tenant-secret" in credential_headers()
    assert _recorded_headers({"X-Tenant-Secret": "s"}) == {}


def test_headers_replaced_after_construction_are_type_checked_where_used() -> None:
    request = LlmRequest({}, _body())
    request.headers = [("Authorization", "Bearer sk-secret")]  # type: ignore[assignment]
    with testing.capture() as events:
        with pytest.raises(llmflow.ParameterTypeError, match=r"^request\.headers: expected a dict"):
            llmflow.llm_call("chat", request)
        with pytest.raises(llmflow.ParameterTypeError, match=r"^request\.headers"):
            llmflow.llm_call_execute_sync("chat", request, lambda r: None)
    assert events == []


def test_content_replaced_after_construction_is_type_checked_where_used() -> None:
    request = LlmRequest({}, _body())
    request.content = ["not", "a", "body"]  # type: ignore[assignment]
    with pytest.raises(llmflow.ParameterTypeError, match=r"^request\.content"):
        llmflow.llm_call("chat", request)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Client error '429' for url 'https://g.example/v1?key=AIzaSyA-1234567890abcdef&alt=sse'",
            f"Client error '429' for url 'https://g.example/v1?key={REDACTED}&alt=sse'",
        ),
        (
            "GET /x?api_key=abc123&access_token=zz",
            f"GET /x?api_key={REDACTED}&access_token={REDACTED}",
        ),
        ("Authorization: Bearer abcdefghijklmnop", f"Authorization: Bearer {REDACTED}"),
        (
            "Incorrect API key provided: sk-proj-abcdefghijklmnop1234",
            f"Incorrect API key provided: {REDACTED}",
        ),
        ("bad key sk-ant-api03-abcdefghijklmnopqrst", f"bad key {REDACTED}"),
        ("key AIzaSyA1234567890abcdefghijklmnopqrst", f"key {REDACTED}"),
        ("monkey=banana and a plain message", "monkey=banana and a plain message"),
    ],
)
def test_secret_shapes_are_scrubbed_from_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_a_recorded_exception_message_is_scrubbed_but_the_raised_exception_is_not() -> None:
    message = "Client error '429' for url 'https://g.example/v1/m?key=AIzaSECRETSECRET'"
    error = RuntimeError(message)

    def fail(request: LlmRequest) -> Any:
        raise error

    with testing.capture() as events:
        with pytest.raises(RuntimeError) as caught:
            llmflow.llm_call_execute_sync("chat", LlmRequest({}, _body()), fail)
    assert str(caught.value) == message
    recorded = events[-1].metadata["exception.message"]
    assert "AIzaSECRET" not in recorded
    assert recorded.endswith(f"?key={REDACTED}'")


def test_recorded_metadata_is_scrubbed_on_every_event_kind() -> None:
    metadata = {"url": "https://h.example/p?token=SECRET123", "auth": "Bearer abcdefghijkl"}
    with testing.capture() as events:
        llmflow.mark("m", metadata=metadata)
        with llmflow.scope("s", metadata=metadata):
            handle = llmflow.tool_call("t", {}, metadata=metadata)
            llmflow.tool_call_end(handle, None, metadata={"note": "sk-abcdefghijklmnopqrstu"})
    for event in events:
        text = event.to_json().decode()
        for secret in ("SECRET123", "abcdefghijkl", "sk-abcdefghijklmnopqrstu"):
            assert secret not in text
    assert events[0].metadata == {
        "url": f"https://h.example/p?token={REDACTED}",
        "auth": f"Bearer {REDACTED}",
    }


def test_a_registered_secret_pattern_is_scrubbed_and_unsafe_patterns_are_refused() -> None:
    register_secret_pattern(r"acme_[0-9a-f]{8}")
    with testing.capture() as events:
        llmflow.mark("m", metadata={"k": "id acme_0123abcd"})
    assert events[0].metadata == {"k": f"id {REDACTED}"}
    with pytest.raises(llmflow.InvalidParameterError, match=r"^pattern"):
        register_secret_pattern(r".*")
    with pytest.raises(llmflow.InvalidParameterError, match=r"^pattern"):
        register_secret_pattern(r"(unclosed")


def test_scrubbing_a_pattern_that_spans_quotes_still_records_valid_json() -> None:
    register_secret_pattern(r'k": "v')
    with testing.capture() as events:
        llmflow.mark("m", metadata={"k": "v", "other": 'k": "v'})
    assert events[0].metadata == {"k": "v", "other": REDACTED}


_pieces = st.sampled_from(
    [*"abkxyz0123=&-_ é", "sK-", "sk-", "BEARER ", "AIza", "ghp_", "AKIA", "key=", "Token="]
)
_secretish = st.lists(_pieces, max_size=30).map("".join)


@given(st.dictionaries(st.text(max_size=4), _secretish | st.lists(_secretish, max_size=2)))
def test_scrub_bytes_skips_only_snapshots_with_nothing_to_scrub(value: dict[str, Any]) -> None:
    """The quick trigger test of scrub_bytes never skips a value scrub_text would change."""
    raw = orjson.dumps(value)
    scrubbed = orjson.dumps(_credentials._scrub_value(value))
    assert _credentials.scrub_bytes(raw) == (raw if scrubbed == raw else scrubbed)
