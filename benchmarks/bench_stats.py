"""``llmflow stats`` against DuckDB ``read_json`` on the same log, plus validate and report.

Generates a realistic ATOF log (agent traces with LLM calls carrying ~600 byte
requests/responses, token usage, cost and provider metadata, tool calls,
guardrails, some errors), then in one run and each in its own child process:

* ``llmflow stats --json --by model`` and a DuckDB query computing the same
  aggregates (LLM calls per model, p50/p95 latency, input/output token sums),
  checked to agree; ``stats`` twice when msgspec is installed: its default
  msgspec line loop and the orjson one (``LLMFLOW_STATS_MSGSPEC=0``), which
  must print the same document;
* peak memory (max RSS of the child) of both at the small and the large size;
* ``llmflow validate`` and ``llmflow report`` on the large log, and the HTML size.

    python benchmarks/bench_stats.py                 # 1,000,000 and 100,000 events
    python benchmarks/bench_stats.py --events 200000 --small 20000 --keep /tmp/logs
    python benchmarks/bench_stats.py --keep /tmp/logs --stats-only  # no validate/report

The report is printed as one JSON object on the last stdout line; progress goes
to stderr. Needs duckdb (``pip install 'llmflow[bench]'``).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from llmflow._clock import format_rfc3339, new_uuid7

MODELS = (
    ("gpt-4o-mini", "openai", 0.15, 0.6),
    ("claude-sonnet-4", "anthropic", 3.0, 15.0),
    ("gpt-4.1", "openai", 2.0, 8.0),
)
WORDS = (
    "plan",
    "trip",
    "weather",
    "budget",
    "hotel",
    "train",
    "museum",
    "coffee",
    "walk",
    "river",
    "ticket",
    "price",
    "open",
    "late",
    "city",
    "north",
    "south",
    "day",
)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _event(
    uuid: str,
    parent: str | None,
    ts: int,
    name: str,
    phase: str | None,
    category: str,
    *,
    profile: Any = None,
    data: Any = None,
    metadata: Any = None,
    attributes: Any = (),
) -> bytes:
    event: dict[str, Any] = {
        "kind": "mark" if phase is None else "scope",
        "atof_version": "0.1",
        "uuid": uuid,
        "parent_uuid": parent,
        "timestamp": format_rfc3339(ts),
        "name": name,
    }
    if phase is not None:
        event["scope_category"] = phase
        event["attributes"] = list(attributes)
    event["category"] = category
    event["category_profile"] = profile
    event["data"] = data
    event["data_schema"] = None
    event["metadata"] = metadata
    return orjson.dumps(event) + b"\n"


def generate(path: Path, events: int, seed: int = 7) -> int:
    """Write about ``events`` events (whole traces) to ``path``; return the exact count."""
    rng = random.Random(seed)
    clock = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    written = 0
    with path.open("wb", buffering=1 << 20) as out:
        while written < events:
            clock += rng.randint(1_000, 50_000)
            agent = new_uuid7(clock)
            agent_start = clock
            lines = [
                _event(
                    agent,
                    None,
                    clock,
                    "trip-planner",
                    "start",
                    "agent",
                    data={"user": "u" + str(rng.randint(1, 999))},
                )
            ]
            for turn in range(rng.randint(2, 4)):
                clock += rng.randint(50, 400)
                guard = new_uuid7(clock)
                lines.append(_event(guard, agent, clock, "policy", "start", "guardrail"))
                clock += rng.randint(10, 60)
                rejected = rng.random() < 0.01
                lines.append(
                    _event(
                        guard,
                        agent,
                        clock,
                        "policy",
                        "end",
                        "guardrail",
                        data={"rejected": True, "reason": "policy"} if rejected else None,
                    )
                )
                if rejected:
                    continue
                model, provider, price_in, price_out = rng.choice(MODELS)
                llm = new_uuid7(clock)
                clock += rng.randint(10, 50)
                prompt = _text(rng, 90)
                request = {
                    "headers": {"content-type": "application/json"},
                    "content": {
                        "model": model,
                        "max_tokens": 512,
                        "messages": [
                            {"role": "system", "content": "You plan trips."},
                            {"role": "user", "content": prompt},
                        ],
                    },
                }
                lines.append(
                    _event(
                        llm,
                        agent,
                        clock,
                        "openai.chat",
                        "start",
                        "llm",
                        profile={"model_name": model},
                        data=request,
                        metadata={"provider.name": provider},
                    )
                )
                clock += int(rng.lognormvariate(13.0, 0.6))  # ~0.5 s median
                failed = rng.random() < 0.02
                tin, tout = rng.randint(200, 4000), rng.randint(20, 800)
                cached = rng.choice((0, 0, 0, tin // 2))
                if failed:
                    lines.append(
                        _event(
                            llm,
                            agent,
                            clock,
                            "openai.chat",
                            "end",
                            "llm",
                            profile={"model_name": model},
                            metadata={
                                "provider.name": provider,
                                "exception.type": "openai.RateLimitError",
                                "exception.message": "rate limited",
                                "http.status_code": 429,
                            },
                        )
                    )
                else:
                    answer = _text(rng, 90)
                    response = {
                        "id": f"chatcmpl-{turn}",
                        "object": "chat.completion",
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": answer},
                            }
                        ],
                        "usage": {"prompt_tokens": tin, "completion_tokens": tout},
                    }
                    annotated = {
                        "model": model,
                        "finish_reason": "stop",
                        "usage": {
                            "input_tokens": tin,
                            "output_tokens": tout,
                            "total_tokens": tin + tout,
                            "cached_tokens": cached,
                            "reasoning_tokens": 0,
                        },
                    }
                    cost = (tin * price_in + tout * price_out) / 1e6
                    lines.append(
                        _event(
                            llm,
                            agent,
                            clock,
                            "openai.chat",
                            "end",
                            "llm",
                            profile={"model_name": model, "annotated_response": annotated},
                            data=response,
                            metadata={
                                "provider.name": provider,
                                "cost.usd": round(cost, 8),
                                "cost.source": "bench",
                            },
                        )
                    )
                if rng.random() < 0.6:
                    tool = new_uuid7(clock)
                    clock += rng.randint(20, 200)
                    lines.append(
                        _event(
                            tool,
                            agent,
                            clock,
                            "get_weather",
                            "start",
                            "tool",
                            profile={"tool_call_id": f"call_{turn}"},
                            data={"city": "Lisbon"},
                        )
                    )
                    clock += rng.randint(1_000, 80_000)
                    lines.append(
                        _event(
                            tool,
                            agent,
                            clock,
                            "get_weather",
                            "end",
                            "tool",
                            profile={"tool_call_id": f"call_{turn}"},
                            data="19°C and sunny",
                        )
                    )
            clock += rng.randint(20, 200)
            lines.append(
                _event(agent, None, max(clock, agent_start + 1), "trip-planner", "end", "agent")
            )
            out.writelines(lines)
            written += len(lines)
    return written


DUCKDB_QUERY = """
WITH e AS (
  SELECT uuid, scope_category AS phase,
         epoch_us(CAST("timestamp" AS TIMESTAMPTZ)) AS ts,
         coalesce(category_profile->>'$.annotated_response.model',
                  category_profile->>'$.model_name') AS model,
         CAST(category_profile->>'$.annotated_response.usage.input_tokens' AS BIGINT) AS tin,
         CAST(category_profile->>'$.annotated_response.usage.output_tokens' AS BIGINT) AS tout
  FROM read_json('{path}', format='newline_delimited',
       columns={{kind: 'VARCHAR', uuid: 'VARCHAR', "timestamp": 'VARCHAR',
                scope_category: 'VARCHAR', category: 'VARCHAR', category_profile: 'JSON'}})
  WHERE kind = 'scope' AND category = 'llm'
)
SELECT f.model, count(*) AS calls,
       quantile_cont(f.ts - s.ts, 0.5) AS p50, quantile_cont(f.ts - s.ts, 0.95) AS p95,
       sum(f.tin) AS tin, sum(f.tout) AS tout
