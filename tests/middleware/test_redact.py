"""SPEC §14 redact: PII presets, strategies, one registration over every recorded payload."""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from _mw_support import llm_request
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import DuplicateRegistrationError, LlmRequest, testing
from llmflow.codecs import OpenAIChatCodec
from llmflow.middleware import Redactor, redact
from llmflow.middleware._redact import luhn_valid, mod97_valid

RunAsync = Callable[[Coroutine[Any, Any, Any]], Any]

EMAIL = "jane.doe+llm@example.co.uk"
CARD = "4111 1111 1111 1111"  # Luhn-valid test number
IBAN = "GB82 WEST 1234 5698 7654 32"  # the ISO 13616 example
KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def wire(events: list[llmflow.Event]) -> str:
    return "\n".join(e.to_json().decode() for e in events)


def test_one_registration_covers_llm_tool_scope_and_mark_events_but_not_the_real_values(
    run_async: RunAsync,
) -> None:
    handle = redact()
    seen: dict[str, Any] = {}

    def provider(request: LlmRequest) -> Any:
        seen["request"] = request.content
        return {"choices": [{"message": {"role": "assistant", "content": f"mail {EMAIL}"}}]}

    def tool(args: Any) -> Any:
        seen["args"] = args
        return {"card": CARD}

    def failing_tool(args: Any) -> Any:
        raise ValueError(f"no account for {EMAIL}")

    async def main() -> Any:
        async with llmflow.scope("agent", "agent", data={"user": EMAIL}):
            llmflow.mark("note", data={"iban": IBAN}, metadata={"owner": EMAIL})
            answer = await llmflow.llm_call_execute(
                "chat",
                LlmRequest({"x-user": EMAIL}, {"model": "m", "messages": [EMAIL, KEY]}),
                provider,
            )
            result = await llmflow.tool_call_execute("lookup", {"email": EMAIL}, tool)
            with pytest.raises(ValueError):
                await llmflow.tool_call_execute("fail", {}, failing_tool)
            return answer, result

    with testing.capture() as events:
        answer, result = run_async(main())
    recorded = wire(events)
    for secret in (EMAIL, CARD, IBAN, KEY):
        assert secret not in recorded
    assert recorded.count("[REDACTED:email]") >= 6
    assert "[REDACTED:credit_card]" in recorded
    assert "[REDACTED:iban]" in recorded
    assert "[REDACTED:api_key]" in recorded
    # the provider, the tool and the caller saw the real values
    assert seen == {"request": {"model": "m", "messages": [EMAIL, KEY]}, "args": {"email": EMAIL}}
    assert answer["choices"][0]["message"]["content"] == f"mail {EMAIL}"
    assert result == {"card": CARD}
    assert handle.deregister() is True
    assert handle.deregister() is False
    with testing.capture() as events:
        llmflow.mark("after", data=EMAIL)
    assert EMAIL in wire(events)


def test_codec_annotations_are_built_from_the_redacted_copy() -> None:
    redact("email")
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"I am {EMAIL}"}]}
    response = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"Hello {EMAIL}"},
            }
        ],
    }
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat",
            LlmRequest({}, body),
            lambda r: response,
            codec=OpenAIChatCodec(),
            response_codec=OpenAIChatCodec(),
        )
    recorded = wire(events)
    assert EMAIL not in recorded
    start, end = (e for e in events if e.category == "llm")
    assert "annotated_request" in start.category_profile
    assert "annotated_response" in end.category_profile


@pytest.mark.parametrize(
    ("preset", "text", "found"),
    [
        ("email", "write to a.b@example.com today", "a.b@example.com"),
        ("phone", "call +1 (555) 123-4567 now", "+1 (555) 123-4567"),
        ("phone", "call 555-123-4567 now", "555-123-4567"),
        ("phone", "ring +44 20 7946 0958", "+44 20 7946 0958"),
        ("credit_card", "card 4111-1111-1111-1111 ok", "4111-1111-1111-1111"),
        ("credit_card", "amex 378282246310005.", "378282246310005"),
        ("iban", f"pay {IBAN} please", IBAN),
        ("iban", "pay DE89370400440532013000", "DE89370400440532013000"),
        ("ipv4", "from 192.168.10.254.", "192.168.10.254"),
        ("ipv6", "from 2001:db8::8a2e:370:7334 ok", "2001:db8::8a2e:370:7334"),
        ("ipv6", "loopback ::1 here", "::1"),
        ("api_key", f"key {KEY}", KEY),
        ("api_key", "key sk-ant-api03-" + "x" * 40, "sk-ant-api03-" + "x" * 40),
        ("api_key", "key AIza" + "B" * 35, "AIza" + "B" * 35),
        ("api_key", "token ghp_" + "a" * 36, "ghp_" + "a" * 36),
        ("api_key", "aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ],
)
def test_each_preset_finds_its_shape(preset: str, text: str, found: str) -> None:
    redactor = Redactor([preset])
    assert redactor.text(text) == text.replace(found, f"[REDACTED:{preset}]")


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "iban GB82 WEST 1234 5698 7654 33 fails mod-97",
        "version 1.2.3.4.5 is not an address",
        "at 12:30:45 sharp",
        "released 2024-06-01",
        "order 1234567 shipped",
        "999.1.1.1 is no IPv4 address",
    ],
)
def test_lookalikes_are_left_alone(text: str) -> None:
    assert Redactor().text(text) == text


