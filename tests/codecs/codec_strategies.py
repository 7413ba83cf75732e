"""Hypothesis strategies generating valid request bodies for each provider."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

Draw = Any

texts = st.text(max_size=12)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | texts
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
json_objects = st.dictionaries(names, json_values, max_size=3)
numbers = st.none() | st.floats(0, 2, allow_nan=False) | st.integers(0, 2)
ids = st.from_regex(r"(call|toolu|fc)_[A-Za-z0-9]{1,6}", fullmatch=True)
media_types = st.sampled_from(["image/png", "image/jpeg", "image/webp"])
b64 = st.from_regex(r"[A-Za-z0-9+/]{4,16}={0,2}", fullmatch=True)
urls = st.from_regex(r"https://example\.com/[a-z]{1,8}\.(png|jpg)", fullmatch=True)


@st.composite
def argument_strings(draw: Draw) -> str:
    """Tool-call argument strings: JSON in assorted formattings, or not JSON at all."""
    value = draw(json_objects)
    style = draw(st.sampled_from(["compact", "spaced", "indented", "broken", "empty", "null"]))
    if style == "compact":
        return json.dumps(value, separators=(",", ":"))
    if style == "spaced":
        return json.dumps(value)
    if style == "indented":
        return json.dumps(value, indent=2)
    if style == "broken":
        return json.dumps(value)[:-1] + "{"
    if style == "null":
        return "null"
    return ""


def _with_extras(draw: Draw, body: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
        body[key] = draw(json_values)
    return body


def _maybe(draw: Draw, body: dict[str, Any], key: str, strategy: st.SearchStrategy[Any]) -> None:
    if draw(st.booleans()):
        body[key] = draw(strategy)


# -- OpenAI Chat Completions ------------------------------------------------------


@st.composite
def chat_parts(draw: Draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "image_url", "image_data", "audio", "text_extra"]))
    if kind == "text":
        return {"type": "text", "text": draw(texts)}
    if kind == "text_extra":
        return {"type": "text", "text": draw(texts), "cache_control": {"type": "ephemeral"}}
    if kind == "image_url":
        image: dict[str, Any] = {"url": draw(urls)}
        _maybe(draw, image, "detail", st.sampled_from(["low", "high", "auto"]))
        return {"type": "image_url", "image_url": image}
    if kind == "image_data":
        url = f"data:{draw(media_types)};base64,{draw(b64)}"
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "input_audio", "input_audio": {"data": draw(b64), "format": "wav"}}


@st.composite
def chat_messages(draw: Draw) -> dict[str, Any]:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    content: Any = draw(texts | st.lists(chat_parts(), max_size=3))
    message: dict[str, Any] = {"role": role}
    if role == "tool":
        message["tool_call_id"] = draw(ids)
        message["content"] = draw(texts | st.lists(st.builds(_text_part, texts), max_size=2))
    elif role == "assistant":
        message["content"] = draw(st.none() | texts)
        _maybe(draw, message, "refusal", st.none() | texts)
        calls = draw(st.lists(chat_tool_calls(), max_size=3))
        if calls or draw(st.booleans()):
            message["tool_calls"] = calls
    else:
        message["content"] = content
    return _with_extras(draw, message, ["name", "x_meta"])


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


@st.composite
def chat_tool_calls(draw: Draw) -> dict[str, Any]:
    return {
        "id": draw(ids),
        "type": "function",
        "function": {"name": draw(names), "arguments": draw(argument_strings())},
    }


@st.composite
def chat_tools(draw: Draw) -> dict[str, Any]:
    function: dict[str, Any] = {"name": draw(names)}
    _maybe(draw, function, "description", texts)
    _maybe(draw, function, "parameters", st.just({"type": "object", "properties": {}}))
    _maybe(draw, function, "strict", st.booleans())
    return {"type": "function", "function": function}


@st.composite
def chat_requests(draw: Draw) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["gpt-4o", "gpt-4.1-mini", "o3"])),
        "messages": draw(st.lists(chat_messages(), max_size=5)),
    }
    _maybe(draw, body, "temperature", numbers)
    _maybe(draw, body, "top_p", numbers)
    _maybe(
        draw,
        body,
        draw(st.sampled_from(["max_tokens", "max_completion_tokens"])),
        st.none() | st.integers(1, 4096),
    )
    _maybe(draw, body, "stop", st.none() | texts | st.lists(texts, max_size=3))
    _maybe(draw, body, "seed", st.none() | st.integers(0, 99))
    _maybe(draw, body, "stream", st.none() | st.booleans())
    _maybe(draw, body, "tools", st.none() | st.lists(chat_tools(), max_size=2))
    choice = st.sampled_from(["auto", "none", "required"]) | st.builds(
        lambda n: {"type": "function", "function": {"name": n}}, names
    )
    _maybe(draw, body, "tool_choice", st.none() | choice | json_objects)
    return _with_extras(draw, body, ["n", "user", "metadata", "stream_options", "x_vendor"])


# -- OpenAI Responses -------------------------------------------------------------


@st.composite
def responses_parts(draw: Draw, role: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "image", "file", "refusal"]))
    if kind == "text":
        text_type = "output_text" if role == "assistant" else "input_text"
        part: dict[str, Any] = {"type": text_type, "text": draw(texts)}
        if role == "assistant":
            part["annotations"] = []
        return part
    if kind == "image":
        part = {"type": "input_image", "detail": draw(st.sampled_from(["low", "high", "auto"]))}
        source = draw(st.sampled_from(["url", "data", "file"]))
        if source == "url":
            part["image_url"] = draw(urls)
        elif source == "data":
            part["image_url"] = f"data:{draw(media_types)};base64,{draw(b64)}"
        else:
            part["file_id"] = "file-" + draw(names)
        return part
    if kind == "refusal" and role == "assistant":
        return {"type": "refusal", "refusal": draw(texts)}
    return {"type": "input_file", "file_id": "file-" + draw(names)}


@st.composite
def responses_items(draw: Draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["easy", "message", "call", "output", "reasoning", "reference"]))
    if kind in ("easy", "message"):
        role = draw(st.sampled_from(["system", "developer", "user", "assistant"]))
        if kind == "easy":
            return {"role": role, "content": draw(texts)}
        item: dict[str, Any] = {
            "type": "message",
            "role": role,
            "content": draw(st.lists(responses_parts(role), max_size=3)),
        }
        if role == "assistant" and draw(st.booleans()):
            item["id"] = "msg_" + draw(names)
            item["status"] = "completed"
        return item
    if kind == "call":
        item = {
            "type": "function_call",
            "call_id": draw(ids),
            "name": draw(names),
            "arguments": draw(argument_strings()),
        }
        _maybe(draw, item, "id", st.just("fc_1"))
        return item
    if kind == "output":
        output = draw(
            texts | st.lists(st.builds(lambda t: {"type": "input_text", "text": t}, texts))
        )
        return {"type": "function_call_output", "call_id": draw(ids), "output": output}
    if kind == "reasoning":
        return {"type": "reasoning", "id": "rs_" + draw(names), "summary": []}
    return {"type": "item_reference", "id": "msg_" + draw(names)}


@st.composite
def responses_requests(draw: Draw) -> dict[str, Any]:
    body: dict[str, Any] = {"model": draw(st.sampled_from(["gpt-4.1", "o4-mini"]))}
    body["input"] = draw(texts | st.lists(responses_items(), max_size=5))
    _maybe(draw, body, "instructions", st.none() | texts)
    _maybe(draw, body, "temperature", numbers)
    _maybe(draw, body, "top_p", numbers)
    _maybe(draw, body, "max_output_tokens", st.none() | st.integers(1, 4096))
    _maybe(draw, body, "stream", st.booleans())
    tool = st.builds(
        lambda n, s: {"type": "function", "name": n, "parameters": {"type": "object"}, "strict": s},
        names,
        st.booleans(),
    ) | st.sampled_from([{"type": "web_search"}, {"type": "file_search", "vector_store_ids": []}])
    _maybe(draw, body, "tools", st.lists(tool, max_size=3))
    choice = st.sampled_from(["auto", "none", "required"]) | st.builds(
        lambda n: {"type": "function", "name": n}, names
    )
    _maybe(draw, body, "tool_choice", choice | json_objects)
    return _with_extras(draw, body, ["reasoning", "text", "store", "metadata", "x_vendor"])


# -- Anthropic Messages -----------------------------------------------------------


@st.composite
def anthropic_image(draw: Draw) -> dict[str, Any]:
    kind = draw(st.sampled_from(["base64", "url", "file"]))
    if kind == "base64":
        source = {"type": "base64", "media_type": draw(media_types), "data": draw(b64)}
    elif kind == "url":
        source = {"type": "url", "url": draw(urls)}
    else:
        source = {"type": "file", "file_id": "file_" + draw(names)}
    block: dict[str, Any] = {"type": "image", "source": source}
    _maybe(draw, block, "cache_control", st.just({"type": "ephemeral"}))
    return block


@st.composite
def anthropic_blocks(draw: Draw, role: str) -> dict[str, Any]:
    kinds = ["text", "image", "document"]
    kinds += ["tool_use", "thinking", "redacted"] if role == "assistant" else ["tool_result"]
    kind = draw(st.sampled_from(kinds))
    if kind == "text":
        block: dict[str, Any] = {"type": "text", "text": draw(texts)}
        _maybe(draw, block, "cache_control", st.just({"type": "ephemeral"}))
        return block
    if kind == "image":
        return draw(anthropic_image())
    if kind == "document":
        return {"type": "document", "source": {"type": "url", "url": draw(urls)}}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": draw(ids),
            "name": draw(names),
            "input": draw(json_objects),
        }
    if kind == "thinking":
        return {"type": "thinking", "thinking": draw(texts), "signature": draw(b64)}
    if kind == "redacted":
        return {"type": "redacted_thinking", "data": draw(b64)}
    block = {"type": "tool_result", "tool_use_id": draw(ids)}
    nested = st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts) | anthropic_image())
    _maybe(draw, block, "content", texts | nested)
    _maybe(draw, block, "is_error", st.booleans())
    return block


@st.composite
def anthropic_messages(draw: Draw) -> dict[str, Any]:
    role = draw(st.sampled_from(["user", "assistant"]))
    content = draw(texts | st.lists(anthropic_blocks(role), max_size=3))
    return {"role": role, "content": content}


@st.composite
def anthropic_requests(draw: Draw) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": draw(st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5"])),
        "max_tokens": draw(st.integers(1, 8192)),
        "messages": draw(st.lists(anthropic_messages(), max_size=5)),
    }
    system_block = st.builds(lambda t: {"type": "text", "text": t}, texts) | st.builds(
        lambda t: {"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}, texts
    )
    _maybe(draw, body, "system", st.none() | texts | st.lists(system_block, max_size=3))
    _maybe(draw, body, "temperature", numbers)
    _maybe(draw, body, "top_p", numbers)
    _maybe(draw, body, "top_k", st.integers(1, 100))
    _maybe(draw, body, "stop_sequences", st.lists(texts, max_size=3))
    _maybe(draw, body, "stream", st.booleans())
    tool = st.builds(lambda n: {"name": n, "input_schema": {"type": "object"}}, names) | st.just(
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}
    )
    _maybe(draw, body, "tools", st.lists(tool, max_size=3))
    choice = st.builds(
        lambda t, p: {"type": t, "disable_parallel_tool_use": p} if p is not None else {"type": t},
        st.sampled_from(["auto", "any", "none"]),
        st.none() | st.booleans(),
    ) | st.builds(lambda n: {"type": "tool", "name": n}, names)
    _maybe(draw, body, "tool_choice", choice)
    return _with_extras(draw, body, ["metadata", "thinking", "service_tier", "x_vendor"])
