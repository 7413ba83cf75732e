"""Codec for the Anthropic Messages API (``POST /v1/messages``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import orjson

from llmflow._errors import CodecError
from llmflow._types import DataSchema, Json, JsonObject

from ._codec import ProviderCodec
from ._encoding import ElementPool, assemble_body
from ._fields import (
    as_object,
    build_content,
    content_parts,
    fail,
    get_bool,
    get_int,
    get_list,
    get_number,
    get_object,
    get_str,
    invalid,
    item_path,
    key_path,
    merge_extras,
    require_str,
    str_list,
    with_extras,
)

__all__ = ["AnthropicMessagesCodec", "AnthropicStreamAccumulator"]

_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "system": ("system",),
    "messages": ("messages",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "max_tokens": ("max_tokens",),
    "stop": ("stop_sequences",),
    "stream": ("stream",),
}
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}
_CHOICES = {"auto": "auto", "any": "required", "none": "none", "tool": "tool"}
_PROVIDER_CHOICES = {"auto": "auto", "required": "any", "none": "none", "tool": "tool"}


# -- request: provider -> annotation ---------------------------------------------


def _image(raw: JsonObject, where: str) -> JsonObject | None:
    source = raw.get("source")
    if type(source) is not dict:
        raise fail(key_path(where, "source"), "an object", source)
    swhere = key_path(where, "source")
    kind = source.get("type")
    part: JsonObject = {"type": "image"}
    if kind == "base64" and len(source) == 3:
        part["media_type"] = require_str(source, "media_type", swhere)
        part["data"] = require_str(source, "data", swhere)
    elif kind == "url" and len(source) == 2:
        part["url"] = require_str(source, "url", swhere)
    elif kind == "file" and len(source) == 2:
        part["file_id"] = require_str(source, "file_id", swhere)
    else:
        return None
    return with_extras(part, raw, ("type", "source"))


def _block(raw: Json, where: str, *, nested: bool = False) -> JsonObject:
    """One content block; ``nested`` blocks (inside a tool result) are text/image/opaque."""
    if type(raw) is not dict:
        raise fail(where, "a content block object", raw)
    kind = raw.get("type")
    if kind == "text":
        part: JsonObject = {"type": "text", "text": require_str(raw, "text", where)}
        return with_extras(part, raw, ("type", "text"))
    if kind == "image":
        image = _image(raw, where)
        if image is not None:
            return image
    elif nested:
        pass
    elif kind == "tool_use":
        arguments = get_object(raw, "input", where)
        if arguments is None:
            raise fail(key_path(where, "input"), "an object", None)
        part = {
            "type": "tool_call",
            "id": require_str(raw, "id", where),
            "name": require_str(raw, "name", where),
            "arguments": arguments,
        }
        return with_extras(part, raw, ("type", "id", "name", "input"))
    elif kind == "tool_result":
        part = {"type": "tool_result", "tool_call_id": require_str(raw, "tool_use_id", where)}
        content = raw.get("content")
        if type(content) is list:
            cwhere = key_path(where, "content")
            part["content"] = [
                _block(b, item_path(cwhere, i), nested=True) for i, b in enumerate(content)
            ]
        elif content is not None:
            if type(content) is not str:
                raise fail(key_path(where, "content"), "a string or an array of blocks", content)
            part["content"] = content
        is_error = get_bool(raw, "is_error", where)
        if is_error is not None:
            part["is_error"] = is_error
        return with_extras(part, raw, ("type", "tool_use_id", "content", "is_error"))
    elif kind == "thinking":
        part = {"type": "reasoning", "text": require_str(raw, "thinking", where)}
        return with_extras(part, raw, ("type", "thinking"))
    return {"type": "opaque", "value": raw}


def _message(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a message object", raw)
    role = raw.get("role")
    if role not in ("user", "assistant"):
        raise invalid(key_path(where, "role"), f"unknown message role {role!r}")
    message: JsonObject = {
        "role": role,
        "content": content_parts(
            raw.get("content"), key_path(where, "content"), _block, "content blocks"
        ),
    }
    return with_extras(message, raw, ("role", "content"))


def _system(value: Json) -> list[JsonObject]:
    if type(value) is str:
        return [{"type": "text", "text": value}]
    if type(value) is not list:
        raise fail("system", "a string or an array of text blocks", value)
    parts = []
    for index, block in enumerate(value):
        where = item_path("system", index)
        if type(block) is not dict or block.get("type") != "text":
            raise fail(where, "a text block", block)
        part: JsonObject = {"type": "text", "text": require_str(block, "text", where)}
        parts.append(with_extras(part, block, ("type", "text")))
    return parts


def _tool(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a tool object", raw)
    kind = raw.get("type")
    if kind is not None and kind != "custom":
        if type(kind) is not str:
            raise fail(key_path(where, "type"), "a string", kind)
        return {"type": kind, "extras": {k: v for k, v in raw.items() if k != "type"}}
    tool: JsonObject = {"type": "function", "name": require_str(raw, "name", where)}
    description = get_str(raw, "description", where)
    if description is not None:
        tool["description"] = description
    parameters = get_object(raw, "input_schema", where)
    if parameters is not None:
        tool["parameters"] = parameters
    return with_extras(tool, raw, ("name", "description", "input_schema"))


def _tool_choice(raw: Json) -> JsonObject | None:
    if type(raw) is not dict:
        return None
    raw_kind = raw.get("type")
    kind = _CHOICES.get(raw_kind) if type(raw_kind) is str else None
    if kind is None:
        return None
    choice: JsonObject = {"type": kind}
    known: tuple[str, ...] = ("type",)
    if kind == "tool":
        name = raw.get("name")
        if type(name) is not str:
            return None
        choice["name"] = name
        known = ("type", "name")
    return with_extras(choice, raw, known)


def _annotate_request(body: JsonObject) -> JsonObject:
    out: JsonObject = {}
    extras: JsonObject = {}
    for key, value in body.items():
        if key == "messages":
            if type(value) is not list:
                raise fail("messages", "an array of messages", value)
            out["messages"] = [_message(m, item_path("messages", i)) for i, m in enumerate(value)]
        elif key == "system":
            if value is not None:
                out["system"] = _system(value)
        elif key in ("temperature", "top_p"):
            number = get_number(body, key, "")
            if number is not None:
                out[key] = number
        elif key in ("max_tokens", "top_k"):
            limit = get_int(body, key, "")
            if limit is not None:
                out[key] = limit
        elif key == "model":
            model = get_str(body, key, "")
            if model is not None:
                out["model"] = model
        elif key == "stop_sequences":
            if value is not None:
                if type(value) is not list:
                    raise fail(key, "an array of strings", value)
                out["stop"] = str_list(value, key)
        elif key == "stream":
            stream = get_bool(body, key, "")
            if stream is not None:
                out["stream"] = stream
        elif key == "tools":
            tools = get_list(body, key, "")
            if tools is not None:
                out["tools"] = [_tool(t, item_path("tools", i)) for i, t in enumerate(tools)]
        elif key == "tool_choice":
            if value is not None:
                choice = _tool_choice(value)
                if choice is None:
                    extras[key] = value
                else:
                    out["tool_choice"] = choice
        else:
            extras[key] = value
    if "messages" not in out:
        raise fail("messages", "an array of messages", None)
    if extras:
        out["extras"] = extras
    return out


# -- request: annotation -> provider ---------------------------------------------


def _build_block(part: JsonObject, where: str) -> JsonObject:
    kind = part["type"]
    if kind == "text":
        return merge_extras({"type": "text", "text": part["text"]}, part)
    if kind == "image":
        if "data" in part:
            source: JsonObject = {
                "type": "base64",
                "media_type": part.get("media_type", "application/octet-stream"),
                "data": part["data"],
            }
        elif "url" in part:
            source = {"type": "url", "url": part["url"]}
        elif "file_id" in part:
            source = {"type": "file", "file_id": part["file_id"]}
        else:
            raise invalid(where, "an image needs data, a url or a file_id")
        return merge_extras({"type": "image", "source": source}, part)
    if kind == "tool_call":
        arguments = part.get("arguments")
        if type(arguments) is not dict:
            raise invalid(where, "Anthropic tool_use input must be a JSON object")
        call = {"type": "tool_use", "id": part.get("id"), "name": part["name"], "input": arguments}
        return merge_extras(call, part)
    if kind == "tool_result":
        result: JsonObject = {"type": "tool_result", "tool_use_id": part["tool_call_id"]}
        content = part.get("content")
        if type(content) is list:
            result["content"] = [_build_block(p, where) for p in content]
        elif content is not None:
            result["content"] = content
        if "is_error" in part:
            result["is_error"] = part["is_error"]
        return merge_extras(result, part)
    if kind == "reasoning":
        return merge_extras({"type": "thinking", "thinking": part.get("text", "")}, part)
    if kind == "opaque":
        return dict(part["value"])
    raise invalid(where, f"a {kind} part cannot be sent to the Anthropic Messages API")


def _build_message(message: JsonObject, where: str) -> JsonObject:
    role = message["role"]
    if role == "system":
        raise invalid(
            key_path(where, "role"), "Anthropic takes instructions in `system`, not messages"
        )
    raw: JsonObject = dict(message.get("extras") or {})
    raw["role"] = "user" if role == "tool" else role  # tool results travel in user turns
    raw["content"] = build_content(message["content"], key_path(where, "content"), _build_block)
    return raw


def _build_tool(tool: JsonObject) -> JsonObject:
    extras: JsonObject = tool.get("extras") or {}
    if tool["type"] != "function" or "name" not in tool:
        return {"type": tool["type"], **extras}
    raw: JsonObject = {"name": tool["name"]}
    if "description" in tool:
        raw["description"] = tool["description"]
    raw["input_schema"] = tool.get("parameters", {"type": "object"})
    return {**extras, **raw}


def _encode_body(body: JsonObject, before: JsonObject, after: JsonObject) -> JsonObject:
    def write(name: str, out: JsonObject) -> None:
        value = after.get(name)
        if name == "messages":
            pool = ElementPool(body["messages"], before["messages"])
            out["messages"] = [
                reused
                if (reused := pool.take(m)) is not None
                else _build_message(m, item_path("messages", i))
                for i, m in enumerate(after["messages"])
            ]
        elif value is None:
            out.pop(_FIELDS[name][0], None)
        elif name == "system":
            system = build_content(value, "system", _build_block)
            out["system"] = system
        elif name == "tools":
            pool = ElementPool(body.get("tools") or [], before.get("tools") or [])
            out["tools"] = [
                reused if (reused := pool.take(t)) is not None else _build_tool(t) for t in value
            ]
        elif name == "tool_choice":
            choice: JsonObject = {"type": _PROVIDER_CHOICES[value["type"]]}
            if "name" in value:
                choice["name"] = value["name"]
            out["tool_choice"] = merge_extras(choice, value)
        else:
            out[_FIELDS[name][0]] = value

    return assemble_body(body, before, after, _FIELDS, write, "Anthropic Messages")


# -- response --------------------------------------------------------------------


def _usage(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "an object", raw)
    usage: JsonObject = {}
    uncached = get_int(raw, "input_tokens", where)
    read = get_int(raw, "cache_read_input_tokens", where)
    written = get_int(raw, "cache_creation_input_tokens", where)
    output = get_int(raw, "output_tokens", where)
    if uncached is not None or read is not None or written is not None:
        usage["input_tokens"] = (uncached or 0) + (read or 0) + (written or 0)
    if output is not None:
        usage["output_tokens"] = output
        if "input_tokens" in usage:
            usage["total_tokens"] = usage["input_tokens"] + output
    if read is not None:
        usage["cached_tokens"] = read
    if written is not None:
        usage["cache_creation_tokens"] = written
    return usage


def _annotate_response(response: JsonObject) -> JsonObject:
    messages: list[JsonObject] = []
    tool_calls: list[JsonObject] = []
    out: JsonObject = {"messages": messages, "tool_calls": tool_calls}
    for key in ("id", "model"):
        value = response.get(key)
        if value is not None:
            if type(value) is not str:
                raise fail(key, "a string", value)
            out[key] = value
    content = response.get("content")
    if content is not None:
        if type(content) is not list:
            raise fail("content", "an array", content)
        parts: list[JsonObject] = []
        for index, block in enumerate(content):
            if type(block) is not dict:
                raise fail(f"content[{index}]", "an object", block)
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if type(text) is not str:
                    raise fail(f"content[{index}].text", "a string", text)
                if text:
                    parts.append({"type": "text", "text": text})
            elif kind == "tool_use":
                where = f"content[{index}]"
                arguments = block.get("input")
                if type(arguments) is not dict:
                    raise fail(f"{where}.input", "an object", arguments)
                call: JsonObject = {
                    "type": "tool_call",
                    "id": require_str(block, "id", where),
                    "name": require_str(block, "name", where),
                    "arguments": arguments,
                }
                tool_calls.append(call)
            elif kind == "thinking":
                text = block.get("thinking")
                if type(text) is not str:
                    raise fail(f"content[{index}].thinking", "a string", text)
                parts.append({"type": "reasoning", "text": text})
            else:
                parts.append({"type": "opaque", "value": block})
        role = response.get("role")
        messages.append({"role": "user" if role == "user" else "assistant", "content": parts})
    stop = response.get("stop_reason")
    if stop is not None:
        if type(stop) is not str:
            raise fail("stop_reason", "a string", stop)
        out["raw_finish_reason"] = stop
        normalized = _FINISH.get(stop)
        if normalized is not None:
            out["finish_reason"] = normalized
    usage = response.get("usage")
    if usage is not None:
        out["usage"] = _usage(usage, "usage")
    return out


# -- stream ----------------------------------------------------------------------


class AnthropicStreamAccumulator:
    """Folds Messages API stream events into the ``message`` object they stream.

    ``message_start`` gives the message, ``content_block_start`` /
    ``content_block_delta`` (``text_delta``, ``input_json_delta``,
    ``thinking_delta``, ``signature_delta``, ``citations_delta``) /
    ``content_block_stop`` build its content blocks, and ``message_delta`` sets
    ``stop_reason``, ``stop_sequence`` and the final usage counts. Raises
    ``CodecError`` on a malformed event or a tool input that is not JSON.
    """

    __slots__ = ("_blocks", "_buffers", "_message")

    def __init__(self) -> None:
        self._message: JsonObject = {}
        self._blocks: dict[int, JsonObject] = {}
        self._buffers: dict[int, list[str]] = {}

    def collect(self, chunk: Json) -> None:
        """Fold one stream event (a dict or an SDK event object)."""
        event = chunk if type(chunk) is dict else as_object(chunk, "event")
        kind = event.get("type")
        if kind == "content_block_delta":
            index = _index(event)
            delta = event.get("delta")
            if type(delta) is not dict:
                raise fail("event.delta", "an object", delta)
            delta_type = delta.get("type")
            if delta_type == "text_delta":
                piece = require_str(delta, "text", "event.delta")
            elif delta_type == "input_json_delta":
                piece = require_str(delta, "partial_json", "event.delta")
            elif delta_type == "thinking_delta":
                piece = require_str(delta, "thinking", "event.delta")
            elif delta_type == "signature_delta":
                block = self._block(index)
                block["signature"] = block.get("signature", "") + require_str(
                    delta, "signature", "event.delta"
                )
                return
            elif delta_type == "citations_delta":
                self._block(index).setdefault("citations", []).append(delta.get("citation"))
                return
            else:
                return
            buffer = self._buffers.get(index)
            if buffer is None:
                self._buffers[index] = [piece]
            else:
                buffer.append(piece)
        elif kind == "content_block_start":
            started = get_object(event, "content_block", "event")
            if started is None:
                raise fail("event.content_block", "an object", None)
            self._blocks[_index(event)] = dict(started)
        elif kind == "content_block_stop":
            self._close(_index(event))
        elif kind == "message_start":
            message = get_object(event, "message", "event")
            if message is None:
                raise fail("event.message", "an object", None)
            self._message = dict(message)
            usage = message.get("usage")
            if type(usage) is dict:
                self._message["usage"] = dict(usage)
        elif kind == "message_delta":
            delta = get_object(event, "delta", "event") or {}
            for key, value in delta.items():
                if value is not None or key not in self._message:
                    self._message[key] = value
            usage = get_object(event, "usage", "event")
            if usage:
                merged = self._message.get("usage")
                merged = dict(merged) if type(merged) is dict else {}
                merged.update((k, v) for k, v in usage.items() if v is not None)
                self._message["usage"] = merged
        elif type(kind) is not str:
            raise fail("event.type", "a string", kind)

    def text_slot(self, event: Json) -> tuple[str, Callable[[str], object], None] | None:
        """For a just collected delta that adds a piece to a block: ``(piece, append, None)``.

        The promise (tests prove it): from now until another event is
        collected, collecting an event equal to ``event`` except for the piece
        (any string) is the same as ``append(piece)``. ``None`` for any other
        event. Never raises; changes nothing.
        """
        if type(event) is not dict or event.get("type") != "content_block_delta":
            return None
        index = event.get("index")
        delta = event.get("delta")
        if type(index) is not int or type(delta) is not dict:
            return None
        kind = delta.get("type")
        key = _PIECES.get(kind) if type(kind) is str else None
        piece = None if key is None else delta.get(key)
        buffer = self._buffers.get(index)
        if type(piece) is not str or buffer is None:
            return None
        return piece, buffer.append, None

    def _block(self, index: int) -> JsonObject:
        block = self._blocks.get(index)
        if block is None:
            raise fail(f"content[{index}]", "a content_block_start before its deltas", None)
        return block

    def _close(self, index: int) -> None:
        pieces = self._buffers.pop(index, None)
        if pieces is None:
            return
        block = self._block(index)
        kind = block.get("type")
        joined = "".join(pieces)
        if kind in ("tool_use", "server_tool_use"):
            try:
                block["input"] = orjson.loads(joined) if joined else {}
            except orjson.JSONDecodeError as exc:
                raise CodecError(
                    f"streamed tool input is not JSON: {joined[:80]!r}",
                    field=f"content[{index}].input",
                ) from exc
        elif kind == "thinking":
            block["thinking"] = block.get("thinking", "") + joined
        else:
            block["text"] = block.get("text", "") + joined

    def finalize(self) -> JsonObject:
        """Return the ``message`` object the events add up to."""
        for index in list(self._buffers):
            self._close(index)
        message = dict(self._message)
        message["content"] = [self._blocks[i] for i in sorted(self._blocks)]
        return message


# The delta types whose piece is appended to the block's buffer, and the piece's key.
_PIECES: Final = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}


def _index(event: JsonObject) -> int:
    value = event.get("index")
    if type(value) is not int:
        raise fail("event.index", "an integer", value)
    return value


# -- the codec -------------------------------------------------------------------


class AnthropicMessagesCodec(ProviderCodec):
    """Request, response and stream codec for the Anthropic Messages API.

    ``data_schema`` is ``anthropic/messages`` version ``1``. ``system`` (a string or
    text blocks) is ``system``; ``stop_sequences`` is ``stop``; ``tool_use`` and
    ``tool_result`` blocks are ``tool_call`` / ``tool_result`` parts; ``thinking``
    blocks are ``reasoning`` parts (the signature in their extras); other blocks are
    opaque. ``input_tokens`` of the annotated usage includes cache reads and writes.
    Every other body field is kept verbatim in ``extras``.
    """

    __slots__ = ()
    _DATA_SCHEMA = DataSchema("anthropic/messages", "1")

    _annotate_body = _annotate_request
    _annotate_result = _annotate_response
    _accumulator = AnthropicStreamAccumulator
    _encode_body = _encode_body
