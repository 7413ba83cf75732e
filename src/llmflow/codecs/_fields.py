"""Typed field access over provider JSON, with errors that name the offending field.

Every codec reads provider payloads through these helpers so that a malformed
payload always raises :class:`~llmflow.CodecError` carrying the dotted path of
the field (``"choices[0].message.content"``), never ``KeyError``/``TypeError``.

Paths are only formatted when an error is raised: callers pass the path of the
*container* (``where``) and the key, which keeps the happy path cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from llmflow._errors import CodecError
from llmflow._json import json_form
from llmflow._types import Json, JsonObject, LlmRequest

__all__ = [
    "as_object",
    "build_content",
    "content_parts",
    "dump_arguments",
    "fail",
    "get_bool",
    "get_int",
    "get_list",
    "get_number",
    "get_object",
    "get_str",
    "image_from_url",
    "invalid",
    "item_path",
    "join_data_url",
    "key_path",
    "merge_extras",
    "parse_arguments",
    "request_body",
    "require_str",
    "split_data_url",
    "str_list",
    "token_usage",
    "with_extras",
]


def key_path(where: str, key: str) -> str:
    """``where.key`` (or ``key`` at the top level)."""
    return f"{where}.{key}" if where else key


def item_path(where: str, index: int) -> str:
    """``where[index]``."""
    return f"{where}[{index}]"


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def fail(path: str, expected: str, value: object) -> CodecError:
    """A ``CodecError`` saying what ``path`` should have held and what it held."""
    return CodecError(f"expected {expected}, got {_type_name(value)}", field=path or None)


def invalid(path: str, message: str) -> CodecError:
    """A ``CodecError`` for ``path`` with ``message``."""
    return CodecError(message, field=path or None)


def as_object(value: object, path: str) -> JsonObject:
    """Return ``value`` as a JSON object.

    Accepts a ``dict`` or an SDK object (pydantic model, ``to_dict()``), taken
    in the JSON form the recorded events use (``llmflow._json.json_form``).
    Anything else raises ``CodecError``.
    """
    if type(value) is dict:
        return value
    if isinstance(value, dict):
        return dict(value)
    dumped = json_form(value)
    if isinstance(dumped, dict):
        return dumped
    raise fail(path, "a JSON object", value)


def request_body(request: object) -> JsonObject:
    """The JSON body of ``request``: an ``LlmRequest``'s ``content`` or a plain dict."""
    if isinstance(request, LlmRequest):
        return request.content
    return as_object(request, "")


def get_object(obj: JsonObject, key: str, where: str) -> JsonObject | None:
    """``obj[key]`` when it is an object, ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is dict:
        return value
    raise fail(key_path(where, key), "an object", value)


def get_list(obj: JsonObject, key: str, where: str) -> list[Any] | None:
    """``obj[key]`` when it is an array, ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is list:
        return value
    raise fail(key_path(where, key), "an array", value)


def get_str(obj: JsonObject, key: str, where: str) -> str | None:
    """``obj[key]`` when it is a string, ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise fail(key_path(where, key), "a string", value)


def require_str(obj: JsonObject, key: str, where: str) -> str:
    """``obj[key]``, which must be a string."""
    value = obj.get(key)
    if type(value) is str:
        return value
    raise fail(key_path(where, key), "a string", value)


def get_int(obj: JsonObject, key: str, where: str) -> int | None:
    """``obj[key]`` when it is an integer (not a bool), ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is int:
        return value
    raise fail(key_path(where, key), "an integer", value)


def get_number(obj: JsonObject, key: str, where: str) -> float | int | None:
    """``obj[key]`` when it is a number (not a bool), ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is float or type(value) is int:
        return value
    raise fail(key_path(where, key), "a number", value)


def get_bool(obj: JsonObject, key: str, where: str) -> bool | None:
    """``obj[key]`` when it is a boolean, ``None`` when absent or null."""
    value = obj.get(key)
    if value is None or type(value) is bool:
        return value
    raise fail(key_path(where, key), "a boolean", value)


def str_list(value: Json, path: str) -> list[str]:
    """``value`` as a list of strings: a lone string becomes a one-item list."""
    if type(value) is str:
        return [value]
    if type(value) is list:
        for index, item in enumerate(value):
            if type(item) is not str:
                raise fail(item_path(path, index), "a string", item)
        return value
    raise fail(path, "a string or an array of strings", value)


def parse_arguments(raw: str, part: JsonObject) -> None:
    """Store tool-call arguments in an annotated ``part``.

    Sets ``arguments`` to the parsed JSON; when ``raw`` is not JSON (or is the JSON
    ``null``, which the annotation could not tell from "absent") it sets
    ``raw_arguments`` to the string instead.
    """
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        part["raw_arguments"] = raw
        return
    if parsed is None:
        part["raw_arguments"] = raw
    else:
        part["arguments"] = parsed


def dump_arguments(part: JsonObject) -> str:
    """The provider argument string of an annotated tool-call ``part``."""
    raw = part.get("raw_arguments")
    if raw is not None:
        return str(raw)
    if "arguments" in part:
        return orjson.dumps(part["arguments"]).decode()
    return "{}"


_DATA_URL = re.compile(r"data:([^;,]+);base64,", re.ASCII)


def split_data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, data)`` of a ``data:<media type>;base64,<data>`` URL, else ``None``."""
    if not url.startswith("data:"):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group(1), url[match.end() :]


