"""The cost of each resilience/safety middleware (SPEC §14) on the managed call, same run.

Usage::

    python benchmarks/bench_middleware.py [--quick] [--rounds N] [--calls N] [--json PATH]

Each case is ``llm_call_execute`` with the §8 workload (a 2 KB OpenAI chat
request, a 2 KB response, the OpenAI response codec) and one piece of
middleware registered, against the bare managed call (no middleware) measured
in the same rounds. A figure is wall time per call including delivery to a
JSONL file: each timed batch ends with ``flush()``. Every case gets a fresh
runtime; the cases alternate within each round so drift hits them alike. The
provider always answers at once, so the figures are the bookkeeping of a
call that needs no retry, no fallback and never times out: the price paid on
every call. The last stdout line is the report as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _workload as w  # noqa: E402
import llmflow  # noqa: E402
from llmflow import guardrails, intercepts  # noqa: E402
from llmflow.codecs import OpenAIChatCodec  # noqa: E402
from llmflow.exporters import AtofFileExporter  # noqa: E402
from llmflow.middleware import AntiLoop, CircuitBreaker, fallback, redact, retry, timeout  # noqa: E402


def _bare() -> None:
    return None


def _retry() -> None:
    intercepts.register_llm_execution("retry", 0, retry())


def _timeout() -> None:
    intercepts.register_llm_execution("timeout", 0, timeout(30))


def _breaker() -> None:
    intercepts.register_llm_execution("breaker", 0, CircuitBreaker())


def _fallback() -> None:
    intercepts.register_llm_execution("fallback", 0, fallback(["gpt-4o-mini"]))


def _redact() -> None:
    redact()


def _antiloop() -> None:
    # every call of the benchmark is identical: a limit it never reaches
    guardrails.register_llm_conditional_execution("antiloop", 0, AntiLoop(max_repeats=2**62))


def _all() -> None:
    _antiloop()
    _redact()
    intercepts.register_llm_execution("fallback", 0, fallback(["gpt-4o-mini"]))
    intercepts.register_llm_execution("retry", 10, retry())
    intercepts.register_llm_execution("breaker", 20, CircuitBreaker())
    intercepts.register_llm_execution("timeout", 30, timeout(30))


CASES: dict[str, Callable[[], None]] = {
    "bare": _bare,
    "retry": _retry,
    "timeout": _timeout,
    "breaker": _breaker,
    "fallback": _fallback,
    "redact": _redact,
    "antiloop": _antiloop,
    "all six": _all,
}


async def _batch(n: int, request: llmflow.LlmRequest, codec: OpenAIChatCodec) -> float:
    response = w.response()

    async def provider(_request: Any) -> Any:
        return response

    execute = llmflow.llm_call_execute
    started = time.perf_counter()
    for _ in range(n):
        await execute(w.CALL_NAME, request, provider, model_name=w.MODEL, response_codec=codec)
    await llmflow.aflush()
    return time.perf_counter() - started


def measure(case: str, calls: int, batches: int, directory: str) -> float:
    """Median µs per call of ``case`` over ``batches`` batches, in a fresh runtime."""
    runtime = llmflow.Runtime()
    previous = runtime.install()
    path = Path(directory) / f"{case.replace(' ', '_')}.jsonl"
    AtofFileExporter(str(path), mode="overwrite", fsync=False).register()
    try:
        CASES[case]()
        request = llmflow.LlmRequest(w.request_headers(), w.request_body())
        codec = OpenAIChatCodec()
        asyncio.run(_batch(max(calls // 4, 50), request, codec))  # warm-up
        samples = []
        for _ in range(batches):
            gc.collect()
            samples.append(asyncio.run(_batch(calls, request, codec)) / calls * 1e6)
        failures = runtime.diagnostics().failures
        if failures:
            raise SystemExit(f"{case}: isolated failures during the run: {failures}")
        return statistics.median(samples)
    finally:
        runtime.shutdown()
        if previous is not None and not previous.closed:
            previous.install()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 500 calls")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None, help="calls per timed batch")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--cases", default=None, help=f"comma-separated subset of {list(CASES)} (bare always runs)"
    )
    args = parser.parse_args()
    names = ["bare", *(c for c in (args.cases or ",".join(CASES)).split(",") if c != "bare")]
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"--cases: unknown {unknown}, expected names from {list(CASES)}")
    rounds = args.rounds or (3 if args.quick else 5)
    calls = args.calls or (500 if args.quick else 2000)
    results: dict[str, list[float]] = {case: [] for case in names}
    with tempfile.TemporaryDirectory() as directory:
        for round_ in range(rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for case in order:
                results[case].append(measure(case, calls, 3, directory))
                print(
                    f"round {round_ + 1}/{rounds} {case}: {results[case][-1]:.1f} µs",
                    file=sys.stderr,
                )
    bare = statistics.median(results["bare"])
    report: dict[str, Any] = {"calls_per_batch": calls, "rounds": rounds, "cases": {}}
    print(f"{'case':<10} {'µs/call':>9} {'added µs':>9} {'ratio':>6}   (median of {rounds} rounds)")
    for case, values in results.items():
        median = statistics.median(values)
        added = median - bare
        report["cases"][case] = {
            "median_us": round(median, 2),
            "min_us": round(min(values), 2),
            "max_us": round(max(values), 2),
            "added_us": round(added, 2),
        }
        print(f"{case:<10} {median:9.1f} {added:+9.1f} {median / bare:6.2f}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
