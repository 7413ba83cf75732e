"""``llmflow stats`` (SPEC §13): per model/name/provider/tool aggregates, --by, --since, --json."""

from __future__ import annotations

import statistics
from pathlib import Path

import orjson
import pytest
from cli_logs import T0, LogBuilder, run_cli
from hypothesis import given
from hypothesis import strategies as st

from llmflow._clock import format_rfc3339
from llmflow.atof import Span, iter_records, iter_spans
from llmflow.cli import stats as stats_module
from llmflow.cli.stats import parse_since, percentile


@pytest.fixture(autouse=True, params=["msgspec", "orjson"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: with the msgspec line loop (the ``fast`` extra) and the orjson one."""
    fast = request.param == "msgspec"
    monkeypatch.setenv("LLMFLOW_STATS_MSGSPEC", "1" if fast else "0")  # for `python -m llmflow`
    monkeypatch.setattr(stats_module, "USE_MSGSPEC", fast)
    return str(request.param)


def stats_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = run_cli("stats", "--json", *args)
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


def groups(document: dict, dimension: str) -> dict:  # type: ignore[type-arg]
    return {group["key"]: group for group in document["groups"][dimension]}


def test_stats_of_the_demo_agree_with_span_facts_of_every_call(demo_log: Path) -> None:
    document = stats_json(str(demo_log))
    llm = [
        n for n in iter_spans(iter_records(demo_log)) if isinstance(n, Span) and n.category == "llm"
    ]
    assert len(llm) == 4
    expected = {  # model: (calls, errors, input, output, cached, retries)
        "gpt-4o-mini": (2, 0, 254, 57, 64, 1),  # the 429 waited out: one retry
        "claude-3-5-haiku-latest": (2, 1, 22, 12, 0, 2),  # overloaded: 3 attempts, then failed
    }
    for key, (calls, errors, tokens_in, tokens_out, cached, retries) in expected.items():
        spans = [s for s in llm if s.facts is not None and s.facts.model == key]
        model = groups(document, "model")[key]
        assert model["calls"] == len(spans) == calls
        assert model["errors"] == sum(not s.facts.ok for s in spans if s.facts) == errors
        assert model["tokens"]["input"] == sum(s.facts.input_tokens or 0 for s in spans if s.facts)
        assert (model["tokens"]["input"], model["tokens"]["output"]) == (tokens_in, tokens_out)
        assert model["tokens"]["cached"] == cached
        assert model["retries"] == retries
        costs = [s.facts.cost_usd for s in spans if s.facts and s.facts.cost_usd is not None]
        assert model["cost_usd"] == pytest.approx(sum(costs)) and model["cost_usd"] > 0
        durations = sorted(s.duration_us for s in spans if s.duration_us is not None)
        assert model["latency_us"]["p50"] == statistics.median(durations)
        assert model["latency_us"]["max"] == durations[-1]
    assert set(groups(document, "name")) == {"openai.chat", "anthropic.messages"}
    assert groups(document, "tool")["get_weather"]["calls"] == 2
    assert groups(document, "provider")["openai"]["calls"] == 2
    assert groups(document, "provider")["anthropic"]["calls"] == 2
    assert document["spans"] == 17 and document["marks"] == 6 and document["skipped_lines"] == 0


def test_stats_counts_cost_cache_hits_retries_and_cached_reasoning_tokens(tmp_path: Path) -> None:
    log = LogBuilder()
    usage = {"input_tokens": 100, "output_tokens": 40, "cached_tokens": 60, "reasoning_tokens": 7}
    log.span(
        "chat",
        "llm",
        0,
        1_000,
        model="m1",
        usage=usage,
        metadata={"cost.usd": 0.25, "provider.name": "openai", "retry.attempts": 3},
    )
    log.span(
        "chat",
        "llm",
        2_000,
        2_500,
        model="m1",
        usage=usage,
        metadata={"cost.usd": 0.5, "provider.name": "openai", "cache.hit": True},
    )
    log.span(
        "chat",
        "llm",
        3_000,
        4_000,
        model="m2",
        metadata={
            "provider.name": "anthropic",
            "http.attempt": 1,
            "exception.type": "anthropic.APIStatusError",
            "http.status_code": 529,
        },
    )
    document = stats_json(str(log.write(tmp_path / "log.jsonl")))
    m1, m2 = groups(document, "model")["m1"], groups(document, "model")["m2"]
    assert (m1["calls"], m1["errors"], m1["cost_usd"], m1["cache_hits"], m1["retries"]) == (
        2,
        0,
        0.75,
        1,
        2,
    )
    assert m1["tokens"] == {"input": 200, "output": 80, "cached": 120, "reasoning": 14}
    assert (m2["calls"], m2["errors"], m2["retries"], m2["cost_usd"]) == (1, 1, 1, None)
    assert m2["tokens"] == {"input": None, "output": None, "cached": None, "reasoning": None}
    assert set(groups(document, "provider")) == {"openai", "anthropic"}


def test_stats_adds_up_several_files(demo_log: Path) -> None:
    document = stats_json(str(demo_log), str(demo_log))
    assert groups(document, "model")["gpt-4o-mini"]["calls"] == 4
    assert groups(document, "model")["claude-3-5-haiku-latest"]["errors"] == 2
    assert document["files"] == [str(demo_log), str(demo_log)]


def test_stats_by_chooses_the_tables_and_rejects_unknown_dimensions(demo_log: Path) -> None:
    document = stats_json("--by", "category,tool", str(demo_log))
    assert list(document["groups"]) == ["category", "tool"]
    assert groups(document, "category")["guardrail"]["errors"] == 1  # the rejection
    result = run_cli("stats", "--by", "colour", str(demo_log))
    assert result.returncode == 2
    assert (
        "--by: expected one of model, provider, name, tool, category, got 'colour'" in result.stderr
    )


def test_stats_since_counts_only_spans_started_after_it(tmp_path: Path) -> None:
    log = LogBuilder()
    log.span("old", "llm", 0, 10, model="m")
    log.span("new", "llm", 5_000_000, 5_000_010, model="m")
    path = log.write(tmp_path / "log.jsonl")
    document = stats_json("--since", format_rfc3339(T0 + 1_000_000), str(path))
    assert groups(document, "name").keys() == {"new"}
    result = run_cli("stats", "--since", "last tuesday", str(path))
    assert result.returncode == 2 and "--since: expected an RFC 3339 time" in result.stderr


def test_parse_since_accepts_durations_back_from_now() -> None:
    now = 10_000_000_000
    assert parse_since("90s", now) == now - 90_000_000
    assert parse_since("2h", now) == now - 7_200_000_000
    assert parse_since("1.5d", now) == now - 129_600_000_000
    assert parse_since("123") == 123


def test_stats_text_output_is_plain_when_piped(demo_log: Path) -> None:
    result = run_cli("stats", str(demo_log))
    assert result.returncode == 0
    assert "\x1b" not in result.stdout + result.stderr
    assert "by model (llm calls)" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("model "))
    assert header.split() == [
        "model",
        "calls",
        "errors",
        "p50",
        "p95",
        "p99",
        "in",
        "out",
        "cached",
        "reasoning",
        "cost",
        "cache",
        "hits",
        "retries",
    ]


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=200))
def test_percentiles_interpolate_between_ranks_like_quantile_cont(values: list[int]) -> None:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    for q, cut in ((0.5, cuts[49]), (0.95, cuts[94]), (0.99, cuts[98])):
        assert percentile(ordered, q) == pytest.approx(cut, rel=1e-9, abs=1e-6)
    assert percentile([], 0.5) is None
    assert percentile([7], 0.99) == 7


def test_a_large_file_split_among_processes_gives_the_single_process_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmflow.cli._input import LogInput

    log = LogBuilder()
    for i in range(300):  # overlapping traces: many spans cross any cut of the file
        root = log.span(f"agent-{i % 7}", "agent", i * 100, i * 100 + 2_000)
        log.span(
            "chat",
            "llm",
            i * 100 + 5,
            i * 100 + 1_500 + i,
            parent=root,
            model=f"m{i % 3}",
            usage={"input_tokens": i, "output_tokens": 1},
            metadata={"cost.usd": 0.001 * i},
        )
        log.span("lookup", "tool", i * 100 + 10, i * 100 + 900, parent=root)
    lines = log.lines()
    lines.insert(400, b"{broken\n")
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"".join(lines))
    monkeypatch.setattr(stats_module, "_PARALLEL_MIN_BYTES", 0)
    by = ["model", "name", "tool", "category"]
    serial_input = LogInput([str(path)], command="stats", progress=False)
    serial = stats_module.compute_stats(serial_input, by, jobs=1).to_dict()
    split_input = LogInput([str(path)], command="stats", progress=False)
    split = stats_module.compute_stats(split_input, by, jobs=3).to_dict()
    assert split == serial
    assert serial["spans"] == 900 and serial["open_spans"] == 0 and serial["skipped_lines"] == 1
    assert split_input.lines == serial_input.lines == len(lines)
