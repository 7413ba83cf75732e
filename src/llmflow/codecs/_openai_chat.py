"""Codec for the OpenAI Chat Completions API (``POST /v1/chat/completions``)."""

from __future__ import annotations

from collections.abc import Callable

from llmflow._types import DataSchema, Json, JsonObject

from ._codec import ProviderCodec
from ._encoding import ElementPool, assemble_body
from ._fields import (
    as_object,
    build_content,
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
    str_list,
    token_usage,
    with_extras,
)

__all__ = ["OpenAIChatCodec", "OpenAIChatStreamAccumulator"]

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
_MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "developer": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "function": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "refusal", "tool_calls"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
_NUMBER_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})
_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# annotated field -> body keys carrying it; "system" has no key of its own: it is
# written as leading system messages, so it rewrites "messages" (listed last).
_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model",),
    "messages": ("messages",),
    "system": ("messages",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "max_tokens": ("max_completion_tokens", "max_tokens"),
    "stop": ("stop",),
    "seed": ("seed",),
    "presence_penalty": ("presence_penalty",),
    "frequency_penalty": ("frequency_penalty",),
    "stream": ("stream",),
}


# -- request: provider -> annotation ---------------------------------------------


def _content_part(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a content part object", raw)
    kind = raw.get("type")
    part: JsonObject
    if kind == "text":
        part = {"type": "text", "text": require_str(raw, "text", where)}
        known: tuple[str, ...] = ("type", "text")
    elif kind == "image_url":
        image = raw.get("image_url")
        if type(image) is not dict or not image.keys() <= {"url", "detail"}:
            return {"type": "opaque", "value": raw}
        where = key_path(where, "image_url")
        part = image_from_url(require_str(image, "url", where))
        detail = get_str(image, "detail", where)
        if detail is not None:
            part["detail"] = detail
        known = ("type", "image_url")
    elif kind == "refusal":
        part = {"type": "refusal", "text": require_str(raw, "refusal", where)}
        known = ("type", "refusal")
    else:
        return {"type": "opaque", "value": raw}
    return with_extras(part, raw, known)


def _tool_call(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a tool call object", raw)
    function = raw.get("function")
    if (
        raw.get("type", "function") != "function"
        or type(function) is not dict
        or not function.keys() <= {"name", "arguments"}
    ):
        return {"type": "opaque", "value": raw}
    fwhere = key_path(where, "function")
    part: JsonObject = {"type": "tool_call", "name": require_str(function, "name", fwhere)}
    call_id = get_str(raw, "id", where)
    if call_id is not None:
        part["id"] = call_id
    parse_arguments(require_str(function, "arguments", fwhere), part)
    extras = {k: v for k, v in raw.items() if k not in ("id", "type", "function")}
    if extras:
        part["extras"] = extras
    return part


def _message(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a message object", raw)
    provider_role = raw.get("role")
    if type(provider_role) is not str or provider_role not in _ROLES:
        raise invalid(key_path(where, "role"), f"unknown message role {provider_role!r}")
    role = _ROLES[provider_role]
    message: JsonObject = {"role": role}
    if provider_role != role:
        message["provider_role"] = provider_role
    content = raw.get("content")
    cwhere = key_path(where, "content")
    parts: list[JsonObject]
    if provider_role == "tool":
        result: JsonObject = {
            "type": "tool_result",
            "tool_call_id": require_str(raw, "tool_call_id", where),
        }
        if type(content) is list:
            result["content"] = content_parts(content, cwhere, _content_part)
        elif content is not None:
            if type(content) is not str:
                raise fail(cwhere, "a string or an array of content parts", content)
            result["content"] = content
        parts = [result]
    else:
        parts = [] if content is None else content_parts(content, cwhere, _content_part)
        if role == "assistant":
            refusal = get_str(raw, "refusal", where)
            if refusal is not None:
                parts.append({"type": "refusal", "text": refusal})
            calls = get_list(raw, "tool_calls", where)
            if calls:
                twhere = key_path(where, "tool_calls")
                parts.extend(_tool_call(c, item_path(twhere, i)) for i, c in enumerate(calls))
    message["content"] = parts
    known = _MESSAGE_KEYS[provider_role]
    if len(raw) > len(known) or not raw.keys() <= known:
        extras = {k: v for k, v in raw.items() if k not in known}
        if extras:
            message["extras"] = extras
    return message


def _messages(value: list[Json]) -> list[JsonObject]:
    """The annotated ``messages``: :func:`_message` of each, the usual one read directly.

    A message of only a ``role`` other than ``tool`` and a string ``content``
    (most of a conversation) is annotated here without building the paths
    that only errors use; it is exactly what :func:`_message` makes of it.
    """
    out: list[JsonObject] = []
    for index, raw in enumerate(value):
        if type(raw) is dict and len(raw) == 2:
            provider_role = raw.get("role")
            content = raw.get("content")
            if type(content) is str and type(provider_role) is str and provider_role != "tool":
                role = _ROLES.get(provider_role)
                if role is not None:
                    message: JsonObject = {"role": role}
                    if provider_role != role:
                        message["provider_role"] = provider_role
                    message["content"] = [{"type": "text", "text": content}]
                    out.append(message)
                    continue
        out.append(_message(raw, item_path("messages", index)))
    return out


def _tool(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a tool object", raw)
    kind = raw.get("type")
    if type(kind) is not str:
        raise fail(key_path(where, "type"), "a string", kind)
    function = raw.get("function")
    if kind != "function" or type(function) is not dict or len(raw) != 2:
        return {"type": kind, "extras": {k: v for k, v in raw.items() if k != "type"}}
    fwhere = key_path(where, "function")
    tool: JsonObject = {"type": "function", "name": require_str(function, "name", fwhere)}
    description = get_str(function, "description", fwhere)
    if description is not None:
        tool["description"] = description
    parameters = get_object(function, "parameters", fwhere)
    if parameters is not None:
        tool["parameters"] = parameters
    extras = {k: v for k, v in function.items() if k not in ("name", "description", "parameters")}
    if extras:
        tool["extras"] = extras
    return tool


def _tool_choice(raw: Json) -> JsonObject | None:
    if raw in ("auto", "none", "required"):
        return {"type": raw}
    if type(raw) is dict and raw.get("type") == "function" and len(raw) == 2:
        function = raw.get("function")
        if type(function) is dict and len(function) == 1 and type(function.get("name")) is str:
            return {"type": "tool", "name": function["name"]}
    return None


def _annotate_request(body: JsonObject) -> JsonObject:
    out: JsonObject = {}
    extras: JsonObject = {}
    for key, value in body.items():
        if key == "messages":
            if type(value) is not list:
                raise fail("messages", "an array of messages", value)
            out["messages"] = _messages(value)
        elif key in _NUMBER_FIELDS:
            number = get_number(body, key, "")
            if number is not None:
                out[key] = number
        elif key == "model":
            model = get_str(body, key, "")
            if model is not None:
                out["model"] = model
        elif key == "max_completion_tokens" or (
            key == "max_tokens" and body.get("max_completion_tokens") is None
        ):
            limit = get_int(body, key, "")
            if limit is not None:
                out["max_tokens"] = limit
        elif key == "stop":
            if value is not None:
                out["stop"] = str_list(value, "stop")
        elif key == "seed":
            seed = get_int(body, key, "")
            if seed is not None:
                out["seed"] = seed
        elif key == "stream":
            stream = get_bool(body, key, "")
            if stream is not None:
                out["stream"] = stream
        elif key == "tools":
            tools = get_list(body, key, "")
            if tools is not None:
                out["tools"] = [_tool(t, item_path("tools", i)) for i, t in enumerate(tools)]
        elif key == "tool_choice" and value is not None:
            choice = _tool_choice(value)
            if choice is None:
                extras[key] = value
            else:
                out["tool_choice"] = choice
        elif key != "tool_choice":
            extras[key] = value
    if "messages" not in out:
        raise fail("messages", "an array of messages", None)
    if extras:
        out["extras"] = extras
    return out


# -- request: annotation -> provider ---------------------------------------------


def _build_part(part: JsonObject, where: str) -> JsonObject:
    kind = part["type"]
    raw: JsonObject
    if kind == "text":
        raw = {"type": "text", "text": part["text"]}
    elif kind == "image":
        if "data" in part:
            url = join_data_url(part.get("media_type", "application/octet-stream"), part["data"])
        elif "url" in part:
            url = part["url"]
        else:
            raise invalid(where, "Chat Completions images need a url or inline data")
        image: JsonObject = {"url": url}
        if "detail" in part:
            image["detail"] = part["detail"]
        raw = {"type": "image_url", "image_url": image}
    elif kind == "refusal":
        raw = {"type": "refusal", "refusal": part["text"]}
    elif kind == "opaque":
        return dict(part["value"])
    else:
        raise invalid(where, f"a {kind} part cannot be sent as Chat Completions message content")
    return merge_extras(raw, part)


def _build_tool_call(part: JsonObject, calls: ElementPool) -> JsonObject:
    reused = calls.take(part)
    if reused is not None:
        return dict(reused)
    raw: JsonObject = {
        "id": part.get("id"),
        "type": "function",
        "function": {"name": part["name"], "arguments": dump_arguments(part)},
    }
    extras = part.get("extras")
    return {**extras, **raw} if extras else raw


def _build_message(message: JsonObject, calls: ElementPool, where: str) -> JsonObject:
    role: str = message["role"]
    provider_role = message.get("provider_role")
    raw_role = role if _ROLES.get(provider_role or "") != role else str(provider_role)
    raw: JsonObject = dict(message.get("extras") or {})
    raw["role"] = raw_role
    parts: list[JsonObject] = message["content"]
    cwhere = key_path(where, "content")
    if raw_role == "tool":
        if len(parts) != 1 or parts[0]["type"] != "tool_result":
            raise invalid(
                cwhere, "a Chat Completions tool message holds exactly one tool_result part"
            )
        result = parts[0]
        raw["tool_call_id"] = result["tool_call_id"]
        content = result.get("content", "")
        raw["content"] = (
            content
            if type(content) is str
            else [_build_part(p, item_path(cwhere, i)) for i, p in enumerate(content)]
        )
        return raw
    body: list[JsonObject] = []
    tool_calls: list[JsonObject] = []
    refusals: list[str] = []
    for part in parts:
        kind = part["type"]
        if kind == "tool_call":
            tool_calls.append(_build_tool_call(part, calls))
        elif kind == "refusal" and role == "assistant":
            refusals.append(part["text"])
        elif kind == "opaque" and role == "assistant" and "id" in part["value"]:
            tool_calls.append(dict(part["value"]))  # a non-function tool call
        else:
            body.append(part)
    if tool_calls and role != "assistant":
        raise invalid(cwhere, "only assistant messages can carry tool calls")
    if body or not tool_calls:
        raw["content"] = build_content(body, cwhere, _build_part)
    if refusals:
        raw["refusal"] = "".join(refusals)
    if tool_calls:
        raw["tool_calls"] = tool_calls
    return raw


def _build_tool(tool: JsonObject) -> JsonObject:
    extras: JsonObject = tool.get("extras") or {}
    if tool["type"] != "function" or "name" not in tool:
        return {"type": tool["type"], **extras}
    function: JsonObject = {"name": tool["name"]}
    if "description" in tool:
        function["description"] = tool["description"]
    if "parameters" in tool:
        function["parameters"] = tool["parameters"]
    function.update((k, v) for k, v in extras.items() if k not in function)
    return {"type": "function", "function": function}


def _build_tool_choice(choice: JsonObject) -> Json:
    if choice["type"] == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice["type"]


def _tool_call_pool(body: JsonObject, before: JsonObject) -> ElementPool:
    raws: list[Json] = []
    annotations: list[JsonObject] = []
    for raw, message in zip(body["messages"], before["messages"], strict=True):
        calls = raw.get("tool_calls") if message["role"] == "assistant" else None
        if calls:
            raws.extend(calls)
            annotations.extend(p for p in message["content"] if p["type"] == "tool_call")
    # opaque (non-function) calls are not pooled; they are copied whole anyway
    raws = [c for c in raws if _tool_call_is_function(c)]
    return ElementPool(raws, annotations)


def _tool_call_is_function(raw: JsonObject) -> bool:
    function = raw.get("function")
    return (
        raw.get("type", "function") == "function"
        and type(function) is dict
        and function.keys() <= {"name", "arguments"}
    )


def _encode_body(body: JsonObject, before: JsonObject, after: JsonObject) -> JsonObject:
    unmodeled = before.get("extras") or {}

    def write(name: str, out: JsonObject) -> None:
        value = after.get(name)
        if name in ("messages", "system"):
            pool = ElementPool(body["messages"], before["messages"])
            calls = _tool_call_pool(body, before)
            messages: list[JsonObject] = []
            system = after.get("system")
            if system:
                instruction = {"role": "system", "content": system}
                messages.append(_build_message(instruction, calls, "system"))
            for i, message in enumerate(after["messages"]):
                reused = pool.take(message)
                messages.append(
                    reused
                    if reused is not None
                    else _build_message(message, calls, item_path("messages", i))
                )
            out["messages"] = messages
        elif value is None:
            for key in _FIELDS[name]:
                if key not in unmodeled:
                    out.pop(key, None)
        elif name == "tools":
            pool = ElementPool(body.get("tools") or [], before.get("tools") or [])
            out["tools"] = [
                reused if (reused := pool.take(t)) is not None else _build_tool(t) for t in value
            ]
        elif name == "tool_choice":
            out["tool_choice"] = _build_tool_choice(value)
        elif name == "max_tokens":
            key = (
                "max_tokens"
                if body.get("max_tokens") is not None and "max_tokens" not in unmodeled
                else "max_completion_tokens"
            )
            out[key] = value
        else:
            out[name] = value

    return assemble_body(body, before, after, _FIELDS, write, "Chat Completions")


# -- response --------------------------------------------------------------------


def _response_tool_call(raw: Json, where: str) -> JsonObject:
    if type(raw) is not dict:
        raise fail(where, "a tool call object", raw)
    call: JsonObject
    function = raw.get("function")
    if type(function) is dict:
        fwhere = key_path(where, "function")
        call = {"type": "tool_call", "name": require_str(function, "name", fwhere)}
        parse_arguments(require_str(function, "arguments", fwhere), call)
    else:
        custom = raw.get("custom")
        if type(custom) is not dict:
            raise fail(key_path(where, "function"), "an object", function)
        cwhere = key_path(where, "custom")
        call = {"type": "tool_call", "name": require_str(custom, "name", cwhere)}
        call["raw_arguments"] = require_str(custom, "input", cwhere)
    call_id = raw.get("id")
    if call_id is not None:
        if type(call_id) is not str:
            raise fail(key_path(where, "id"), "a string", call_id)
        call["id"] = call_id
    return call


_usage = token_usage("prompt", "completion")


def _annotate_response(response: JsonObject) -> JsonObject:
    messages: list[JsonObject] = []
    tool_calls: list[JsonObject] = []
    out: JsonObject = {"messages": messages, "tool_calls": tool_calls}
    value = response.get("id")
    if value is not None:
        if type(value) is not str:
            raise fail("id", "a string", value)
        out["id"] = value
    value = response.get("model")
    if value is not None:
        if type(value) is not str:
            raise fail("model", "a string", value)
        out["model"] = value
    choices = response.get("choices")
    if choices is not None:
        if type(choices) is not list:
            raise fail("choices", "an array", choices)
        for index, choice in enumerate(choices):
            if type(choice) is not dict:
                raise fail(f"choices[{index}]", "an object", choice)
            message = choice.get("message")
            if type(message) is not dict:
                raise fail(f"choices[{index}].message", "an object", message)
            parts: list[JsonObject] = []
            content = message.get("content")
            if content:
                if type(content) is not str:
                    raise fail(f"choices[{index}].message.content", "a string", content)
                parts.append({"type": "text", "text": content})
            refusal = message.get("refusal")
            if refusal:
                if type(refusal) is not str:
                    raise fail(f"choices[{index}].message.refusal", "a string", refusal)
                parts.append({"type": "refusal", "text": refusal})
            role = message.get("role")
            role = _ROLES.get(role, "assistant") if type(role) is str else "assistant"
            messages.append({"role": role, "content": parts})
            calls = message.get("tool_calls")
            if calls:
                if type(calls) is not list:
                    raise fail(f"choices[{index}].message.tool_calls", "an array", calls)
                where = f"choices[{index}].message.tool_calls"
                for i, call in enumerate(calls):
                    tool_calls.append(_response_tool_call(call, item_path(where, i)))
            legacy = message.get("function_call")
            if legacy:
                where = f"choices[{index}].message"
                tool_calls.append(_response_tool_call({"function": legacy}, where))
            if index == 0:
                finish = choice.get("finish_reason")
                if finish is not None:
                    if type(finish) is not str:
                        raise fail("choices[0].finish_reason", "a string", finish)
                    out["raw_finish_reason"] = finish
                    normalized = "refusal" if refusal and finish == "stop" else _FINISH.get(finish)
                    if normalized is not None:
                        out["finish_reason"] = normalized
    usage = response.get("usage")
    if usage is not None:
        out["usage"] = _usage(usage)
    return out


# -- stream ----------------------------------------------------------------------


class _Choice:
    __slots__ = ("content", "finish_reason", "logprobs", "refusal", "role", "tool_calls")

    def __init__(self) -> None:
        self.role: str = "assistant"
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: dict[int, JsonObject] = {}
        self.finish_reason: str | None = None
        self.logprobs: JsonObject | None = None


class OpenAIChatStreamAccumulator:
    """Folds ``chat.completion.chunk`` objects into the ``chat.completion`` they stream.

    Content, refusal and tool-call argument fragments are concatenated per choice
    (tool calls by their ``index``); the usage chunk sent with
    ``stream_options.include_usage`` becomes ``usage``. Raises ``CodecError`` on a
    malformed chunk.
    """

    __slots__ = ("_choices", "_head", "_usage")

    def __init__(self) -> None:
        self._head: JsonObject | None = None
        self._choices: dict[int, _Choice] = {}
        self._usage: Json = None

    def collect(self, chunk: Json) -> None:
        """Fold one chunk (a dict or an SDK ``ChatCompletionChunk``)."""
        data = chunk if type(chunk) is dict else as_object(chunk, "chunk")
        if self._head is None:
            self._head = {
                k: v
                for k, v in data.items()
                if k not in ("choices", "usage", "object", "obfuscation")
            }
        choices = data.get("choices")
        if choices:
            if type(choices) is not list:
                raise fail("chunk.choices", "an array", choices)
            if len(choices) == 1:  # the usual chunk: no enumerate
                self._collect_choice(choices[0], 0)
            else:
                for position, raw in enumerate(choices):
                    self._collect_choice(raw, position)
        usage = data.get("usage")
        if usage is not None:
            self._usage = usage

    def _collect_choice(self, raw: Json, position: int) -> None:
        # The error path (``where``) is built only when a check fails: this runs per chunk.
        if type(raw) is not dict:
            raise fail(f"chunk.choices[{position}]", "an object", raw)
        index = raw.get("index", 0)
        if type(index) is not int:
            raise fail(f"chunk.choices[{position}].index", "an integer", index)
        try:
            state = self._choices[index]
        except KeyError:
            state = self._choices[index] = _Choice()
        delta = raw.get("delta")
        if delta:
            if type(delta) is not dict:
                raise fail(f"chunk.choices[{position}].delta", "an object", delta)
            text = delta.get("content")
            if text is not None:
                if type(text) is not str:
                    raise fail(f"chunk.choices[{position}].delta.content", "a string", text)
                if state.content is None:
                    state.content = [text]
                else:
                    state.content.append(text)
            if text is None or len(delta) > 1:  # more than the usual text fragment
                self._collect_delta(state, delta, position)
        finish = raw.get("finish_reason")
        if finish is not None:
            state.finish_reason = finish
        logprobs = raw.get("logprobs")
        if logprobs:
            if type(logprobs) is not dict:
                raise fail(f"chunk.choices[{position}].logprobs", "an object", logprobs)
            if state.logprobs is None:
                state.logprobs = {}
            for key, items in logprobs.items():
                if type(items) is list:
                    state.logprobs.setdefault(key, []).extend(items)

    def text_slot(self, chunk: Json) -> tuple[str, Callable[[str], object], str | None] | None:
        """For a chunk just collected that only adds text: ``(text, append, obfuscation)``.

        The promise (tests prove it): from now until another chunk is collected,
        collecting a chunk equal to ``chunk`` except for the text and the
        ``obfuscation`` string (any strings) is the same as ``append(text)``.
        ``None`` for any other chunk. Never raises; changes nothing.
        """
        if type(chunk) is not dict or self._head is None or chunk.get("usage") is not None:
            return None
        choices = chunk.get("choices")
        if type(choices) is not list or len(choices) != 1 or type(choices[0]) is not dict:
            return None
        raw = choices[0]
        index = raw.get("index", 0)
        delta = raw.get("delta")
        if (
            type(index) is not int
            or type(delta) is not dict
            or len(delta) != 1
            or raw.get("finish_reason") is not None
            or raw.get("logprobs")
        ):
            return None
        text = delta.get("content")
        state = self._choices.get(index)
        if type(text) is not str or state is None or state.content is None:
            return None
        free = chunk.get("obfuscation")
        return text, state.content.append, free if type(free) is str else None

    def _collect_delta(self, state: _Choice, delta: JsonObject, position: int) -> None:
        where = f"chunk.choices[{position}]"
        refusal = delta.get("refusal")
        if refusal is not None:
            if type(refusal) is not str:
                raise fail(key_path(where, "delta.refusal"), "a string", refusal)
            if state.refusal is None:
                state.refusal = [refusal]
            else:
                state.refusal.append(refusal)
        role = delta.get("role")
        if role:
            state.role = role
        calls = delta.get("tool_calls")
        if calls:
            self._collect_tool_calls(state, calls, key_path(where, "delta.tool_calls"))

    @staticmethod
    def _collect_tool_calls(state: _Choice, calls: Json, where: str) -> None:
        if type(calls) is not list:
            raise fail(where, "an array", calls)
        for position, raw in enumerate(calls):
            if type(raw) is not dict:
                raise fail(item_path(where, position), "an object", raw)
            index = raw.get("index", position)
            if type(index) is not int:
                raise fail(key_path(item_path(where, position), "index"), "an integer", index)
            call = state.tool_calls.get(index)
            if call is None:
                call = state.tool_calls[index] = {"name": [], "arguments": []}
            if raw.get("id"):
                call["id"] = raw["id"]
            if raw.get("type"):
                call["type"] = raw["type"]
            function = raw.get("function")
            if function:
                fwhere = key_path(item_path(where, position), "function")
                if type(function) is not dict:
                    raise fail(fwhere, "an object", function)
                name = get_str(function, "name", fwhere)
                if name:
                    call["name"].append(name)
                arguments = get_str(function, "arguments", fwhere)
                if arguments:
                    call["arguments"].append(arguments)

    def finalize(self) -> JsonObject:
        """Return the ``chat.completion`` object the chunks add up to."""
        response: JsonObject = dict(self._head or {})
        response["object"] = "chat.completion"
        choices: list[JsonObject] = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message: JsonObject = {
                "role": state.role,
                "content": None if state.content is None else "".join(state.content),
                "refusal": None if state.refusal is None else "".join(state.refusal),
            }
            if state.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call.get("id"),
                        "type": call.get("type", "function"),
                        "function": {
                            "name": "".join(call["name"]),
                            "arguments": "".join(call["arguments"]),
                        },
                    }
                    for _, call in sorted(state.tool_calls.items())
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": state.logprobs,
                    "finish_reason": state.finish_reason,
                }
            )
        response["choices"] = choices
        response["usage"] = self._usage
        return response


# -- the codec -------------------------------------------------------------------


class OpenAIChatCodec(ProviderCodec):
    """Request, response and stream codec for OpenAI Chat Completions.

    ``data_schema`` is ``openai/chat-completions`` version ``1``. System and developer
    messages stay in ``messages`` (role ``system``; ``provider_role`` keeps
    ``"developer"``); an annotated ``system`` is written as one leading system
    message. ``max_completion_tokens`` (or the legacy ``max_tokens``) is
    ``max_tokens``. Every other body field is kept verbatim in ``extras``.
    """

    __slots__ = ()
    _DATA_SCHEMA = DataSchema("openai/chat-completions", "1")

    _annotate_body = _annotate_request
    _annotate_result = _annotate_response
    _accumulator = OpenAIChatStreamAccumulator
    _encode_body = _encode_body
