"""``llmflow.atof.span_facts``: one reading of a span's facts for every consumer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from llmflow.atof import span_facts
from llmflow.atof._facts import end_model_and_provider, request_facts


def _start(**extra: object) -> dict[str, object]:
    return {"name": "openai.chat", "category": "llm", "timestamp": 1_000, **extra}


def test_facts_join_model_tokens_cost_and_duration() -> None:
    start = _start(category_profile={"model_name": "gpt-4o-mini"})
    end = {
        "timestamp": "1970-01-01T00:00:00.003000Z",
        "metadata": {"cost.usd": 0.25, "http.status_code": 200, "http.attempt": 1},
        "category_profile": {
            "annotated_response": {
                "model": "gpt-4o-mini-2024",
                "usage": {"input_tokens": 10, "output_tokens": 4, "cached_tokens": 2},
            }
        },
        "data_schema": {"name": "openai/chat-completions", "version": "1"},
    }
    facts = span_facts(start, end)
    assert facts.duration_us == 2_000
    assert facts.model == "gpt-4o-mini-2024"  # the response's model wins over the request's
    assert (facts.input_tokens, facts.output_tokens, facts.cached_tokens) == (10, 4, 2)
    assert facts.cost_usd == 0.25 and facts.status_code == 200 and facts.attempt == 1
    assert facts.provider == "openai" and facts.ok


def test_unknown_facts_stay_none_never_zero() -> None:
    facts = span_facts(_start(), None)
    assert facts.duration_us is None and facts.cost_usd is None and facts.input_tokens is None
    assert facts.model is None and facts.provider is None


def test_errors_and_explicit_provider_are_read_from_metadata() -> None:
    start = _start(metadata={"provider.name": "azure.ai.openai"})
    end = {"timestamp": 2_000, "metadata": {"exception.type": "TimeoutError", "cost.usd": True}}
    facts = span_facts(start, end)
    assert facts.provider == "azure.ai.openai"
    assert facts.error_type == "TimeoutError" and not facts.ok
    assert facts.cost_usd is None  # a bool is not a price


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.floats()
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_names = st.sampled_from(["", "gpt-4o", "claude", "openai/chat-completions", "anthropic/messages"])
_profiles = (
    st.none()
    | _values
    | st.fixed_dictionaries(
        {},
        optional={
            "model_name": st.none() | _names | st.integers(),
            "annotated_request": st.none()
            | _values
            | st.fixed_dictionaries({}, optional={"model": st.none() | _names | st.integers()}),
        },
    )
)
_metadata = (
    st.none()
    | _values
    | st.fixed_dictionaries({}, optional={"provider.name": st.none() | _names | st.integers()})
)
_schemas = st.none() | _values | st.fixed_dictionaries({"name": _names | st.integers()})


@given(profile=_profiles, metadata=_metadata, schema=_schemas)
def test_request_facts_say_what_span_facts_of_an_open_span_say(
    profile: object, metadata: object, schema: object
) -> None:
    start = _start(category_profile=profile, metadata=metadata, data_schema=schema)
    facts = span_facts(start, None)
    assert request_facts(start) == (facts.model, facts.provider)


_end_profiles = _profiles | st.fixed_dictionaries(
    {},
    optional={
        "model_name": st.none() | _names,
        "annotated_response": st.none()
        | _values
        | st.fixed_dictionaries({}, optional={"model": st.none() | _names | st.integers()}),
    },
)


@given(profile=_end_profiles, metadata=_metadata, schema=_schemas)
def test_end_model_and_provider_say_what_span_facts_of_the_end_alone_say(
    profile: object, metadata: object, schema: object
) -> None:
    end = _start(category_profile=profile, metadata=metadata, data_schema=schema)
    end["scope_category"] = "end"
    facts = span_facts(end, end, duration_us=0)
    assert end_model_and_provider(end) == (facts.model, facts.provider)