def test_hash_is_stable_for_one_salt_and_differs_across_salts() -> None:
    a = Redactor(["email"], strategy="hash", salt="s1")
    b = Redactor(["email"], strategy="hash", salt="s1")
    c = Redactor(["email"], strategy="hash", salt="s2")
    first = a.text(f"to {EMAIL}")
    assert first == b.text(f"to {EMAIL}")
    assert first != c.text(f"to {EMAIL}")
    assert first.startswith("to [email:") and len(first) == len("to [email:]") + 12
    assert a.text("to other@example.com") != first


def test_remove_deletes_the_finding() -> None:
    assert Redactor(["email"], strategy="remove").text(f"<{EMAIL}>") == "<>"


def test_user_patterns_are_labelled_and_applied_after_the_presets() -> None:
    redactor = Redactor(["email"], patterns={"order": r"ORD-\d{6}"})
    assert redactor.text(f"ORD-123456 by {EMAIL}") == "[REDACTED:order] by [REDACTED:email]"
    assert Redactor([], patterns=[r"secret-\w+"]).text("a secret-xyz") == "a [REDACTED:custom]"


def test_json_is_copied_only_where_something_changed() -> None:
    redactor = Redactor(["email"])
    clean = {"a": [1, "x"], "b": {"c": None}}
    assert redactor.json(clean) is clean
    dirty = {"a": [1, EMAIL], "b": {"c": None}}
    out = redactor.json(dirty)
    assert out == {"a": [1, "[REDACTED:email]"], "b": {"c": None}}
    assert dirty["a"][1] == EMAIL  # the input is never mutated
    assert out["b"] is dirty["b"]


def test_on_a_scope_it_covers_only_events_inside_that_scope_and_ends_with_it(
    run_async: RunAsync,
) -> None:
    async def main() -> None:
        llmflow.mark("before", data=EMAIL)
        async with llmflow.scope("agent", "agent") as agent:
            redact("email", scope=agent)
            llmflow.mark("inside", data=EMAIL)
            with llmflow.scope("step"):
                llmflow.mark("nested", data=EMAIL)
            await llmflow.llm_call_execute("chat", llm_request(note=EMAIL), lambda r: EMAIL)
        llmflow.mark("after", data=EMAIL)
        await llmflow.llm_call_execute("chat", llm_request(note=EMAIL), lambda r: EMAIL)

    with testing.capture() as events:
        run_async(main())
    by_name = {e.name: e for e in events if e.kind == "mark"}
    assert by_name["before"].data == EMAIL
    assert by_name["inside"].data == "[REDACTED:email]"
    assert by_name["nested"].data == "[REDACTED:email]"
    assert by_name["after"].data == EMAIL
    calls = [e for e in events if e.category == "llm"]
    assert [c.data if c.scope_category == "end" else c.data["content"]["note"] for c in calls] == [
        "[REDACTED:email]",
        "[REDACTED:email]",
        EMAIL,
        EMAIL,
    ]
    assert not any(
        llmflow.get_runtime().sanitizers[kind].entries for kind in ("mark", "scope_start")
    )


def test_a_taken_name_raises_and_leaves_nothing_half_registered() -> None:
    first = redact("email")
    with pytest.raises(DuplicateRegistrationError):
        redact("phone")
    with testing.capture() as events:
        llmflow.mark("m", data=EMAIL)
    assert events[0].data == "[REDACTED:email]"  # the first registration is intact
    first.deregister()
    with redact("email", name="second"), testing.capture() as events:
        llmflow.mark("m", data=EMAIL)
    assert events[0].data == "[REDACTED:email]"
    with testing.capture() as events:
        llmflow.mark("m", data=EMAIL)
    assert events[0].data == EMAIL  # leaving the with block removed it


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"presets": ["emails"]}, "presets"),
        ({"strategy": "blur"}, "strategy"),
        ({"patterns": ["("]}, "patterns"),
        ({"patterns": {"empty": "x*"}}, "patterns"),
        ({"patterns": {"": "x"}}, "patterns"),
    ],
)
def test_bad_options_are_a_value_error_naming_the_parameter(
    kwargs: dict[str, Any], param: str
) -> None:
    presets = kwargs.pop("presets", None)
    with pytest.raises(ValueError, match=rf"^{param}: "):
        Redactor(presets, **kwargs)


