"""Which built-in codec a payload belongs to, and a folded response as a stream again.

Execution intercepts receive the raw request and response, not the call's
codec, so the middleware that needs the normalized view (cost settling, cache
keys, replay matching) recognises the provider API from the payload's shape.
Each piece also takes an explicit ``codec=`` for custom providers.

``rechunk`` is the inverse of the built-in stream accumulators: it turns a
folded response back into a provider stream whose folding gives the same
response. It is how a cached or logged stream (stored folded) is replayed.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import orjson

from llmflow._json import json_form_or_value
from llmflow._types import Json, JsonObject, LlmRequest
from llmflow.codecs import (
    AnthropicMessagesCodec,
    OpenAIChatCodec,
    OpenAIResponsesCodec,
)

__all__ = [
    "ANTHROPIC",
    "BUILT_IN",
    "CHAT",
    "RESPONSES",
    "ReplayedStream",
    "StreamTap",
    "carries_usage",
    "codec_for_chunk",
    "codec_for_request",
    "codec_for_response",
    "normalized_request",
    "rechunk",
    "tap",
]

CHAT = OpenAIChatCodec()
RESPONSES = OpenAIResponsesCodec()
ANTHROPIC = AnthropicMessagesCodec()
BUILT_IN: dict[str, Any] = {c.data_schema.name: c for c in (CHAT, RESPONSES, ANTHROPIC)}
"""The built-in codecs by ``data_schema`` name."""

# Body fields that identify the caller or steer bookkeeping, not the answer.
_NOT_PART_OF_THE_QUESTION = frozenset(
    {
        "user",
        "metadata",
        "store",
        "stream",
        "stream_options",
        "safety_identifier",
        "prompt_cache_key",
        "service_tier",
    }
)


def codec_for_request(request: LlmRequest) -> Any | None:
    """The built-in codec of ``request`` (by headers and body shape), or ``None``."""
    body = request.content
    if not isinstance(body, dict):
        return None
    if any(isinstance(k, str) and k.lower() == "anthropic-version" for k in request.headers):
        return ANTHROPIC
    if "input" in body and "messages" not in body:
        return RESPONSES
    if "messages" in body:
        if "system" in body or (
            "max_tokens" in body and "max_completion_tokens" not in body and _typed_blocks(body)
        ):
            return ANTHROPIC
        return CHAT
    return None


def _typed_blocks(body: Mapping[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result", "thinking")
            for b in content
        ):
            return True
    return False


def codec_for_response(response: Json) -> Any | None:
    """The built-in codec of a provider response (by shape), or ``None``."""
    body = json_form_or_value(response)
    if not isinstance(body, dict):
        return None
    kind = body.get("object")
    if kind == "chat.completion" or "choices" in body:
        return CHAT
    if kind == "response" or ("output" in body and "status" in body):
        return RESPONSES
    if body.get("type") == "message":
        return ANTHROPIC
    return None


def codec_for_chunk(chunk: Json) -> Any | None:
    """The built-in codec of one stream chunk (by shape), or ``None``."""
    body = json_form_or_value(chunk)
    if not isinstance(body, dict):
        return None
    if body.get("object") == "chat.completion.chunk" or "choices" in body:
        return CHAT
    kind = body.get("type")
    if isinstance(kind, str):
        if kind.startswith("response."):
            return RESPONSES
        if kind.startswith(("message_", "content_block_")) or kind == "ping":
            return ANTHROPIC
    return None


_USAGE_EVENTS = frozenset(
    {
        "message_start",
        "message_delta",
        "response.created",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)


def carries_usage(chunk: Json, first: bool) -> bool:
    """Whether a built-in stream's ``chunk`` says anything about model or usage.

    Folding only these chunks gives a response whose annotation has the
    stream's model and usage, at a fraction of the cost of folding the text.
    """
    body = chunk if type(chunk) is dict else json_form_or_value(chunk)
    if not isinstance(body, dict):
        return False
    if first or body.get("usage") is not None:
        return True
    return body.get("type") in _USAGE_EVENTS


def normalized_request(request: LlmRequest, codec: Any | None) -> JsonObject:
    """What a request asks, independent of headers, caller ids and stream flags.

    With a codec: its annotation (model, system, messages, tools, tool choice,
    sampling parameters, the remaining body fields as ``extras``) minus
    bookkeeping fields; a codec failure falls back to the raw body. Without a
    codec: the raw body minus the same fields.
    """
    if codec is not None:
        try:
            annotated = dict(codec.annotate_request(request))
        except Exception:  # an odd body still gets a key, from its raw form
            annotated = None
        if annotated is not None:
            annotated.pop("stream", None)
            extras = annotated.get("extras")
            if isinstance(extras, dict):
                kept = {k: v for k, v in extras.items() if k not in _NOT_PART_OF_THE_QUESTION}
                if kept:
                    annotated["extras"] = kept
                else:
                    annotated.pop("extras")
            return annotated
    body = request.content if isinstance(request.content, dict) else {}
    return {k: v for k, v in body.items() if k not in _NOT_PART_OF_THE_QUESTION}


def request_key(request: LlmRequest, codec: Any | None) -> bytes:
    """Canonical bytes of :func:`normalized_request` (sorted keys)."""
    return orjson.dumps(normalized_request(request, codec), option=orjson.OPT_SORT_KEYS)


# -- folded response -> stream ------------------------------------------------------


def rechunk(response: Json, codec: Any | None) -> Iterator[Json]:
    """The chunks of ``response`` as ``codec``'s provider would stream them.

    Folding them with ``codec.stream_accumulator()`` gives back what that
    accumulator produces for the original stream. Raises ``TypeError`` when the
    codec is not a built-in one or the response is not an object.
    """
    body = json_form_or_value(response)
    if not isinstance(body, dict):
        raise TypeError(f"response: expected an object to re-stream, got {type(body).__name__}")
    if codec is CHAT or isinstance(codec, OpenAIChatCodec):
        return _chat_chunks(body)
    if codec is RESPONSES or isinstance(codec, OpenAIResponsesCodec):
        return _responses_events(body)
    if codec is ANTHROPIC or isinstance(codec, AnthropicMessagesCodec):
        return _anthropic_events(body)
    raise TypeError(
        f"codec: cannot re-stream a folded response for {codec!r}; store raw chunks or "
        "use a built-in codec"
    )


def _chat_chunks(body: JsonObject) -> Iterator[Json]:
    head = {k: v for k, v in body.items() if k not in ("choices", "usage", "object")}
    first = True
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        delta: JsonObject = {"role": message.get("role", "assistant")}
        if message.get("content") is not None:
            delta["content"] = message["content"]
        if message.get("refusal") is not None:
            delta["refusal"] = message["refusal"]
        calls = message.get("tool_calls")
        if calls:
            delta["tool_calls"] = [
                {
                    "index": position,
                    "id": call.get("id"),
                    "type": call.get("type", "function"),
                    "function": dict(call.get("function") or {}),
                }
                for position, call in enumerate(calls)
            ]
        part: JsonObject = {"index": index, "delta": delta, "finish_reason": None}
        if choice.get("logprobs"):
            part["logprobs"] = choice["logprobs"]
        yield {**(head if first else {"id": body.get("id")}), **_chunk(part)}
        first = False
        yield {
            "id": body.get("id"),
            **_chunk({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}),
        }
    if body.get("usage") is not None or first:
        yield {**head, "object": "chat.completion.chunk", "choices": [], "usage": body.get("usage")}


def _chunk(choice: JsonObject) -> JsonObject:
    return {"object": "chat.completion.chunk", "choices": [choice]}


def _responses_events(body: JsonObject) -> Iterator[Json]:
    started = {**body, "status": "in_progress", "output": []}
    yield {"type": "response.created", "response": started}
    for index, item in enumerate(body.get("output") or ()):
        yield {"type": "response.output_item.added", "output_index": index, "item": item}
        if item.get("type") == "message":
            for position, part in enumerate(item.get("content") or ()):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    yield {
                        "type": "response.output_text.delta",
                        "output_index": index,
                        "content_index": position,
                        "item_id": item.get("id"),
                        "delta": part.get("text", ""),
                    }
        yield {"type": "response.output_item.done", "output_index": index, "item": item}
    yield {"type": "response.completed", "response": body}


def _anthropic_events(body: JsonObject) -> Iterator[Json]:
    message = {k: v for k, v in body.items() if k != "content"}
    message["content"] = []
    yield {"type": "message_start", "message": message}
    for index, block in enumerate(body.get("content") or ()):
        kind = block.get("type")
        if kind == "text":
            yield _block_start(index, {**block, "text": ""})
            yield _delta(index, {"type": "text_delta", "text": block.get("text", "")})
        elif kind == "thinking":
            opened = {k: v for k, v in block.items() if k != "signature"}
            yield _block_start(index, {**opened, "thinking": ""})
            yield _delta(index, {"type": "thinking_delta", "thinking": block.get("thinking", "")})
            if "signature" in block:
                yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            yield _block_start(index, {**block, "input": {}})
            partial = orjson.dumps(block.get("input", {})).decode()
            yield _delta(index, {"type": "input_json_delta", "partial_json": partial})
        else:
            yield _block_start(index, block)
        yield {"type": "content_block_stop", "index": index}
    delta = {"stop_reason": body.get("stop_reason"), "stop_sequence": body.get("stop_sequence")}
    usage = body.get("usage")
    event: JsonObject = {"type": "message_delta", "delta": delta}
    if isinstance(usage, dict):
        event["usage"] = {"output_tokens": usage.get("output_tokens")}
    yield event
    yield {"type": "message_stop"}


def _block_start(index: int, block: JsonObject) -> JsonObject:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: JsonObject) -> JsonObject:
    return {"type": "content_block_delta", "index": index, "delta": delta}


# -- stream plumbing shared by the stream intercepts ---------------------------------


class ReplayedStream:
    """Chunks served without the provider, as a sync *and* an async iterator.

    A stream intercept does not know whether the call is ``llm_stream_call_execute``
    (async) or its ``_sync`` twin, so answers from a cache or a log support both.
    """

    __slots__ = ("_chunks",)

    def __init__(self, chunks: Iterator[Json]) -> None:
        self._chunks = chunks

    def __iter__(self) -> ReplayedStream:
        return self

    def __next__(self) -> Json:
        return next(self._chunks)

    def __aiter__(self) -> ReplayedStream:
        return self

    async def __anext__(self) -> Json:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Stop early (tells a :func:`tap` listener wrapped inside)."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        """Stop early (tells a :func:`tap` listener wrapped inside)."""
        self.close()


class StreamTap:
    """What a metering or recording intercept wants to hear about a stream it passes on."""

    def chunk(self, chunk: Json) -> None:
        """Called for each chunk, before the caller gets it."""

    def done(self) -> None:
        """The stream ended normally."""

    def failed(self, error: BaseException) -> None:
        """The provider (or an inner intercept) raised ``error``."""

    def closed(self) -> None:
        """The caller stopped before the end."""


def tap(source: Any, listener: StreamTap) -> Any:
    """Pass ``source``'s chunks on unchanged, telling ``listener``; same kind as ``source``.

    An async iterator (or an awaitable of one) gives an async generator, a sync
    iterator a sync generator, so the intercept works under both stream entry
    points. The source is closed when the caller stops early.
    """
    if isinstance(source, ReplayedStream):  # stays usable by both stream entry points
        return ReplayedStream(_tap_sync(source, listener))
    if hasattr(source, "__anext__") or hasattr(source, "__aiter__") or inspect.isawaitable(source):
        return _tap_async(source, listener)
    if hasattr(source, "__next__") or hasattr(source, "__iter__"):
        return _tap_sync(iter(source), listener)
    raise TypeError(f"expected an iterator of chunks, got {type(source).__name__}")


async def _tap_async(source: Any, listener: StreamTap) -> AsyncIterator[Json]:
    if inspect.isawaitable(source):
        source = await source
    chunks = source if hasattr(source, "__anext__") else source.__aiter__()
    try:
        async for chunk in chunks:
            listener.chunk(chunk)
            yield chunk
    except GeneratorExit:
        listener.closed()
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        raise
    except BaseException as exc:
        listener.failed(exc)
        raise
    listener.done()


def _tap_sync(chunks: Iterator[Json], listener: StreamTap) -> Iterator[Json]:
    try:
        for chunk in chunks:
            listener.chunk(chunk)
            yield chunk
    except GeneratorExit:
        listener.closed()
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        listener.failed(exc)
        raise
    listener.done()
