"""``FakeProvider``: a real loopback HTTP server speaking the provider APIs.

It answers OpenAI Chat Completions (``…/chat/completions``, also Azure's
``…/deployments/{d}/chat/completions``), OpenAI Responses (``…/responses``),
Anthropic Messages (``…/messages``) and embeddings (``…/embeddings``), as JSON
or, when the request body says ``"stream": true``, as server-sent events in
each API's own event format. Replies are scripted in order with
:meth:`FakeProvider.script`; with nothing scripted it echoes the last user
message. It binds 127.0.0.1 on an ephemeral port and never any other address.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import orjson

__all__ = [
    "Drop",
    "ErrorReply",
    "FakeProvider",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ToolCall",
]

_CREATED = 1_763_700_000


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call the scripted model asks for; ``arguments`` is sent as JSON."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer, rendered in the shape of the API that was called.

    ``usage`` uses neutral keys: ``input_tokens``, ``output_tokens``,
    ``cached_tokens``, ``reasoning_tokens``. ``chunks`` is how many text
    deltas a stream carries (default: one per word); ``delay`` is slept before
    the response headers, ``chunk_delay`` between stream events. ``headers``
    are added to the response.
    """

    text: str | None = "Hello from FakeProvider."
    tool_calls: Sequence[ToolCall] = ()
    usage: Mapping[str, int] | None = None
    model: str | None = None
    chunks: int | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An HTTP error in the provider's own error JSON shape.

    ``retry_after`` becomes the ``Retry-After`` header when given.
    """

    status: int = 500
    message: str = "The server had an error while processing your request."
    retry_after: str | None = None
    code: str | None = None
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RawReply:
    """Exactly these bytes, status and headers (for malformed or unusual responses).

    With ``chunked`` the body is sent as one HTTP chunk per item of ``parts``
    (``body`` is then ignored), the way an SSE stream arrives.
    """

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    parts: Sequence[bytes] = ()
    chunked: bool = False


@dataclass(frozen=True, slots=True)
class Drop:
    """Close the connection: before any response, or after ``after_events`` stream events."""

    after_events: int | None = None


Script = Reply | ErrorReply | RawReply | Drop


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the server received, as it arrived on the socket."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return orjson.loads(self.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that hung up (a dropped test client, a stop()): not an error
        super().handle_error(request, client_address)


class FakeProvider:
    """A loopback provider server for tests, demos and benchmarks.

    ``start()`` binds 127.0.0.1 on a free port and serves from a background
    thread; ``stop()`` closes the listener and every open connection. Use it as
    a context manager. ``base_url`` is ``http://127.0.0.1:PORT`` (append
    ``/v1`` for OpenAI clients); ``requests`` lists what it received.
    Scripted replies are consumed in order by the provider routes; with none
    left the server answers ``default`` (by default it echoes the last user
    message). ``record=False`` keeps ``requests`` empty (long benchmarks).
    """

    def __init__(self, *, default: Reply | None = None, record: bool = True) -> None:
        if default is not None and not isinstance(default, Reply):
            raise TypeError(f"default: expected a Reply or None, got {type(default).__name__}")
        self.default = default if default is not None else Reply(text=None)
        """The reply when nothing is scripted (``Reply(text=None)``: echo the user)."""
        self.requests: list[RecordedRequest] = []
        self.record = record
        self._script: deque[Script] = deque()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Start serving; returns ``self``. Starting twice raises ``RuntimeError``."""
        if self._server is not None:
            raise RuntimeError("FakeProvider is already started")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="llmflow-fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close open connections (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port; ``RuntimeError`` when not started."""
        if self._server is None:
            raise RuntimeError("FakeProvider is not started; call start() first")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting ------------------------------------------------------------------

    def script(self, *replies: Script) -> FakeProvider:
        """Queue replies, answered in order by the next provider requests."""
        for reply in replies:
            if not isinstance(reply, (Reply, ErrorReply, RawReply, Drop)):
                raise TypeError(
                    "replies: expected Reply, ErrorReply, RawReply or Drop, "
                    f"got {type(reply).__name__}"
                )
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """How many scripted replies are still unanswered."""
        with self._lock:
            return len(self._script)

    def _next(self) -> Script | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _record(self, request: RecordedRequest) -> None:
        if not self.record:
            return
        with self._lock:
            self.requests.append(request)

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _new_id(self) -> int:
        return next(self._ids)