def test_luhn_and_mod97_checks() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert mod97_valid("GB82WEST12345698765432")
    assert not mod97_valid("GB82WEST12345698765433")


# -- properties --------------------------------------------------------------------------

_LOCAL = string.ascii_letters + string.digits + "._%+-"
emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text(_LOCAL, min_size=1, max_size=20).filter(lambda s: s[0] not in ".%+-"),
    st.lists(
        st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10),
        min_size=1,
        max_size=3,
    ),
    st.text(string.ascii_lowercase, min_size=2, max_size=6),
)
filler = st.text(string.ascii_letters + " ,;:!?()", max_size=30)


def _with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("unreachable")


card_bodies = st.text("0123456789", min_size=12, max_size=18)
separators = st.sampled_from(["", " ", "-"])


def _format(number: str, sep: str) -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@settings(max_examples=200)
@given(prefix=filler, email=emails, suffix=filler)
def test_no_email_survives(prefix: str, email: str, suffix: str) -> None:
    text = f"{prefix} {email} {suffix}"
    assert email not in Redactor(["email"]).text(text)


@settings(max_examples=200)
@given(prefix=filler, body=card_bodies, sep=separators, suffix=filler)
def test_no_luhn_valid_card_number_survives(prefix: str, body: str, sep: str, suffix: str) -> None:
    card = _format(_with_check_digit(body), sep)
    redacted = Redactor().text(f"{prefix} {card} {suffix}")
    assert card not in redacted
    assert "[REDACTED:credit_card]" in redacted


@settings(max_examples=200)
@given(prefix=filler, body=card_bodies, sep=separators, suffix=filler)
def test_luhn_invalid_numbers_are_untouched(prefix: str, body: str, sep: str, suffix: str) -> None:
    valid = _with_check_digit(body)
    invalid = valid[:-1] + str((int(valid[-1]) + 1) % 10)
    text = f"{prefix} {_format(invalid, sep)} {suffix}"
    assert Redactor(["credit_card"]).text(text) == text


@settings(max_examples=100)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | filler | emails,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
))  # fmt: skip
def test_redacted_json_is_json_of_the_same_shape_without_emails(value: Any) -> None:
    out = Redactor(["email"]).json(value)
    assert json.loads(json.dumps(out)) == out
    assert not any(e in json.dumps(out) for e in _emails_in(value))


def _emails_in(value: Any) -> list[str]:
    # the filler alphabet has no "@": every string with one is a generated address
    if isinstance(value, str):
        return [value] if "@" in value else []
    if isinstance(value, list):
        return [e for item in value for e in _emails_in(item)]
    if isinstance(value, dict):
        return [e for item in value.values() for e in _emails_in(item)]
    return []


def test_through_an_instrumented_sdk_client_the_wire_record_is_redacted() -> None:
    import openai

    from llmflow.testing import FakeProvider, Reply

    redact("email", "api_key")
    with FakeProvider() as provider:
        provider.script(Reply(text=f"I wrote to {EMAIL}"))
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{provider.base_url}/v1", api_key=KEY, max_retries=0)
        )
        with testing.capture() as events:
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"contact {EMAIL}"}]
            )
        assert EMAIL in provider.requests[0].body.decode()  # the provider got the real text
    assert answer.choices[0].message.content == f"I wrote to {EMAIL}"
    recorded = wire(events)
    assert EMAIL not in recorded and KEY not in recorded
    end = next(e for e in events if e.category == "llm" and e.scope_category == "end")
    assert "[REDACTED:email]" in json.dumps(end.category_profile["annotated_response"])


# -- the fast path equals the straightforward scan --------------------------------------
# Redactor skips presets by cheap necessary-condition tests (per string, and once
# over the serialized JSON value). The reference below applies the alternation of
# every preset to every string with no pre-test at all: the two must agree.

from llmflow.middleware._redact import PRESETS  # noqa: E402

_REFERENCE = __import__("re").compile("|".join(f"({pattern})" for pattern, _ in PRESETS.values()))
_REFERENCE_LABELS = list(PRESETS)


