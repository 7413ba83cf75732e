"""One HTTP attempt on a provider route: what the sync and async transports share.

An :class:`Exchange` turns the SDK's wire request into an ``LlmRequest``,
rebuilds the wire request only when middleware changed it, reads the
provider's answer (JSON or SSE) into what the pipeline records, and builds
the response the SDK receives: the provider's own bytes, a guardrail's
synthesized 400, or what an execution intercept answered instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import httpx2
import orjson

from llmflow._call import Call
from llmflow._credentials import strip_credentials
from llmflow._errors import CodecError, GuardrailRejected
from llmflow._families import LLM_STREAM_EXECUTION, chain
from llmflow._runtime import Runtime
from llmflow._scope import current_span
from llmflow._stream import add_end_metadata, codec_fold
from llmflow._types import Json, JsonObject, LlmRequest
from llmflow.codecs import AnthropicMessagesCodec
from llmflow.http._errors import ProviderHTTPError
from llmflow.http._routes import Route, provider_name
from llmflow.http._sse import encode_event

__all__ = ["RAW_BODY", "RECORDED", "Exchange", "embedding_summary", "is_sse", "parse_body"]

RECORDED: Final = "llmflow.recorded"
"""Request extension set by the transport that records a request (no second record)."""
RAW_BODY: Final = "llmflow.raw_body"
"""Content key holding a request body that is not a JSON object."""

_UNSET: Final[Any] = object()
SKIP: Final[Any] = object()
_REQUEST_ID_HEADERS: Final = ("x-request-id", "request-id", "apim-request-id")
_RESPONSE_KEYS: Final = frozenset(
    {
        "http.status_code",
        "provider.request_id",
        "http.retry_after",
        "http.error_body",
        "provider.error_code",
    }
)
"""What one HTTP answer says: an attempt retried inside the call replaces them all."""
_DONE_FRAME: Final = b"data: [DONE]\n\n"
_ERROR_BODY_CHARS: Final = 4096


def _ignore(chunk: Json) -> None:
    pass


def current_call() -> Call | None:
    """The LLM call whose execution chain is running (the transport's send runs in it)."""
    span = current_span()
    return span if isinstance(span, Call) else None


def _header_dict(headers: httpx2.Headers) -> dict[str, str]:
    """``dict(headers)`` (lower-case names, repeated ones joined), at a fraction of its cost.

    Read as ASCII first, which HTTP headers are (for ASCII bytes every
    encoding ``headers.encoding`` can name decodes alike); only headers that
    are not ASCII pay for that property, which decodes every header to choose.
    """
    raw = headers.raw
    try:
        result = {key.lower().decode("ascii"): value.decode("ascii") for key, value in raw}
        encoding = "ascii"
    except UnicodeDecodeError:
        encoding = headers.encoding
        result = {key.lower().decode(encoding): value.decode(encoding) for key, value in raw}
    if len(result) < len(raw):  # a repeated header: its values joined, in order
        result = {}
        for key, value in raw:
            name, text = key.lower().decode(encoding), value.decode(encoding)
            result[name] = f"{result[name]}, {text}" if name in result else text
    return result


def _json_object(body: bytes) -> JsonObject | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


_ANSWER_HEADERS: Final = frozenset(
    name.encode()
    for name in (*_REQUEST_ID_HEADERS, "retry-after", "retry-after-ms", "content-encoding")
)


def answer_headers(headers: httpx2.Headers) -> dict[str, str]:
    """The response headers the record reads (request id, Retry-After, Content-Encoding).

    Lower-case names, repeated ones joined as ``dict(headers)`` joins them: one
    pass over the raw headers, where each ``headers.get`` would be one.
    """
    found: dict[str, str] = {}
    for key, value in headers.raw:
        name = key.lower()
        if name in _ANSWER_HEADERS:
            encoding = headers.encoding
            text, value_text = name.decode(encoding), value.decode(encoding)
            found[text] = f"{found[text]}, {value_text}" if text in found else value_text
    return found


def answer(response: httpx2.Response, raw: bytes) -> httpx2.Response:
    """The inner transport's response, for the SDK, after its body was read into ``raw``.

    A body already in memory (an ``httpx2.ByteStream``: ``MockTransport``, a
    cache) replays itself, so the response goes back as it came; a streamed one
    gets ``raw`` as its stream. Either way the SDK reads the provider's bytes,
    with the provider's status, headers and extensions, as from a new response.
    """
    if not isinstance(response.stream, httpx2.ByteStream):
        response.stream = httpx2.ByteStream(raw)
    return response


def parse_body(raw: bytes, headers: httpx2.Headers, read: dict[str, str] | None = None) -> Json:
    """The response body as JSON, else as text (the raw payload is kept either way).

    ``read`` is :func:`answer_headers` of ``headers`` when the caller has it.
    """
    if "content-encoding" in (headers if read is None else read):
        raw = httpx2.Response(200, headers=headers, stream=httpx2.ByteStream(raw)).read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def is_sse(response: httpx2.Response) -> bool:
    """A successful, unencoded ``text/event-stream`` response (read event by event)."""
    headers = response.headers
    return (
        response.status_code < 400
        and headers.get("content-type", "").startswith("text/event-stream")
        and headers.get("content-encoding", "identity") == "identity"
    )


class Exchange:
    """The state of one HTTP attempt on a provider route."""

    __slots__ = (
        "body",
        "call",
        "content",
        "fold",
        "headers",
        "live",
        "llm_request",
        "metadata",
        "own",
        "own_raw",
        "parsed",
        "raw",
        "request",
        "result",
        "route",
        "runtime",
        "sdk_response",
        "streaming",
        "tail",
        "text_slot",
        "whole",
    )

    def __init__(self, route: Route, request: httpx2.Request, body: bytes, runtime: Runtime):
        self.route = route
        self.request = request
        self.body = body
        self.runtime = runtime
        headers = _header_dict(request.headers)
        content = _json_object(body)
        self.parsed = content is not None
        if content is None:
            self.codec_failure(CodecError("the request body is not a JSON object; sent unchanged"))
            content = {RAW_BODY: body.decode("utf-8", "backslashreplace")}
        self.headers = headers
        self.content = content
        self.llm_request = LlmRequest(headers, content)
        metadata: JsonObject = {}
        provider = provider_name(request.url.host, request.url.path, headers, route)
        if provider is not None:
            metadata["provider.name"] = provider
        attempt = headers.get("x-stainless-retry-count")
        if attempt is not None and attempt.isdigit():
            metadata["http.attempt"] = int(attempt)
        self.metadata = metadata
        self.streaming = self.parsed and content.get("stream") is True
        self.call: Call | None = None
        self.result: Any = _UNSET
        self.sdk_response: httpx2.Response | None = None
        self.whole: Any = _UNSET
        self.live: httpx2.Response | None = None
        self.own: Any = None
        self.own_raw = b""
        self.tail = b""
        self.raw = False
        self.fold: Callable[[Json], object] = _ignore

    # -- the pipeline's view ----------------------------------------------------------

    @property
    def codec(self) -> Any:
        """The route's codec, unless the body is not JSON (then nothing is decoded)."""
        return self.route.codec if self.parsed else None

    def codec_failure(self, exc: Exception) -> None:
        codec = self.route.codec
        name = codec.data_schema.name if codec is not None else self.route.name
        self.runtime.count_failure(f"codec:{name}", exc)

    def event_request(self) -> JsonObject:
        """The request as an event records it (credential headers stripped)."""
        return {"headers": strip_credentials(self.headers), "content": self.content}

    def wire(self, request: LlmRequest) -> httpx2.Request:
        """The HTTP request to send: the SDK's own unless middleware changed it."""
        if request is self.llm_request:
            return self.request
        same_content = request.content is self.content or request.content == self.content
        if same_content and request.headers == self.headers:
            return self.request
        body = self.body if same_content or not self.parsed else orjson.dumps(request.content)
        headers = httpx2.Headers(self.request.headers)
        for key in list(headers.keys()):
            if key not in request.headers and key.lower() not in request.headers:
                del headers[key]
        for key, value in request.headers.items():
            if headers.get(key) != value:
                headers[key] = value
        headers["content-length"] = str(len(body))
        return httpx2.Request(
            self.request.method,
            self.request.url,
            headers=headers,
            content=body,
            extensions=self.request.extensions,
        )

    # -- answers ----------------------------------------------------------------------

    def response_metadata(
        self, response: httpx2.Response, parsed: Json, headers: dict[str, str] | None = None
    ) -> JsonObject:
        """What the record says of an HTTP answer: status, request id, Retry-After, error.

        ``headers`` is :func:`answer_headers` of the response when the caller has it.
        """
        if headers is None:
            headers = answer_headers(response.headers)
        metadata: JsonObject = {"http.status_code": response.status_code}
        for name in _REQUEST_ID_HEADERS:
            if (request_id := headers.get(name)) is not None:
                metadata["provider.request_id"] = request_id
                break
        retry_after = headers.get("retry-after") or headers.get("retry-after-ms")
        if retry_after is not None:
            metadata["http.retry_after"] = retry_after
        if response.status_code >= 400:
            # In metadata, not in the end ``data``: readers of LLM outputs (the
            # ATIF converter) expect a response there, and a failed call has none.
            metadata["http.error_body"] = (
                parsed[:_ERROR_BODY_CHARS] if isinstance(parsed, str) else parsed
            )
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict):
                code = error.get("code") or error.get("type")
                if isinstance(code, str):
                    metadata["provider.error_code"] = code
        return metadata

    def received(self, response: httpx2.Response, raw: bytes, call: Call | None) -> Json:
        """Record a whole (non-SSE) answer; return it parsed, or raise on an error status.

        The SDK will get a response carrying exactly ``raw`` (see :func:`answer`);
        an error status raises :class:`ProviderHTTPError` (holding that response)
        so execution intercepts see it, and records the error body as the end ``data``.
        """
        headers = answer_headers(response.headers)
        parsed = parse_body(raw, response.headers, headers)
        sdk = answer(response, raw)
        if call is not None:
            metadata = self.response_metadata(response, parsed, headers)
            add_end_metadata(call, metadata, replace=_RESPONSE_KEYS)
        if response.status_code >= 400:
            raise ProviderHTTPError(response.status_code, response.headers, raw, sdk)
        self.check_shape(parsed)
        self.result, self.sdk_response = parsed, sdk
        return parsed

    def check_shape(self, parsed: Json) -> None:
        """Count an answer that is JSON but not the provider's shape (lenient codecs accept it)."""
        key = self.route.response_key
        if key is not None and isinstance(parsed, dict) and key not in parsed:
            self.codec_failure(CodecError(f"the response has no {key!r}; not this API's shape"))

    def response_for(self, result: Json) -> httpx2.Response:
        """What the SDK gets for the pipeline's result."""
        if result is self.result and self.sdk_response is not None:
            return self.sdk_response
        # An execution intercept answered without the provider (a cache, a replay).
        return httpx2.Response(
            200, headers={"content-type": "application/json"}, content=orjson.dumps(result)
        )

    @staticmethod
    def error_response(exc: ProviderHTTPError) -> httpx2.Response:
        """The provider's original error response, for the SDK to raise its own error."""
        if exc.response is not None:
            return exc.response
        return httpx2.Response(exc.status_code, headers=exc.headers, content=exc.body)

    def rejection(self, exc: GuardrailRejected) -> httpx2.Response:
        """A 400 in the provider's error shape naming the guardrail; SDKs never retry it."""
        message = f"llmflow guardrail {exc.guardrail!r} rejected the request: {exc.reason}"
        body: JsonObject
        if isinstance(self.route.codec, AnthropicMessagesCodec):
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        else:
            body = {
                "error": {
                    "message": message,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "llmflow_guardrail_rejected",
                }
            }
        return httpx2.Response(
            400,
            headers={"content-type": "application/json", "x-should-retry": "false"},
            content=orjson.dumps(body),
        )

    # -- streams ----------------------------------------------------------------------

    def stream_callbacks(self) -> tuple[Callable[[Json], object], Callable[[], Json]]:
        """Collector and finalizer: the codec folds SSE chunks; a whole body is itself.

        In raw mode (:meth:`use_raw`) the stream's items are the provider's event
        bytes and the transport folds each event's chunk itself (:attr:`fold`)
        as it relays it; the collector then ignores the bytes. :attr:`text_slot`
        is the accumulator's ``text_slot`` when it has one (the transport's fast
        path for chunks that only add text).
        """
        codec = self.codec
        self.text_slot: Callable[[Json], Any] | None = None
        if codec is None:
            chunks: list[Json] = []
            collect: Callable[[Json], object] = chunks.append
            fold: Callable[[], Json] = lambda: chunks  # noqa: E731
        else:
            accumulator, collect = codec_fold(self.runtime, codec)
            fold = accumulator.finalize
            self.text_slot = getattr(accumulator, "text_slot", None)
        self.fold = collect

        def finalize() -> Json:
            return fold() if self.whole is _UNSET else self.whole

        return self.collect, finalize

    def collect(self, chunk: Json) -> None:
        """The stream's collector: folds an intercept's chunk; raw bytes are folded already."""
        if not self.raw:
            self.fold(chunk)

    def use_raw(self) -> bool:
        """Relay the provider's event bytes and parse them at the end, or parse as they come.

        Raw when no stream execution intercept needs parsed chunks. Decided as
        the provider stream opens, by the same chain lookup that (with nothing
        in it) called for that stream.
        """
        self.raw = not chain(self.runtime, LLM_STREAM_EXECUTION)
        return self.raw

    def started_stream(self, response: httpx2.Response) -> None:
        self.live = response
        if self.call is not None:
            add_end_metadata(
                self.call, self.response_metadata(response, None), replace=_RESPONSE_KEYS
            )

    def chunk_of(self, data: bytes | None) -> Any:
        """The JSON chunk of one SSE event's data, or :data:`SKIP` (counted when malformed)."""
        if data is None or data.startswith(b"[DONE]"):
            return SKIP
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            self.codec_failure(CodecError(f"malformed SSE frame: {data[:80]!r}"))
            return SKIP

    def frame(self, chunk: Any) -> bytes:
        """The bytes the SDK gets for a chunk: the provider's own, or an encoding of a new one."""
        if chunk is self.own:
            self.own = None
            return self.own_raw
        return encode_event(chunk, self.route.named_events)

    def take_tail(self) -> bytes:
        if self.live is None and not self.route.named_events:
            return _DONE_FRAME  # a stream an intercept produced: end it as OpenAI does
        tail, self.tail = self.tail, b""
        return tail

    def relay_response(
        self, stream: httpx2.SyncByteStream | httpx2.AsyncByteStream
    ) -> httpx2.Response:
        live = self.live
        if live is None:  # an intercept produced the stream without the provider
            return httpx2.Response(
                200, headers={"content-type": "text/event-stream"}, stream=stream
            )
        return httpx2.Response(
            live.status_code, headers=live.headers, stream=stream, extensions=live.extensions
        )


def embedding_summary(parsed: Json) -> Json:
    """An embeddings response without its vectors: model, usage and each vector's size."""
    if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), list):
        return parsed
    data = []
    for item in parsed["data"]:
        if isinstance(item, dict):
            vector = item.get("embedding")
            kept = {k: v for k, v in item.items() if k != "embedding"}
            if isinstance(vector, list):
                kept["dimensions"] = len(vector)
            elif isinstance(vector, str):
                kept["base64_chars"] = len(vector)
            data.append(kept)
    return {**parsed, "data": data}
