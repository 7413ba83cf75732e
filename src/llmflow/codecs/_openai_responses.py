"""Codec for the OpenAI Responses API (``POST /v1/responses``)."""

from __future__ import annotations

from llmflow._types import DataSchema, Json, JsonObject

from ._codec import ProviderCodec
from ._encoding import ElementPool, assemble_body
from ._fields import (
    as_object,
    content_parts,
    dump_arguments,
    fail,
    get_bool,
    get_int,
    get_list,
    get_number,
    get_object,
    get_str,
    image_from_url,
    invalid,
    item_path,
    join_data_url,
    key_path,
    merge_extras,
    parse_arguments,
    require_str,
    token_usage,
    with_extras,
)

__all__ = ["OpenAIResponsesCodec", "OpenAIResponsesStreamAccumulator"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
# content-part types; any other opaque value is a whole input item
_PART_TYPES = frozenset(
    {"input_text", "input_image", "input_file", "input_audio", "output_text", "refusal"}
)
_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "system": ("instructions",),
    "messages": ("input",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "max_tokens": ("max_output_tokens",),
    "stream": ("stream",),
}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


# -- request: provider -> annotation ---------------------------------------------


def _content_part(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a content part object", raw)
    kind = raw.get("type")
    if kind in ("input_text", "output_text"):
        part: JsonObject = {"type": "text", "text": require_str(raw, "text", where)}
        return with_extras(part, raw, ("type", "text"))
    if kind == "input_image":
        url = get_str(raw, "image_url", where)
        part = {"type": "image"} if url is None else image_from_url(url)
        file_id = get_str(raw, "file_id", where)
        if file_id is not None:
            part["file_id"] = file_id
        detail = get_str(raw, "detail", where)
        if detail is not None:
            part["detail"] = detail
        return with_extras(part, raw, ("type", "image_url", "file_id", "detail"))
    if kind == "refusal":
        part = {"type": "refusal", "text": require_str(raw, "refusal", where)}
        return with_extras(part, raw, ("type", "refusal"))
    return {"type": "opaque", "value": raw}


def _item(raw: Json, where: str) -> JsonObject:
    """One input item as one annotated message."""
    if type(raw) is not dict:
        raise fail(where, "an input item object", raw)
    kind = raw.get("type")
    if kind == "message" or (kind is None and "role" in raw):
        provider_role = raw.get("role")
        if type(provider_role) is not str or provider_role not in _ROLES:
            raise invalid(key_path(where, "role"), f"unknown message role {provider_role!r}")
        role = _ROLES[provider_role]
        message: JsonObject = {"role": role}
        if provider_role != role:
            message["provider_role"] = provider_role
        message["content"] = content_parts(
            raw.get("content"), key_path(where, "content"), _content_part
        )
        return with_extras(message, raw, ("type", "role", "content"))
    if kind == "function_call":
        call: JsonObject = {
            "type": "tool_call",
            "id": require_str(raw, "call_id", where),
            "name": require_str(raw, "name", where),
        }
        parse_arguments(require_str(raw, "arguments", where), call)
        with_extras(call, raw, ("type", "call_id", "name", "arguments"))
        return {"role": "assistant", "content": [call]}
    if kind == "function_call_output":
        result: JsonObject = {
            "type": "tool_result",
            "tool_call_id": require_str(raw, "call_id", where),
        }
        output = raw.get("output")
        if type(output) is str:
            result["content"] = output
        else:
            result["content"] = content_parts(output, key_path(where, "output"), _content_part)
        with_extras(result, raw, ("type", "call_id", "output"))
        return {"role": "tool", "content": [result]}
    if type(kind) is not str:
        raise fail(key_path(where, "type"), "a string", kind)
    # reasoning, hosted-tool calls and their outputs, item references, ...
    role = "tool" if kind.endswith("_output") else "assistant"
    return {"role": role, "content": [{"type": "opaque", "value": raw}]}


def _tool(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a tool object", raw)
    kind = raw.get("type")
    if type(kind) is not str:
        raise fail(key_path(where, "type"), "a string", kind)
    if kind != "function":
        return {"type": kind, "extras": {k: v for k, v in raw.items() if k != "type"}}
    tool: JsonObject = {"type": "function", "name": require_str(raw, "name", where)}
    description = get_str(raw, "description", where)
    if description is not None:
        tool["description"] = description
    parameters = get_object(raw, "parameters", where)
    if parameters is not None:
        tool["parameters"] = parameters
    return with_extras(tool, raw, ("type", "name", "description", "parameters"))


def _tool_choice(raw: Json) -> JsonObject | None:
    if raw in ("auto", "none", "required"):
        return {"type": raw}
    if (
        type(raw) is dict
        and len(raw) == 2
        and raw.get("type") == "function"
        and type(raw.get("name")) is str
    ):
        return {"type": "tool", "name": raw["name"]}
    return None


def _annotate_request(body: JsonObject) -> JsonObject:
    out: JsonObject = {}
    extras: JsonObject = {}
    for key, value in body.items():
        if key == "input":
            if type(value) is str:
                out["messages"] = [{"role": "user", "content": [{"type": "text", "text": value}]}]
            elif type(value) is list:
                out["messages"] = [_item(m, item_path("input", i)) for i, m in enumerate(value)]
            elif value is not None:
                raise fail("input", "a string or an array of input items", value)
        elif key in ("temperature", "top_p"):
            number = get_number(body, key, "")
            if number is not None:
                out[key] = number
        elif key == "model":
            model = get_str(body, key, "")
            if model is not None:
                out["model"] = model
        elif key == "instructions":
            instructions = get_str(body, key, "")
            if instructions is not None:
                out["system"] = [{"type": "text", "text": instructions}]
        elif key == "max_output_tokens":
            limit = get_int(body, key, "")
            if limit is not None:
                out["max_tokens"] = limit
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
    out.setdefault("messages", [])
    if extras:
        out["extras"] = extras
    return out


# -- request: annotation -> provider ---------------------------------------------


def _build_part(part: JsonObject, role: str, where: str) -> JsonObject:
    kind = part["type"]
    if kind == "text":
        text_type = "output_text" if role == "assistant" else "input_text"
        return merge_extras({"type": text_type, "text": part["text"]}, part)
    if kind == "image":
        raw: JsonObject = {"type": "input_image"}
        if "data" in part:
            media_type = part.get("media_type", "application/octet-stream")
            raw["image_url"] = join_data_url(media_type, part["data"])
        elif "url" in part:
            raw["image_url"] = part["url"]
        if "file_id" in part:
            raw["file_id"] = part["file_id"]
        raw["detail"] = part.get("detail", "auto")
        return merge_extras(raw, part)
    if kind == "refusal":
        return merge_extras({"type": "refusal", "refusal": part["text"]}, part)
    if kind == "opaque":
        return dict(part["value"])
    raise invalid(where, f"a {kind} part cannot be sent as Responses message content")


def _build_message_item(
    role: str, parts: list[JsonObject], extras: JsonObject | None, where: str
) -> JsonObject:
    if not extras and len(parts) == 1 and parts[0]["type"] == "text" and "extras" not in parts[0]:
        return {"role": role, "content": parts[0]["text"]}
    content = [_build_part(p, role, item_path(where, i)) for i, p in enumerate(parts)]
    return {**(extras or {}), "type": "message", "role": role, "content": content}


def _build_items(message: JsonObject, where: str) -> list[JsonObject]:
    """One annotated message as input items: tool calls and results are items of their own."""
    role: str = message["role"]
    provider_role = message.get("provider_role")
    raw_role = role if _ROLES.get(provider_role or "") != role else str(provider_role)
    items: list[JsonObject] = []
    pending: list[JsonObject] = []
    cwhere = key_path(where, "content")

    def flush(*, last: bool = False) -> None:
        if pending or (last and not items):
            if raw_role == "tool":
                raise invalid(cwhere, "a tool message holds only tool results")
            items.append(_build_message_item(raw_role, pending, message.get("extras"), cwhere))
            pending.clear()

    for part in message["content"]:
        kind = part["type"]
        if kind == "tool_call":
            flush()
            call: JsonObject = {
                "type": "function_call",
                "call_id": part.get("id"),
                "name": part["name"],
                "arguments": dump_arguments(part),
            }
            items.append(merge_extras(call, part))
        elif kind == "tool_result":
            flush()
            content = part.get("content", "")
            output: Json = (
                content
                if type(content) is str
                else [_build_part(p, "user", cwhere) for p in content]
            )
            result = {"type": "function_call_output", "call_id": part["tool_call_id"]}
            result["output"] = output
            items.append(merge_extras(result, part))
        elif kind == "opaque" and part["value"].get("type") not in _PART_TYPES:
            flush()
            items.append(dict(part["value"]))
        else:
            pending.append(part)
    flush(last=True)
    return items


def _build_tool(tool: JsonObject) -> JsonObject:
    extras: JsonObject = tool.get("extras") or {}
    if tool["type"] != "function" or "name" not in tool:
        return {"type": tool["type"], **extras}
    raw: JsonObject = {"type": "function", "name": tool["name"]}
    if "description" in tool:
        raw["description"] = tool["description"]
    if "parameters" in tool:
        raw["parameters"] = tool["parameters"]
    return {**extras, **raw}


def _encode_body(body: JsonObject, before: JsonObject, after: JsonObject) -> JsonObject:
    def write(name: str, out: JsonObject) -> None:
        value = after.get(name)
        if name == "messages":
            original = body.get("input")
            raws: list[Json]
            if type(original) is str:
                raws = [{"role": "user", "content": original}]
            else:
                raws = original or []
            pool = ElementPool(raws, before["messages"])
            items: list[Json] = []
            for i, message in enumerate(after["messages"]):
                reused = pool.take(message)
                if reused is None:
                    items.extend(_build_items(message, item_path("input", i)))
                else:
                    items.append(reused)
            out["input"] = items
        elif value is None:
            out.pop(_FIELDS[name][0], None)
        elif name == "system":
            out["instructions"] = "\n\n".join(part["text"] for part in value)
        elif name == "tools":
            pool = ElementPool(body.get("tools") or [], before.get("tools") or [])
            out["tools"] = [
                reused if (reused := pool.take(t)) is not None else _build_tool(t) for t in value
            ]
        elif name == "tool_choice":
            tool_choice = value["type"]
            out["tool_choice"] = (
                {"type": "function", "name": value.get("name")}
                if tool_choice == "tool"
                else tool_choice
            )
        else:
            out[_FIELDS[name][0]] = value

    return assemble_body(body, before, after, _FIELDS, write, "Responses")


# -- response --------------------------------------------------------------------


def _output_item(raw: Json, where: str, parts: list[JsonObject], calls: list[JsonObject]) -> None:
    if type(raw) is not dict:
        raise fail(where, "an output item object", raw)
    kind = raw.get("type")
    if kind == "message":
        content = raw.get("content")
        if type(content) is not list:
            raise fail(key_path(where, "content"), "an array", content)
        for i, block in enumerate(content):
            if type(block) is not dict:
                raise fail(item_path(key_path(where, "content"), i), "an object", block)
            block_type = block.get("type")
            if block_type == "output_text":
                text = block.get("text")
                if text:
                    if type(text) is not str:
                        raise fail(f"{where}.content[{i}].text", "a string", text)
                    parts.append({"type": "text", "text": text})
            elif block_type == "refusal":
                text = block.get("refusal")
                if type(text) is not str:
                    raise fail(f"{where}.content[{i}].refusal", "a string", text)
                parts.append({"type": "refusal", "text": text})
            else:
                parts.append({"type": "opaque", "value": block})
    elif kind == "function_call":
        call: JsonObject = {"type": "tool_call", "name": require_str(raw, "name", where)}
        call_id = get_str(raw, "call_id", where)
        if call_id is not None:
            call["id"] = call_id
        parse_arguments(require_str(raw, "arguments", where), call)
        calls.append(call)
    elif kind == "custom_tool_call":
        call = {"type": "tool_call", "name": require_str(raw, "name", where)}
        call_id = get_str(raw, "call_id", where)
        if call_id is not None:
            call["id"] = call_id
        call["raw_arguments"] = require_str(raw, "input", where)
        calls.append(call)
    elif kind == "reasoning":
        summary = get_list(raw, "summary", where) or []
        texts = [s["text"] for s in summary if type(s) is dict and type(s.get("text")) is str]
        if texts:
            parts.append({"type": "reasoning", "text": "\n\n".join(texts)})
    else:
        parts.append({"type": "opaque", "value": raw})


_usage = token_usage("input", "output")


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
    output = response.get("output")
    parts: list[JsonObject] = []
    if output is not None:
        if type(output) is not list:
            raise fail("output", "an array", output)
        for index, item in enumerate(output):
            _output_item(item, f"output[{index}]", parts, tool_calls)
        messages.append({"role": "assistant", "content": parts})
    status = response.get("status")
    if status is not None:
        if type(status) is not str:
            raise fail("status", "a string", status)
        if status == "completed":
            out["raw_finish_reason"] = status
            if tool_calls:
                out["finish_reason"] = "tool_calls"
            elif any(p["type"] == "refusal" for p in parts):
                out["finish_reason"] = "refusal"
            else:
                out["finish_reason"] = "stop"
        elif status == "incomplete":
            details = get_object(response, "incomplete_details", "")
            reason = get_str(details, "reason", "incomplete_details") if details else None
            out["raw_finish_reason"] = reason or status
            normalized = _INCOMPLETE.get(reason or "")
            if normalized is not None:
                out["finish_reason"] = normalized
        else:
            out["raw_finish_reason"] = status
    usage = response.get("usage")
    if usage is not None:
        out["usage"] = _usage(usage)
    return out


# -- stream ----------------------------------------------------------------------


class OpenAIResponsesStreamAccumulator:
    """Folds Responses API stream events into the final ``response`` object.

    The response carried by ``response.completed`` (or ``.incomplete`` /
    ``.failed``) is authoritative. When the stream ended without one, the
    response is rebuilt from ``response.created``, the output items
    (``response.output_item.added`` / ``.done``) and the text, refusal,
    function-call-argument and reasoning-summary deltas. Raises ``CodecError`` on
    a malformed event.
    """

    __slots__ = ("_arguments", "_final", "_items", "_response", "_summaries", "_texts")

    def __init__(self) -> None:
        self._response: JsonObject | None = None
        self._final: JsonObject | None = None
        self._items: dict[int, JsonObject] = {}
        self._texts: dict[tuple[int, int], list[str]] = {}
        self._arguments: dict[int, list[str]] = {}
        self._summaries: dict[tuple[int, int], list[str]] = {}

    def collect(self, chunk: Json) -> None:
        """Fold one stream event (a dict or an SDK event object)."""
        event = chunk if type(chunk) is dict else as_object(chunk, "event")
        kind = event.get("type")
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            key = (_index(event, "output_index"), _index(event, "content_index"))
            delta = require_str(event, "delta", "event")
            buffer = self._texts.get(key)
            if buffer is None:
                self._texts[key] = [delta]
            else:
                buffer.append(delta)
        elif kind == "response.function_call_arguments.delta":
            index = _index(event, "output_index")
            delta = require_str(event, "delta", "event")
            self._arguments.setdefault(index, []).append(delta)
        elif kind == "response.reasoning_summary_text.delta":
            key = (_index(event, "output_index"), _index(event, "summary_index"))
            self._summaries.setdefault(key, []).append(require_str(event, "delta", "event"))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            index = _index(event, "output_index")
            item = get_object(event, "item", "event")
            if item is None:
                raise fail("event.item", "an object", None)
            copied = dict(item)  # the lists get appended to below; never touch the event's
            for name in ("content", "summary"):
                if type(copied.get(name)) is list:
                    copied[name] = list(copied[name])
            self._items[index] = copied
            if kind == "response.output_item.done":  # the item is now complete
                self._arguments.pop(index, None)
                for table in (self._texts, self._summaries):
                    for stale in [k for k in table if k[0] == index]:
                        del table[stale]
        elif kind == "response.content_part.added":
            index = _index(event, "output_index")
            item = self._items.get(index)
            part = get_object(event, "part", "event")
            if item is not None and part is not None:
                content = item.setdefault("content", [])
                if type(content) is list and _index(event, "content_index") == len(content):
                    content.append(dict(part))
        elif kind in ("response.created", "response.in_progress"):
            response = get_object(event, "response", "event")
            if response is not None:
                self._response = response
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self._final = get_object(event, "response", "event")
        elif type(kind) is not str:
            raise fail("event.type", "a string", kind)

    def finalize(self) -> JsonObject:
        """Return the final ``response`` object of the stream."""
        final = self._final
        if final is not None and final.get("output"):
            return final
        response = dict(final or self._response or {})
        response["output"] = [self._item(i) for i in sorted(self._items)]
        return response

    def _item(self, index: int) -> JsonObject:
        item = self._items[index]
        arguments = self._arguments.get(index)
        if arguments is not None:
            item["arguments"] = "".join(arguments)
        content = item.get("content")
        for (owner, position), pieces in self._texts.items():
            if owner != index:
                continue
            if type(content) is not list:
                content = item["content"] = []
            while len(content) <= position:
                content.append({"type": "output_text", "text": "", "annotations": []})
            part = content[position] = dict(content[position])
            field = "refusal" if part.get("type") == "refusal" else "text"
            part[field] = "".join(pieces)
        for (owner, position), pieces in self._summaries.items():
            if owner != index:
                continue
            summary = item.setdefault("summary", [])
            while len(summary) <= position:
                summary.append({"type": "summary_text", "text": ""})
            summary[position] = {"type": "summary_text", "text": "".join(pieces)}
        return item


def _index(event: JsonObject, key: str) -> int:
    value = event.get(key)
    if type(value) is not int:
        raise fail(key_path("event", key), "an integer", value)
    return value


# -- the codec -------------------------------------------------------------------


class OpenAIResponsesCodec(ProviderCodec):
    """Request, response and stream codec for the OpenAI Responses API.

    ``data_schema`` is ``openai/responses`` version ``1``. ``instructions`` is
    ``system``; ``input`` (a string or a list of items) is ``messages``, one message
    per item: function calls are assistant messages holding one ``tool_call``,
    function-call outputs are tool messages holding one ``tool_result``, and other
    items (reasoning, hosted-tool calls, item references) are opaque parts.
    ``max_output_tokens`` is ``max_tokens``. Every other body field is kept verbatim
    in ``extras``.
    """

    __slots__ = ()
    _DATA_SCHEMA = DataSchema("openai/responses", "1")

    _annotate_body = _annotate_request
    _annotate_result = _annotate_response
    _accumulator = OpenAIResponsesStreamAccumulator
    _encode_body = _encode_body
