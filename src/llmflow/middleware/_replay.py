"""``replay``: answer LLM calls from the end events of a recorded ATOF log."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmflow import intercepts
from llmflow._errors import AtofParseError, FlowError
from llmflow._scope import Span
from llmflow._types import Json, LlmRequest
from llmflow.atof import parse_event
from llmflow.atof._reader import numbered_lines
from llmflow.middleware._recording import current_call, record_end
from llmflow.middleware._shapes import (
    BUILT_IN,
    ReplayedStream,
    codec_for_request,
    codec_for_response,
    rechunk,
    request_key,
)

__all__ = ["Replay", "ReplayError", "ReplayMissError", "replay"]


class ReplayError(FlowError):
    """The replay log is missing or unreadable, or a recorded call cannot be replayed."""


class ReplayMissError(ReplayError, LookupError):
    """No recorded answer for a request (with ``on_miss="error"``)."""


@dataclass(frozen=True, slots=True)
class _Recorded:
    line: int
    response: Json
    codec: Any | None
    error: tuple[str, str] | None


def _describe(request: LlmRequest) -> str:
    body = request.content if isinstance(request.content, dict) else {}
    model = body.get("model")
    text = ""
    messages = body.get("messages") or body.get("input")
    if isinstance(messages, list) and messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else last
        text = content if isinstance(content, str) else str(content)
    elif isinstance(messages, str):
        text = messages
    snippet = text if len(text) <= 60 else text[:57] + "..."
    return f"model {model!r}, last message {snippet!r}"


class Replay:
    """Execution and stream execution intercepts answering calls from a recorded log.

    Built by :func:`replay`; ``register()`` installs it globally or on a scope.
    ``used`` and ``remaining`` count the recorded calls.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        match: Literal["request", "order"] = "request",
        on_miss: Literal["error", "call"] = "error",
        codec: Any | None = None,
        name: str = "llmflow.replay",
    ) -> None:
        if match not in ("request", "order"):
            raise ValueError(f"match: expected 'request' or 'order', got {match!r}")
        if on_miss not in ("error", "call"):
            raise ValueError(f"on_miss: expected 'error' or 'call', got {on_miss!r}")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path: expected a path to an ATOF log, got {type(path).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty str, got {name!r}")
        self.path = os.fspath(path)
        self.match = match
        self.on_miss = on_miss
        self.codec = codec
        self.name = name
        self._lock = threading.Lock()
        self._scope: Span | None = None
        self._ordered: deque[_Recorded] = deque()
        self._by_key: dict[bytes, deque[_Recorded]] = {}
        self.recorded = 0
        """How many LLM calls the log holds."""
        self.used = 0
        """How many of them were replayed."""
        self._load(Path(path))

    # -- loading -----------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise ReplayError(f"path: replay log {self.path!r} does not exist or is not a file")
        starts: dict[str, tuple[int, dict[str, Any]]] = {}
        pairs: list[tuple[int, dict[str, Any], int, dict[str, Any]]] = []
        try:
            for number, raw in numbered_lines(path):
                wire = parse_event(raw, line_number=number).model_dump()
                if wire.get("kind") != "scope" or wire.get("category") != "llm":
                    continue
                if wire["scope_category"] == "start":
                    starts[wire["uuid"]] = (number, wire)
                else:
                    started = starts.pop(wire["uuid"], None)
                    if started is not None:
                        pairs.append((started[0], started[1], number, wire))
        except AtofParseError as exc:
            raise ReplayError(f"replay log {self.path!r}: {exc}") from exc
        except OSError as exc:
            raise ReplayError(f"replay log {self.path!r} cannot be read: {exc}") from exc
        pairs.sort(key=lambda p: p[0])  # the order the calls started in
        for _, start, end_line, end in pairs:
            recorded = self._recorded(start, end_line, end)
            self._ordered.append(recorded)
            if self.match == "request":
                key = self._start_key(start, end_line)
                self._by_key.setdefault(key, deque()).append(recorded)
        self.recorded = len(self._ordered)

    def _codec_of(self, event: dict[str, Any]) -> Any | None:
        schema = event.get("data_schema")
        name = schema.get("name") if isinstance(schema, dict) else None
        if self.codec is not None or not isinstance(name, str):
            return self.codec
        return BUILT_IN.get(name)

    def _start_key(self, start: dict[str, Any], line: int) -> bytes:
        data = start.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("content"), dict):
            raise ReplayError(
                f"replay log {self.path!r}: the LLM call ending on line {line} has no recorded "
                "request (was it sanitized away?); use match='order'"
            )
        request = LlmRequest(dict(data.get("headers") or {}), data["content"])
        codec = self._codec_of(start) or codec_for_request(request)
        return request_key(request, codec)

    def _recorded(self, start: dict[str, Any], line: int, end: dict[str, Any]) -> _Recorded:
        metadata = end.get("metadata") or {}
        error = None
        if "exception.type" in metadata:
            error = (str(metadata["exception.type"]), str(metadata.get("exception.message", "")))
        response = end.get("data")
        codec = self._codec_of(end) or self._codec_of(start) or codec_for_response(response)
        return _Recorded(line, response, codec, error)

    # -- registration ------------------------------------------------------------------

    def register(self, *, scope: Span | None = None, priority: int = -1000) -> Replay:
        """Register both intercepts (outermost by default), globally or on ``scope``."""
        intercepts.register_llm_execution(self.name, priority, self._execute, scope=scope)
        intercepts.register_llm_stream_execution(self.name, priority, self._stream, scope=scope)
        self._scope = scope
        return self

    def deregister(self) -> bool:
        """Remove both intercepts; return whether they were registered."""
        found = intercepts.deregister_llm_execution(self.name, scope=self._scope)
        intercepts.deregister_llm_stream_execution(self.name, scope=self._scope)
        return found

    @property
    def remaining(self) -> int:
        """Recorded calls not replayed yet."""
        return self.recorded - self.used

    # -- answering ---------------------------------------------------------------------

    def _take(self, request: LlmRequest) -> _Recorded | None:
        with self._lock:
            if self.match == "order":
                found = self._ordered.popleft() if self._ordered else None
            else:
                codec = self.codec or codec_for_request(request)
                queue = self._by_key.get(request_key(request, codec))
                found = queue.popleft() if queue else None
            if found is not None:
                self.used += 1
            return found

    def _miss(self, request: LlmRequest) -> ReplayMissError:
        codec = self.codec or codec_for_request(request)
        digest = hashlib.sha256(request_key(request, codec)).hexdigest()[:12]
        how = "by request" if self.match == "request" else "by order"
        return ReplayMissError(
            f"replay: no recorded answer ({how}) for the request to {_describe(request)} "
            f"[key {digest}] in {self.path!r} ({self.recorded} calls recorded, {self.used} "
            "replayed); record it again or use on_miss='call'"
        )

    def _answer(self, recorded: _Recorded) -> Json:
        if recorded.error is not None:
            kind, message = recorded.error
            raise ReplayError(
                f"replay: the recorded call on line {recorded.line} of {self.path!r} failed "
                f"with {kind}: {message}"
            )
        if recorded.response is None:
            raise ReplayError(
                f"replay: the recorded call on line {recorded.line} of {self.path!r} has no "
                "response data (omitted by a sanitizer?)"
            )
        return recorded.response

    def _source(self, recorded: _Recorded) -> str:
        return f"{self.path}:{recorded.line}"

    def _execute(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        call = current_call()
        recorded = self._take(request)
        if recorded is None:
            if self.on_miss == "call":
                return next_(request)
            raise self._miss(request)
        record_end("replay", call, {"replay.source": self._source(recorded)})
        return self._answer(recorded)

    def _stream(self, request: LlmRequest, next_: Callable[..., Any]) -> Any:
        call = current_call()
        recorded = self._take(request)
        if recorded is None:
            if self.on_miss == "call":
                return next_(request)
            raise self._miss(request)
        record_end("replay", call, {"replay.source": self._source(recorded)})
        response = self._answer(recorded)
        try:
            chunks = rechunk(response, recorded.codec)
        except TypeError as exc:
            raise ReplayError(
                f"replay: cannot re-stream the call recorded on line {recorded.line} of "
                f"{self.path!r}: {exc}"
            ) from exc
        return ReplayedStream(chunks)


def replay(
    path: str | os.PathLike[str],
    *,
    match: Literal["request", "order"] = "request",
    on_miss: Literal["error", "call"] = "error",
    codec: Any | None = None,
    name: str = "llmflow.replay",
) -> Replay:
    """Load an ATOF log and return the :class:`Replay` that answers calls from it.

    Each recorded LLM call (a start/end pair) answers one call: with
    ``match="request"`` the one whose codec-normalized request is the same
    (identical requests are answered in recorded order), with ``match="order"``
    the next one in the order the recorded calls started. The answer is the
    recorded response (the end event's ``data``); a streamed call gets it
    re-chunked as the provider's stream (logs hold folded responses only). A
    recorded failure is raised as :class:`ReplayError`. A miss raises
    :class:`ReplayMissError` naming the request, or with ``on_miss="call"``
    makes the real call. Replayed calls record ``replay.source``
    (``path:line`` of the end event). A missing log or a malformed line raises
    :class:`ReplayError` naming the path and the line. Call ``register()`` on
    the result to install it.
    """
    return Replay(path, match=match, on_miss=on_miss, codec=codec, name=name)
