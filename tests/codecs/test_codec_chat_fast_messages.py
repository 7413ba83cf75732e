"""The OpenAI chat codec's direct reading of plain text messages equals the general one."""

from __future__ import annotations

from typing import Any

from codec_strategies import chat_messages
from hypothesis import given
from hypothesis import strategies as st

from llmflow import CodecError
from llmflow.codecs._openai_chat import _message, _messages

# Messages near the fast path's conditions: two keys, odd roles and contents.
_odd_messages = st.dictionaries(
    st.sampled_from(["role", "content", "name", "tool_call_id"]),
    st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "robot"])
    | st.text(max_size=3)
    | st.none()
    | st.integers()
    | st.lists(st.just({"type": "text", "text": "x"}), max_size=1),
    max_size=3,
)
_any_message = chat_messages() | _odd_messages | st.none() | st.text(max_size=2)


def _general(value: list[Any]) -> list[Any]:
    return [_message(m, f"messages[{i}]") for i, m in enumerate(value)]


def _outcome(read: Any, value: list[Any]) -> Any:
    try:
        return "ok", read(value)
    except CodecError as exc:
        return "error", str(exc), exc.field


@given(st.lists(_any_message, max_size=6))
def test_messages_annotate_as_message_by_message(value: list[Any]) -> None:
    fast, general = _outcome(_messages, value), _outcome(_general, value)
    assert fast == general
    if fast[0] == "ok":  # the same keys in the same order: the recorded bytes are the same
        assert [list(m) for m in fast[1]] == [list(m) for m in general[1]]


def test_each_plain_role_is_read_directly_and_keeps_its_provider_role() -> None:
    value = [
        {"role": role, "content": "hi"} for role in ("system", "developer", "user", "assistant")
    ] + [{"role": "function", "content": "ok"}]
    assert _messages(value) == [
        {"role": "system", "content": [{"type": "text", "text": "hi"}]},
        {
            "role": "system",
            "provider_role": "developer",
            "content": [{"type": "text", "text": "hi"}],
        },
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        {"role": "tool", "provider_role": "function", "content": [{"type": "text", "text": "ok"}]},
    ]


def test_a_tool_message_without_its_call_id_still_fails_naming_the_field() -> None:
    try:
        _messages([{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}])
    except CodecError as exc:
        assert exc.field == "messages[1].tool_call_id"
    else:
        raise AssertionError("expected a CodecError")