FROM e AS f JOIN e AS s ON s.uuid = f.uuid AND s.phase = 'start'
WHERE f.phase = 'end'
GROUP BY f.model ORDER BY f.model
"""

_DUCKDB_CHILD = """
import sys, duckdb, orjson
rows = duckdb.sql(sys.argv[2].format(path=sys.argv[1])).fetchall()
print(orjson.dumps([list(r) for r in rows]).decode())
"""


CPU: dict[str, float] = {}


def _measure(argv: list[str], **extra_env: str) -> tuple[float, int, str]:
    """Run ``argv`` under ``/usr/bin/time -v`` for its own max RSS; (seconds, MiB, stdout).

    The child's CPU seconds (user + system) are left in ``CPU["last"]``: on a
    shared machine they are steadier than wall time.
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        **extra_env,
    }
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    started = time.perf_counter()
    done = subprocess.run([*timer, *argv], capture_output=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{argv[:4]} failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    rss = 0
    CPU["last"] = 0.0
    for line in done.stderr.decode(errors="replace").splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.rsplit(":", 1)[1]) // 1024
        if "User time (seconds)" in line or "System time (seconds)" in line:
            CPU["last"] += float(line.rsplit(":", 1)[1])
    return wall, rss, done.stdout.decode()


def _stats(path: Path, *, use_msgspec: bool = True) -> tuple[float, int, dict[str, Any]]:
    wall, rss, out = _measure(
        [sys.executable, "-m", "llmflow", "stats", "--json", "--by", "model", str(path)],
        LLMFLOW_STATS_MSGSPEC="1" if use_msgspec else "0",
    )
    return wall, rss, orjson.loads(out)


def _has_msgspec() -> bool:
    try:
        import msgspec  # noqa: F401
    except ImportError:
        return False
    return True


def _duckdb(path: Path) -> tuple[float, int, list[list[Any]]]:
    wall, rss, out = _measure([sys.executable, "-c", _DUCKDB_CHILD, str(path), DUCKDB_QUERY])
    return wall, rss, orjson.loads(out.strip().splitlines()[-1])