def _reference_text(value: str) -> str:
    if len(value) <= 2:
        return value

    def replace(match: Any) -> str:
        label = _REFERENCE_LABELS[match.lastindex - 1]
        validator = PRESETS[label][1]
        if validator is not None and not validator(match.group(0)):
            return match.group(0)
        return f"[REDACTED:{label}]"

    return _REFERENCE.sub(replace, value)


def _reference_json(value: Any) -> Any:
    if isinstance(value, str):
        return _reference_text(value)
    if isinstance(value, list):
        return [_reference_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _reference_json(item) for key, item in value.items()}
    return value


_pii = st.sampled_from([
    EMAIL, CARD, "4111-1111-1111-1111", "4111111111111111", "4111111111111112",
    "4222222222222", IBAN,
    "DE89370400440532013000", "192.168.0.1", "10.0.0.255", "999.1.1.1", "1.2.3",
    "2001:db8::8a2e:370:7334", "fe80::1", "::1", "a:b:c", KEY, "AKIA" + "ABCDEFGHIJKLMNOP",
    "AIza" + "x" * 35, "ghp_" + "a1" * 18, "+44 20 7946 0958", "(030) 1234-5678",
    "555-123-4567", "555 1234", "+1", "12 34", "v1.2.3.4.5", "0.2", "x@y", "a@b.cc",
    # Arabic-Indic digits: \d matches them, so these take the regular-expression hints
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663",
    "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661",
    "192.168.\u0660.1",
])  # fmt: skip
_noise_chars = list('aZ09 .-+:@_()/\n"\\\u00e9\u0663') + list(string.ascii_letters)
_noise = st.text(st.sampled_from(_noise_chars), max_size=12)
pii_texts = st.lists(_pii | _noise, max_size=8).map("".join)


@settings(max_examples=400)
@given(text=pii_texts)
def test_fast_path_equals_the_full_alternation_on_text(text: str) -> None:
    assert Redactor().text(text) == _reference_text(text)


@settings(max_examples=200)
@given(value=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | pii_texts,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(pii_texts, children, max_size=4),
    max_leaves=12,
))  # fmt: skip
def test_fast_path_equals_the_full_alternation_on_json(value: Any) -> None:
    assert Redactor().json(value) == _reference_json(value)


def test_non_str_keys_and_lone_surrogates_are_walked_like_any_value() -> None:
    value = {"a": ["mail " + EMAIL, "\ud800 lone surrogate"], 1: "card " + CARD}
    out = Redactor().json(value)
    assert out == {"a": ["mail [REDACTED:email]", "\ud800 lone surrogate"],
                   1: "card [REDACTED:credit_card]"}  # fmt: skip


_SHARED = Redactor()  # its memory of redacted strings persists across examples


@settings(max_examples=200)
@given(value=st.lists(pii_texts | st.dictionaries(pii_texts, pii_texts, max_size=3), max_size=5))
def test_a_redactor_reused_across_payloads_gives_what_a_fresh_one_gives(value: Any) -> None:
    expected = _reference_json(value)
    assert _SHARED.json(value) == expected
    assert _SHARED.json(value) == expected  # the second time every string is known
    assert [_SHARED.text(t) for t in value if isinstance(t, str)] == [
        _reference_text(t) for t in value if isinstance(t, str)
    ]


def test_huge_and_many_texts_are_redacted_every_time_beyond_the_memory_bound() -> None:
    redactor = Redactor(["email"])
    huge = "x " * 40_000 + EMAIL  # longer than what is remembered
    for _ in range(2):
        assert redactor.json({"a": [huge]}) == {"a": ["x " * 40_000 + "[REDACTED:email]"]}
    many = [f"{i:07d} {'y' * 1000} {EMAIL}" for i in range(5000)]  # more than the budget
    for _ in range(2):
        assert redactor.json(many) == [t.replace(EMAIL, "[REDACTED:email]") for t in many]


def test_unchanged_parts_are_shared_and_changed_ones_copied() -> None:
    clean = {"k": ["plain text", 1, None]}
    value = {"clean": clean, "dirty": {"mail": EMAIL, "n": 2}, "list": ["ok", EMAIL]}
    out = Redactor().json(value)
    assert out["clean"] is clean
    assert out == {
        "clean": clean,
        "dirty": {"mail": "[REDACTED:email]", "n": 2},
        "list": ["ok", "[REDACTED:email]"],
    }
    assert value["dirty"]["mail"] == EMAIL and value["list"][1] == EMAIL  # input untouched
