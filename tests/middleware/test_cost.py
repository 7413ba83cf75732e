"""Cost: the bundled genai-prices snapshot, ``price()`` and ``cost.usd`` on LLM end events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from _cost_support import (
    ANTHROPIC,
    CHAT,
    RESPONSES,
    FakeProvider,
    anthropic_events,
    anthropic_request,
    anthropic_response,
    chat_chunks,
    chat_request,
    chat_response,
    drain,
    ends,
    responses_response,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import llmflow
from llmflow import testing
from llmflow.codecs import Usage
from llmflow.middleware import Cost, CostRecorder, price
from llmflow.middleware._prices import PriceTable, build_document, bundled_table

genai_prices = pytest.importorskip("genai_prices")

SOURCE = bundled_table().source


@pytest.fixture
def recorder(runtime: llmflow.Runtime) -> CostRecorder:
    return CostRecorder().register(runtime=runtime)


def genai_total(model: str, provider: str, **usage: int) -> float:
    result = genai_prices.calc_price(
        genai_prices.Usage(**usage), model_ref=model, provider_id=provider
    )
    return float(result.total_price)


# -- the table and price() ---------------------------------------------------------


def test_snapshot_records_its_source_version_and_date() -> None:
    document = json.loads(resources.files("llmflow.middleware").joinpath("prices.json").read_text())
    assert document["version"] and document["snapshot_date"]
    assert "MIT" in document["source"]
    assert f"genai-prices {document['version']} ({document['snapshot_date']})" == SOURCE


def test_openai_cached_tokens_are_discounted_not_double_counted() -> None:
    cost = price("gpt-4o", Usage(input_tokens=1000, output_tokens=500, cached_tokens=400))
    assert isinstance(cost, Cost)
    # 600 uncached at $2.50/M, 400 cached at $1.25/M, 500 output at $10/M
    assert cost.usd == pytest.approx((600 * 2.5 + 400 * 1.25 + 500 * 10) / 1e6)
    assert cost.usd == pytest.approx(
        genai_total("gpt-4o", "openai", input_tokens=1000, cache_read_tokens=400, output_tokens=500)
    )
    assert (cost.model, cost.provider, cost.source) == ("gpt-4o", "openai", SOURCE)


def test_anthropic_usage_from_the_codec_is_priced_once_per_token() -> None:
    usage = ANTHROPIC.decode_response(anthropic_response()).usage
    assert usage is not None and usage.input_tokens == 1000  # 300 + 600 read + 100 written
    cost = price("claude-sonnet-4-5", usage, provider="anthropic")
    assert cost is not None
    expected = (300 * 3 + 600 * 0.3 + 100 * 3.75 + 150 * 15) / 1e6
    assert cost.usd == pytest.approx(expected)
    assert cost.usd == pytest.approx(
        genai_total(
            "claude-sonnet-4-5",
            "anthropic",
            input_tokens=1000,
            cache_read_tokens=600,
            cache_write_tokens=100,
            output_tokens=150,
        )
    )


def test_reasoning_tokens_are_part_of_output_and_priced_as_output() -> None:
    usage = RESPONSES.decode_response(responses_response()).usage
    assert usage is not None and usage.reasoning_tokens == 400
    cost = price("o3-mini", usage)
    assert cost is not None
    assert cost.output_usd == pytest.approx(500 * 4.4 / 1e6)
    assert cost.input_usd == pytest.approx((600 * 1.1 + 200 * 0.55) / 1e6)


def test_a_prompt_above_the_tier_threshold_pays_the_tier_price_for_all_tokens() -> None:
    small = price("claude-sonnet-4-5", {"input_tokens": 200_000, "output_tokens": 0})
    large = price("claude-sonnet-4-5", {"input_tokens": 200_001, "output_tokens": 0})
    assert small is not None and large is not None
    assert small.usd == pytest.approx(200_000 * 3 / 1e6)
    assert large.usd == pytest.approx(200_001 * 6 / 1e6)


MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-3-5-haiku", "anthropic"),
    ("gemini-2.5-pro", "google"),
]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    prompt=st.integers(0, 400_000),
    cached_share=st.floats(0, 1),
    written_share=st.floats(0, 1),
    output=st.integers(0, 50_000),
)
def test_prices_agree_with_genai_prices_itself(
    model: tuple[str, str], prompt: int, cached_share: float, written_share: float, output: int
) -> None:
    name, provider = model
    cached = int(prompt * cached_share)
    written = int((prompt - cached) * written_share)
    cost = price(
        name,
        {
            "input_tokens": prompt,
            "cached_tokens": cached,
            "cache_creation_tokens": written,
            "output_tokens": output,
        },
        provider=provider,
    )
    assert cost is not None
    expected = genai_total(
        name,
        provider,
        input_tokens=prompt,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
    )
    assert cost.usd == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_provider_names_in_opentelemetry_spelling_and_dated_model_ids_are_found() -> None:
    usage = {"input_tokens": 10, "output_tokens": 10}
    assert price("gpt-4o", usage, provider="azure.ai.openai") is not None
    assert price("claude-3-5-sonnet-20241022", usage) is not None
    assert price("gpt-4o", usage, provider="my-gateway") is not None  # unknown provider


def test_an_unknown_model_has_no_price_never_zero() -> None:
    assert price("acme-llm-9000", {"input_tokens": 10, "output_tokens": 5}) is None


def test_usage_without_token_counts_has_no_price() -> None:
    assert price("gpt-4o", {}) is None


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((None, {}), "model"),
        (("", {}), "model"),
        (("gpt-4o", [1, 2]), "usage"),
        (("gpt-4o", {"input_tokens": 1}, 7), "provider"),
    ],
)
def test_bad_arguments_to_price_name_the_parameter(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        price(*args)


def test_negative_token_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"usage\.output_tokens"):
        price("gpt-4o", {"input_tokens": 1, "output_tokens": -5})


@pytest.mark.parametrize("bad", [True, 2.0, "5"])
def test_non_int_token_counts_are_rejected_bools_included(bad: object) -> None:
    with pytest.raises(ValueError, match=r"usage\.input_tokens"):
        price("gpt-4o", {"input_tokens": bad, "output_tokens": 1})


def test_int_subclasses_and_usage_objects_price_like_plain_dicts() -> None:
    class Count(int):
        pass

    plain = price("gpt-4o", {"input_tokens": 1000, "output_tokens": 10})
    assert plain is not None
    assert price("gpt-4o", {"input_tokens": Count(1000), "output_tokens": 10}) == plain
    assert price("gpt-4o", Usage(input_tokens=1000, output_tokens=10)) == plain


def test_a_table_of_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        PriceTable({"format": 99})


def test_refresh_command_writes_a_table_from_the_installed_genai_prices(tmp_path: Path) -> None:
    target = tmp_path / "prices.json"
    done = subprocess.run(
        [sys.executable, "-m", "llmflow.middleware._prices", "refresh", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "models" in done.stdout
    document = json.loads(target.read_text())
    table = PriceTable(document)
    assert table.lookup("gpt-4o") == bundled_table().lookup("gpt-4o")
    usage = subprocess.run(
        [sys.executable, "-m", "llmflow.middleware._prices"], capture_output=True, check=False
    )
    assert usage.returncode == 2


def test_the_bundled_table_is_what_refresh_builds_on_its_date() -> None:
    import datetime
    from importlib.metadata import version

    bundled = json.loads(resources.files("llmflow.middleware").joinpath("prices.json").read_text())
    if bundled["version"] != version("genai-prices"):
        pytest.skip("the installed genai-prices is not the snapshot's version")
    rebuilt = build_document(datetime.date.fromisoformat(bundled["snapshot_date"]))
    assert rebuilt == bundled


# -- cost.usd on end events ---------------------------------------------------------


def test_managed_call_end_event_carries_cost_and_source(
    recorder: CostRecorder, runtime: llmflow.Runtime
) -> None:
    provider = FakeProvider(chat_response(prompt=1000, completion=200, cached=400))
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", chat_request(), provider, codec=CHAT, response_codec=CHAT
        )
    (end,) = ends(events)
    expected = price(
        "gpt-4o-2024-08-06", {"input_tokens": 1000, "output_tokens": 200, "cached_tokens": 400}
    )
    assert expected is not None
    assert end.metadata["cost.usd"] == pytest.approx(expected.usd)
    assert end.metadata["cost.source"] == SOURCE
    starts = [e for e in events if e.scope_category == "start"]
    assert all("cost.usd" not in (e.metadata or {}) for e in starts)


def test_streamed_call_is_priced_like_the_plain_one(recorder: CostRecorder, run_async: Any) -> None:
    async def main() -> list[Any]:
        with testing.capture() as events:
            plain = FakeProvider(chat_response(prompt=1000, completion=200))
            await llmflow.llm_call_execute(
                "plain", chat_request(), plain.acall, codec=CHAT, response_codec=CHAT
            )
            streamed = FakeProvider(None, chunks=chat_chunks(prompt=1000, completion=200))
            stream = await llmflow.llm_stream_call_execute(
                "streamed",
                chat_request(stream=True),
                streamed.stream,
                codec=CHAT,
                response_codec=CHAT,
            )
            await drain(stream)
        return events

    events = run_async(main())
    plain_end, stream_end = ends(events)
    assert "streaming" in stream_end.attributes
    assert stream_end.metadata["cost.usd"] == pytest.approx(plain_end.metadata["cost.usd"])
    assert stream_end.metadata["cost.usd"] > 0


def test_anthropic_stream_with_cache_tokens_is_priced_from_the_folded_usage(
    recorder: CostRecorder, run_async: Any
) -> None:
    async def main() -> list[Any]:
        provider = FakeProvider(None, chunks=anthropic_events())
        with testing.capture() as events:
            stream = await llmflow.llm_stream_call_execute(
                "claude",
                anthropic_request(),
                provider.stream,
                codec=ANTHROPIC,
                response_codec=ANTHROPIC,
            )
            await drain(stream)
        return events

    (end,) = ends(run_async(main()))
    expected = (300 * 3 + 600 * 0.3 + 100 * 3.75 + 150 * 15) / 1e6
    assert end.metadata["cost.usd"] == pytest.approx(expected)


def test_unknown_model_gets_null_cost_and_is_counted_never_raised(
    recorder: CostRecorder, runtime: llmflow.Runtime
) -> None:
    provider = FakeProvider(chat_response(model="acme-llm-9000"))
    request = chat_request(model="acme-llm-9000")
    with testing.capture() as events:
        result = llmflow.llm_call_execute_sync(
            "chat", request, provider, codec=CHAT, response_codec=CHAT
        )
    assert result["model"] == "acme-llm-9000"
    (end,) = ends(events)
    assert end.metadata["cost.usd"] is None
    assert "cost.source" not in end.metadata
    assert runtime.diagnostics().failures["cost:unknown_model"] == 1
    assert "acme-llm-9000" in runtime.diagnostics().last_errors["cost:unknown_model"]
    assert recorder.unknown_models["acme-llm-9000"] == 1


def test_a_call_without_usage_gets_null_cost(recorder: CostRecorder) -> None:
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", chat_request(), lambda r: {"ok": True}, model_name="gpt-4o"
        )
    (end,) = ends(events)
    assert end.metadata == {"cost.usd": None}


def test_a_failed_call_gets_null_cost(recorder: CostRecorder) -> None:
    def down(request: llmflow.LlmRequest) -> Any:
        raise ConnectionError("down")

    with testing.capture() as events, pytest.raises(ConnectionError):
        llmflow.llm_call_execute_sync("chat", chat_request(), down, model_name="gpt-4o")
    (end,) = ends(events)
    assert end.metadata["cost.usd"] is None
    assert end.metadata["exception.type"] == "ConnectionError"


def test_manual_llm_call_end_is_priced_too(recorder: CostRecorder) -> None:
    with testing.capture() as events:
        handle = llmflow.llm_call("manual", chat_request(), model_name="gpt-4o")
        llmflow.llm_call_end(handle, chat_response(), response_codec=CHAT)
    (end,) = ends(events)
    assert end.metadata["cost.usd"] > 0


def test_cost_is_visible_to_span_facts_readers(recorder: CostRecorder) -> None:
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", chat_request(), FakeProvider(chat_response()), codec=CHAT, response_codec=CHAT
        )
    start, end = (e for e in events if e.category == "llm")
    facts = llmflow.atof.span_facts(start.to_dict(), end.to_dict())
    assert facts.cost_usd == pytest.approx(end.metadata["cost.usd"])


def test_a_user_metadata_cost_is_never_overwritten(recorder: CostRecorder) -> None:
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat",
            chat_request(),
            FakeProvider(chat_response()),
            codec=CHAT,
            response_codec=CHAT,
            metadata={"cost.usd": 1.5},
        )
    (end,) = ends(events)
    assert end.metadata["cost.usd"] == 1.5


def test_deregister_stops_recording(recorder: CostRecorder) -> None:
    assert recorder.deregister() is True
    assert recorder.deregister() is False
    with testing.capture() as events:
        llmflow.llm_call_execute_sync(
            "chat", chat_request(), FakeProvider(chat_response()), codec=CHAT, response_codec=CHAT
        )
    (end,) = ends(events)
    assert end.metadata is None or "cost.usd" not in end.metadata


def test_openai_sdk_calls_through_the_transport_are_priced_plain_and_streamed(
    recorder: CostRecorder,
) -> None:
    openai = pytest.importorskip("openai")
    from llmflow.testing import FakeProvider as Loopback
    from llmflow.testing import Reply

    usage = {"input_tokens": 1200, "output_tokens": 300, "cached_tokens": 1000}
    with Loopback() as server, testing.capture() as events:
        server.script(Reply(text="Hi there.", usage=usage), Reply(text="Hi there.", usage=usage))
        client = llmflow.instrument(
            openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-test", max_retries=0)
        )
        ask = [{"role": "user", "content": "Hi"}]
        client.chat.completions.create(model="gpt-4o", messages=ask)
        stream = client.chat.completions.create(
            model="gpt-4o", messages=ask, stream=True, stream_options={"include_usage": True}
        )
        list(stream)
    plain, streamed = ends(events)
    expected = (200 * 2.5 + 1000 * 1.25 + 300 * 10) / 1e6
    assert plain.metadata["cost.usd"] == pytest.approx(expected)
    assert streamed.metadata["cost.usd"] == pytest.approx(expected)
    assert plain.metadata["provider.name"] == "openai"


def test_anthropic_sdk_cache_reads_are_priced_once_and_discounted(
    recorder: CostRecorder,
) -> None:
    anthropic = pytest.importorskip("anthropic")
    from llmflow.testing import FakeProvider as Loopback
    from llmflow.testing import Reply

    usage = {"input_tokens": 1000, "output_tokens": 100, "cached_tokens": 800}
    with Loopback() as server, testing.capture() as events:
        server.script(Reply(text="Hello.", usage=usage), Reply(text="Hello.", usage=usage))
        client = llmflow.instrument(
            anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-test", max_retries=0)
        )
        ask = [{"role": "user", "content": "Hi"}]
        client.messages.create(model="claude-sonnet-5", max_tokens=100, messages=ask)
        with client.messages.stream(
            model="claude-sonnet-5", max_tokens=100, messages=ask
        ) as stream:
            stream.until_done()
    plain, streamed = ends(events)
    # the wire says input_tokens=200, cache_read_input_tokens=800: 1000 prompt tokens, not 1800
    expected = (200 * 2 + 800 * 0.2 + 100 * 10) / 1e6
    assert plain.metadata["cost.usd"] == pytest.approx(expected)
    assert streamed.metadata["cost.usd"] == pytest.approx(expected)
    assert plain.category_profile["annotated_response"]["usage"]["input_tokens"] == 1000


_counts = st.none() | st.integers(min_value=0, max_value=10**9)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
)


@given(
    usage=st.fixed_dictionaries(
        {},
        optional=dict.fromkeys(_USAGE_FIELDS, _counts),
    ),
    model=st.sampled_from(["gpt-4o", "claude-3-5-sonnet-20241022", "o1", "gemini-1.5-pro"]),
)
def test_a_plain_dict_usage_prices_as_the_same_usage_through_the_checked_path(
    usage: dict[str, int | None], model: str
) -> None:
    class ReadOnly(Mapping[str, Any]):  # not a dict: takes the checked path
        def __getitem__(self, key: str) -> Any:
            return usage[key]

        def __iter__(self) -> Iterator[str]:
            return iter(usage)

        def __len__(self) -> int:
            return len(usage)

    assert price(model, usage) == price(model, ReadOnly())