def _agree(stats: dict[str, Any], duck: list[list[Any]]) -> list[str]:
    ours = {g["key"]: g for g in stats["groups"]["model"]}
    problems = []
    for model, calls, p50, p95, tin, tout in duck:
        group = ours.get(model)
        if group is None:
            problems.append(f"{model}: missing in llmflow stats")
            continue
        mine = (
            group["calls"],
            group["latency_us"]["p50"],
            group["latency_us"]["p95"],
            group["tokens"]["input"],
            group["tokens"]["output"],
        )
        theirs = (calls, p50, p95, tin, tout)
        for label, a, b in zip(("calls", "p50", "p95", "in", "out"), mine, theirs, strict=True):
            if a is None or b is None or abs(float(a) - float(b)) > 1e-6 * max(1.0, abs(b)):
                problems.append(f"{model} {label}: llmflow {a} vs duckdb {b}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="directory for the logs (kept)")
    parser.add_argument("--stats-only", action="store_true", help="skip validate and report")
    args = parser.parse_args()
    both = _has_msgspec()
    directory = args.keep or Path(tempfile.mkdtemp(prefix="llmflow-bench-stats-"))
    directory.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"events": {}, "size_mb": {}}
    logs = {}
    for label, count in (("small", args.small), ("large", args.events)):
        path = directory / f"bench-{count}.atof.jsonl"
        if not path.exists():
            print(f"generating {count:,} events -> {path}", file=sys.stderr)
            generate(path, count)
        logs[label] = path
        report["events"][label] = sum(1 for _ in path.open("rb"))
        report["size_mb"][label] = round(path.stat().st_size / 1e6, 1)
    for label, path in logs.items():
        print(f"stats vs duckdb on {path.name}", file=sys.stderr)
        _duckdb(path)  # warm the page cache for both
        ours_s, ours_rss, stats = _stats(path)
        ours_cpu = CPU["last"]
        duck_s, duck_rss, duck = _duckdb(path)
        duck_cpu = CPU["last"]
        orjson_loop: dict[str, Any] = {}
        if both:
            plain_s, plain_rss, plain = _stats(path, use_msgspec=False)
            orjson_loop = {
                "orjson_loop_stats_s": round(plain_s, 2),
                "orjson_loop_ratio": round(plain_s / duck_s, 2),
                "orjson_loop_stats_cpu_s": round(CPU["last"], 2),
                "orjson_loop_cpu_ratio": round(CPU["last"] / max(duck_cpu, 1e-9), 2),
                "orjson_loop_max_rss_mib": plain_rss,
                "orjson_loop_same_document": plain == stats,
            }
        report[label] = {
            "llmflow_stats_s": round(ours_s, 2),
            "duckdb_s": round(duck_s, 2),
            "ratio": round(ours_s / duck_s, 2),
            "llmflow_stats_cpu_s": round(ours_cpu, 2),
            "duckdb_cpu_s": round(duck_cpu, 2),
            "cpu_ratio": round(ours_cpu / max(duck_cpu, 1e-9), 2),
            "llmflow_stats_max_rss_mib": ours_rss,
            "duckdb_max_rss_mib": duck_rss,
            "disagreements": _agree(stats, duck),
            "msgspec": both,
            **orjson_loop,
        }
    if not args.stats_only:
        _validate_and_report(logs["large"], directory, report)
    for label in ("small", "large"):
        r = report[label]
        print(
            f"{label:5} {report['events'][label]:>9,} events {report['size_mb'][label]:>7} MB: "
            f"llmflow stats {r['llmflow_stats_s']:.2f} s ({r['llmflow_stats_max_rss_mib']} MiB)"
            f"  duckdb {r['duckdb_s']:.2f} s ({r['duckdb_max_rss_mib']} MiB)"
            f"  ratio {r['ratio']:.2f}  disagreements {len(r['disagreements'])}",
            file=sys.stderr,
        )
    print(orjson.dumps(report).decode())
    failed = any(
        report[label]["disagreements"] or not report[label].get("orjson_loop_same_document", True)
        for label in ("small", "large")
    )
    return 1 if failed else 0


def _validate_and_report(large: Path, directory: Path, report: dict[str, Any]) -> None:
    """``validate`` and ``report`` on the large log: time, memory, HTML size."""
    print("validate", file=sys.stderr)
    wall, rss, _ = _measure([sys.executable, "-m", "llmflow", "validate", str(large)])
    report["large"]["validate_s"] = round(wall, 2)
    report["large"]["validate_cpu_s"] = round(CPU["last"], 2)
    report["large"]["validate_max_rss_mib"] = rss
    print("report", file=sys.stderr)
    html = directory / "bench-report.html"
    wall, rss, _ = _measure(
        [sys.executable, "-m", "llmflow", "report", str(large), "-o", str(html)]
    )
    report["large"]["report_s"] = round(wall, 2)
    report["large"]["report_cpu_s"] = round(CPU["last"], 2)
    report["large"]["report_max_rss_mib"] = rss
    report["large"]["report_html_kib"] = round(html.stat().st_size / 1024)


if __name__ == "__main__":
    sys.exit(main())