# -- the request handler ------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return  # a test server stays quiet

    def setup(self) -> None:
        super().setup()
        # Headers and body are separate writes: without this, Nagle's algorithm
        # and the client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.provider._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.provider._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        provider = self.server.provider
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        provider._record(
            RecordedRequest(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )
        path = self.path.split("?", 1)[0].rstrip("/")
        api = _api_of(path)
        if self.command != "POST" or api is None:
            self._send_json(404, {"error": {"message": f"no route {self.command} {path}"}}, {})
            return
        reply = provider._next() or provider.default
        try:
            parsed = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            parsed = {}
        if not isinstance(parsed, dict):
            parsed = {}
        if isinstance(reply, Drop):
            if reply.after_events is None:
                self._drop()
                return
            reply_: Script = Reply(text=None)
        else:
            reply_ = reply
        if isinstance(reply_, RawReply):
            self._send_raw(reply_)
            return
        if isinstance(reply_, ErrorReply):
            provider._sleep(reply_.delay)
            self._send_error(api, reply_)
            return
        assert isinstance(reply_, Reply)
        provider._sleep(reply_.delay)
        if reply_.text is None and not reply_.tool_calls:
            reply_ = _echo(api, parsed, reply_)
        n = provider._new_id()
        model = reply_.model or str(parsed.get("model") or "fake-model")
        headers = {_REQUEST_ID_HEADER[api]: f"req_fake_{n}", **reply_.headers}
        if api == "embeddings":
            self._send_json(200, _embeddings(parsed, model), headers)
            return
        drop_after = reply.after_events if isinstance(reply, Drop) else None
        if parsed.get("stream") is True:
            events = _STREAMS[api](reply_, model, n, parsed)
            self._send_sse(events, headers, reply_.chunk_delay, drop_after)
        else:
            self._send_json(200, _BODIES[api](reply_, model, n), headers)

    # -- writers --------------------------------------------------------------------

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_raw(self, reply: RawReply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        if reply.chunked:
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for part in reply.parts:
                self._write_chunk(part)
            self._write_chunk(b"")
            return
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)
        self.wfile.flush()

    def _send_error(self, api: str, reply: ErrorReply) -> None:
        n = self.server.provider._new_id()
        headers = {_REQUEST_ID_HEADER[api]: f"req_fake_{n}", **reply.headers}
        if reply.retry_after is not None:
            headers["retry-after"] = reply.retry_after
        self._send_json(reply.status, _error_body(api, reply, n), headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _send_sse(
        self,
        events: Iterator[bytes],
        headers: Mapping[str, str],
        chunk_delay: float,
        drop_after: int | None,
    ) -> None:
        provider = self.server.provider
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()
        try:
            for sent, event in enumerate(events):
                if drop_after is not None and sent >= drop_after:
                    self._drop()
                    return
                if sent and chunk_delay:
                    provider._sleep(chunk_delay)
                self._write_chunk(event)
            self._write_chunk(b"")
        except OSError:  # the client went away mid-stream
            self.close_connection = True


# -- API shapes ---------------------------------------------------------------------


def _api_of(path: str) -> str | None:
    for suffix, api in _SUFFIXES:
        if path.endswith(suffix):
            return api
    return None


_SUFFIXES = (
    ("/chat/completions", "chat"),
    ("/responses", "responses"),
    ("/messages", "messages"),
    ("/embeddings", "embeddings"),
)
_REQUEST_ID_HEADER = {
    "chat": "x-request-id",
    "responses": "x-request-id",
    "embeddings": "x-request-id",
    "messages": "request-id",
}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        ).strip()
    return ""


def _echo(api: str, body: dict[str, Any], reply: Reply) -> Reply:
    if api == "responses":
        given = body.get("input")
        items = given if isinstance(given, list) else [{"role": "user", "content": given}]
    else:
        messages = body.get("messages")
        items = messages if isinstance(messages, list) else []
    last = ""
    for item in items:
        if isinstance(item, dict) and item.get("role") == "user":
            last = _text_of(item.get("content"))
    return replace(reply, text=f"echo: {last}")


def _usage(reply: Reply) -> tuple[int, int, int, int]:
    given = reply.usage or {}
    words = len((reply.text or "").split()) + 8 * len(reply.tool_calls)
    return (
        int(given.get("input_tokens", 12)),
        int(given.get("output_tokens", max(words, 1))),
        int(given.get("cached_tokens", 0)),
        int(given.get("reasoning_tokens", 0)),
    )


def _pieces(text: str, chunks: int | None) -> list[str]:
    if not text:
        return []
    if chunks is None:
        words = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]
    size = max(1, -(-len(text) // max(chunks, 1)))
    out = [text[i : i + size] for i in range(0, len(text), size)]
    while len(out) < chunks:  # a short text still streams the asked number of deltas
        out.append("")
    return out


def _call_id(call: ToolCall, n: int, i: int, prefix: str) -> str:
    return call.id or f"{prefix}_fake_{n}_{i}"


def _arguments(call: ToolCall) -> str:
    return orjson.dumps(dict(call.arguments)).decode()


def _sse(data: Any, event: str | None = None) -> bytes:
    head = b"" if event is None else b"event: " + event.encode() + b"\n"
    return head + b"data: " + orjson.dumps(data) + b"\n\n"


# OpenAI Chat Completions


def _chat_usage(reply: Reply) -> dict[str, Any]:
    inp, out, cached, reasoning = _usage(reply)
    return {
        "prompt_tokens": inp,
        "completion_tokens": out,
        "total_tokens": inp + out,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def _chat_body(reply: Reply, model: str, n: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(c, n, i, "call"),
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(c)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-fake-{n}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": _chat_usage(reply),
    }


def _chat_stream(reply: Reply, model: str, n: int, body: dict[str, Any]) -> Iterator[bytes]:
    head = {"id": f"chatcmpl-fake-{n}", "object": "chat.completion.chunk", "created": _CREATED}
    head["model"] = model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**head, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""})
    for piece in _pieces(reply.text or "", reply.chunks):
        yield chunk({"content": piece})
    for i, call in enumerate(reply.tool_calls):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": _call_id(call, n, i, "call"),
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        for piece in _pieces(_arguments(call), 2):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        yield _sse({**head, "choices": [], "usage": _chat_usage(reply)})
    yield b"data: [DONE]\n\n"


# OpenAI Responses


def _responses_usage(reply: Reply) -> dict[str, Any]:
    inp, out, cached, reasoning = _usage(reply)
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def _responses_items(reply: Reply, n: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if reply.text is not None:
        items.append(
            {
                "type": "message",
                "id": f"msg_fake_{n}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    for i, call in enumerate(reply.tool_calls):
        items.append(
            {
                "type": "function_call",
                "id": f"fc_fake_{n}_{i}",
                "call_id": _call_id(call, n, i, "call"),
                "name": call.name,
                "arguments": _arguments(call),
                "status": "completed",
            }
        )
    return items


def _responses_body(reply: Reply, model: str, n: int, status: str = "completed") -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": f"resp_fake_{n}",
        "object": "response",
        "created_at": _CREATED,
        "status": status,
        "model": model,
        "output": _responses_items(reply, n) if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "usage": _responses_usage(reply) if done else None,
    }


def _responses_stream(reply: Reply, model: str, n: int, body: dict[str, Any]) -> Iterator[bytes]:
    seq = itertools.count()

    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **fields}, kind)

    yield event("response.created", response=_responses_body(reply, model, n, "in_progress"))
    yield event("response.in_progress", response=_responses_body(reply, model, n, "in_progress"))
    for index, item in enumerate(_responses_items(reply, n)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            empty = {**item, "status": "in_progress", "content": []}
            yield event("response.output_item.added", output_index=index, item=empty)
            part = {"type": "output_text", "text": "", "annotations": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            yield event("response.content_part.added", **ids, part=part)
            for piece in _pieces(text, reply.chunks):
                yield event("response.output_text.delta", **ids, delta=piece, logprobs=[])
            yield event("response.output_text.done", **ids, text=text, logprobs=[])
            yield event("response.content_part.done", **ids, part={**part, "text": text})
        else:
            empty = {**item, "status": "in_progress", "arguments": ""}
            yield event("response.output_item.added", output_index=index, item=empty)
            for piece in _pieces(item["arguments"], 2):
                yield event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=piece,
                )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=_responses_body(reply, model, n))


# Anthropic Messages


def _anthropic_usage(reply: Reply) -> dict[str, Any]:
    inp, out, cached, _ = _usage(reply)
    return {
        "input_tokens": inp - cached,
        "output_tokens": out,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _anthropic_blocks(reply: Reply, n: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if reply.text is not None:
        blocks.append({"type": "text", "text": reply.text})
    for i, call in enumerate(reply.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": _call_id(call, n, i, "toolu"),
                "name": call.name,
                "input": dict(call.arguments),
            }
        )
    return blocks


def _messages_body(reply: Reply, model: str, n: int) -> dict[str, Any]:
    return {
        "id": f"msg_fake_{n}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _anthropic_blocks(reply, n),
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": _anthropic_usage(reply),
    }


def _messages_stream(reply: Reply, model: str, n: int, body: dict[str, Any]) -> Iterator[bytes]:
    def event(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, **fields}, kind)

    usage = _anthropic_usage(reply)
    start = {**_messages_body(reply, model, n), "content": [], "stop_reason": None}
    start["usage"] = {**usage, "output_tokens": 1}
    yield event("message_start", message=start)
    yield event("ping")
    for index, block in enumerate(_anthropic_blocks(reply, n)):
        if block["type"] == "text":
            yield event(
                "content_block_start", index=index, content_block={"type": "text", "text": ""}
            )
            for piece in _pieces(block["text"], reply.chunks):
                yield event(
                    "content_block_delta", index=index, delta={"type": "text_delta", "text": piece}
                )
        else:
            opened = {**block, "input": {}}
            yield event("content_block_start", index=index, content_block=opened)
            for piece in _pieces(orjson.dumps(block["input"]).decode(), 2):
                yield event(
                    "content_block_delta",
                    index=index,
                    delta={"type": "input_json_delta", "partial_json": piece},
                )
        yield event("content_block_stop", index=index)
    yield event(
        "message_delta",
        delta={
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
        },
        usage={"output_tokens": usage["output_tokens"]},
    )
    yield event("message_stop")


# Embeddings


def _embeddings(body: dict[str, Any], model: str) -> dict[str, Any]:
    given = body.get("input")
    inputs = given if isinstance(given, list) else [given]
    data = []
    for index, text in enumerate(inputs):
        seed = sum(str(text).encode()) % 97
        vector = [((seed + k) % 11) / 10.0 for k in range(8)]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(str(t).split()) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# Errors


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: str, reply: ErrorReply, n: int) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(reply.status, "api_error" if api == "messages" else "server_error")
    if api == "messages":
        return {
            "type": "error",
            "error": {"type": kind, "message": reply.message},
            "request_id": f"req_fake_{n}",
        }
    return {
        "error": {
            "message": reply.message,
            "type": kind,
            "param": None,
            "code": reply.code or ("rate_limit_exceeded" if reply.status == 429 else None),
        }
    }


_BODIES = {"chat": _chat_body, "responses": _responses_body, "messages": _messages_body}
_STREAMS = {"chat": _chat_stream, "responses": _responses_stream, "messages": _messages_stream}
