"""How the transport reads headers and hands answers back: equal to httpx2's own reading."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
from hypothesis import given
from hypothesis import strategies as st

from llmflow.http import DEFAULT_ROUTES
from llmflow.http._exchange import _ANSWER_HEADERS, _header_dict, answer, answer_headers
from llmflow.http._routes import provider_name

_names = st.sampled_from(
    ["Content-Type", "content-type", "X-Request-Id", "x-request-id", "Retry-After",
     "retry-after-ms", "Content-Encoding", "request-id", "Apim-Request-Id", "X-Tag"]
)  # fmt: skip
_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=6)
_headers = st.lists(st.tuples(_names, _values), max_size=8)


def _latin1(items: list[tuple[str, str]]) -> httpx2.Headers:
    return httpx2.Headers([(k.encode("latin-1"), v.encode("latin-1")) for k, v in items])


@given(_headers)
def test_the_request_header_dict_is_httpx2s_items_in_order(items: list[tuple[str, str]]) -> None:
    headers = _latin1(items)
    expected = dict(headers.items())  # lower-case names, repeated values joined
    assert _header_dict(headers) == expected
    assert list(_header_dict(headers)) == list(expected)


def test_non_ascii_headers_are_decoded_with_the_headers_encoding() -> None:
    headers = httpx2.Headers([(b"X-Name", "Zoë".encode()), (b"x-name", b"b")])
    assert _header_dict(headers) == {"x-name": "Zoë, b"} == dict(headers.items())


@given(_headers)
def test_answer_headers_are_the_read_ones_as_httpx2_gets_them(
    items: list[tuple[str, str]],
) -> None:
    headers = _latin1(items)
    read = {name.decode() for name in _ANSWER_HEADERS}
    assert answer_headers(headers) == {k: v for k, v in headers.items() if k in read}


class _Streamed(httpx2.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b"never read"


def test_an_in_memory_answer_goes_back_as_it_came() -> None:
    response = httpx2.Response(200, headers={"x-a": "1"}, content=b"body")
    assert answer(response, b"body") is response
    assert response.read() == b"body"


def test_a_streamed_answer_goes_back_with_the_bytes_read_from_it() -> None:
    response = httpx2.Response(
        201, headers={"x-a": "1"}, stream=_Streamed(), extensions={"http_version": b"HTTP/1.1"}
    )
    sdk = answer(response, b"the provider's bytes")
    assert sdk is response
    assert (sdk.status_code, sdk.headers["x-a"], sdk.extensions) == (
        201,
        "1",
        {"http_version": b"HTTP/1.1"},
    )
    assert sdk.read() == b"the provider's bytes"


def test_the_provider_of_a_host_is_the_same_each_time_it_is_asked() -> None:
    route = DEFAULT_ROUTES[0]
    for _ in range(2):  # the second answer comes from the per-host cache
        assert provider_name("API.OpenAI.com", "/v1/chat/completions", {}, route) == "openai"
        assert provider_name("res.openai.azure.com", "/x", {}, route) == "azure.ai.openai"
        assert provider_name("localhost", "/v1/chat/completions", {}, route) == "openai"
        assert provider_name("localhost", "/v1/messages", {"anthropic-version": "1"}, route) == (
            "anthropic"
        )
        assert provider_name("localhost", "/openai/deployments/d/x", {}, route) == (
            "azure.ai.openai"
        )