def join_data_url(media_type: str, data: str) -> str:
    """The inverse of :func:`split_data_url`."""
    return f"data:{media_type};base64,{data}"


def image_from_url(url: str) -> JsonObject:
    """The annotated image part of ``url``: inline ``media_type``/``data`` for a data URL."""
    inline = split_data_url(url)
    if inline is None:
        return {"type": "image", "url": url}
    return {"type": "image", "media_type": inline[0], "data": inline[1]}


# -- extras and content: what every codec does the same way -------------------------


def with_extras(part: JsonObject, raw: JsonObject, known: tuple[str, ...]) -> JsonObject:
    """``part`` with the provider keys it does not model kept under ``"extras"``.

    Keys of ``raw`` outside ``known`` survive a decode/encode round trip this way.
    """
    if len(raw) > len(known):
        extras = {k: v for k, v in raw.items() if k not in known}
        if extras:
            part["extras"] = extras
    return part


def merge_extras(raw: JsonObject, annotated: JsonObject) -> JsonObject:
    """The provider form ``raw`` with ``annotated``'s extras under it (modelled keys win)."""
    extras = annotated.get("extras")
    return {**extras, **raw} if extras else raw


def content_parts(
    content: Json,
    where: str,
    parse_part: Callable[[Json, str], JsonObject],
    noun: str = "content parts",
) -> list[JsonObject]:
    """Annotated parts of a message's ``content``: a string is one text part."""
    if type(content) is str:
        return [{"type": "text", "text": content}]
    if type(content) is list:
        return [parse_part(p, item_path(where, i)) for i, p in enumerate(content)]
    raise fail(where, f"a string or an array of {noun}", content)


def build_content(
    parts: list[JsonObject], where: str, build_part: Callable[[JsonObject, str], JsonObject]
) -> str | list[JsonObject]:
    """The provider ``content`` of annotated ``parts``: one plain text part becomes a string."""
    if len(parts) == 1 and parts[0]["type"] == "text" and "extras" not in parts[0]:
        text: str = parts[0]["text"]
        return text
    return [build_part(p, item_path(where, i)) for i, p in enumerate(parts)]


def token_usage(prompt: str, completion: str) -> Callable[[Json], JsonObject]:
    """A reader of OpenAI token usage into the annotation's ``usage``.

    ``prompt``/``completion`` name the two sides (``"prompt"``/``"completion"``
    in Chat Completions, ``"input"``/``"output"`` in Responses): the reader
    takes their ``*_tokens`` counts, ``total_tokens``, and the cached and
    reasoning counts from the ``*_tokens_details`` objects. Key names are
    built once here, not per response.
    """
    counts = (
        (f"{prompt}_tokens", "input_tokens"),
        (f"{completion}_tokens", "output_tokens"),
        ("total_tokens", "total_tokens"),
    )
    details = (
        (f"{prompt}_tokens_details", f"usage.{prompt}_tokens_details", "cached_tokens"),
        (f"{completion}_tokens_details", f"usage.{completion}_tokens_details", "reasoning_tokens"),
    )

    def read(raw: Json) -> JsonObject:
        if type(raw) is not dict:
            raise fail("usage", "an object", raw)
        usage: JsonObject = {}
        for source, target in counts:
            value = get_int(raw, source, "usage")
            if value is not None:
                usage[target] = value
        for key, where, field in details:
            detail = get_object(raw, key, "usage")
            if detail:
                value = get_int(detail, field, where)
                if value is not None:
                    usage[field] = value
        return usage

    return read
