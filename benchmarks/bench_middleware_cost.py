"""What each middleware of ``llmflow.middleware`` (cost, budget, cache, replay) adds per call.

Usage::

    PYTHONPATH=src python benchmarks/bench_middleware_cost.py [--calls N] [--rounds R] [--json PATH]

Every case is the managed call of ``bench.py`` (the §8 workload: a 2 KB OpenAI
chat request and response, request and response codec, events written to a
JSONL file, each timed batch ending with ``flush()``), measured in the same
run as the bare managed call with no middleware. Plain and streamed (50
chunks) calls. Cases run in rounds, alternating, each in a fresh runtime;
the figures are the median and the best round of wall time per call,
delivery included.

Cases:

* ``bare``: no middleware.
* ``cost``: ``CostRecorder`` registered (a metadata injector: it takes the
  runtime off its serialized-lines fast path, so events are built as objects).
* ``budget``: ``Budget(max_cost_usd=1e9, max_tokens=10**12)`` (reserve in a
  guardrail, settle in an execution intercept).
* ``cache-hit``: ``ResponseCache()`` in memory, every call a hit (the provider
  is not called; a stream hit is re-chunked from the folded response).
* ``cache-miss``: ``ResponseCache()`` in memory, every request different (the
  key is computed and the response stored on every call).
* ``replay``: ``replay(log)`` answering every call from a recorded log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _workload as w  # noqa: E402
import llmflow  # noqa: E402
from llmflow.codecs import OpenAIChatCodec  # noqa: E402
from llmflow.exporters import AtofFileExporter  # noqa: E402
from llmflow.middleware import Budget, CostRecorder, ResponseCache, replay  # noqa: E402

CASES = ("bare", "cost", "budget", "cache-hit", "cache-miss", "replay")
CHUNKS = 50
CODEC = OpenAIChatCodec()


def _request(index: int | None) -> llmflow.LlmRequest:
    body = w.request_body()
    if index is not None:  # a different question each call: every lookup misses
        body["messages"][-1]["content"] += f" (#{index})"
    return llmflow.LlmRequest(w.request_headers(), body)


async def _plain(n: int, vary: bool) -> None:
    response = w.response()

    async def provider(_request: Any) -> Any:
        return response

    requests = [_request(i if vary else None) for i in range(n)]
    for request in requests:
        await llmflow.llm_call_execute(
            w.CALL_NAME, request, provider, codec=CODEC, response_codec=CODEC
        )


async def _streamed(n: int, vary: bool) -> None:
    chunks = w.chunks(CHUNKS)

    async def provider(_request: Any) -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    requests = [_request(i if vary else None) for i in range(n)]
    for request in requests:
        stream = await llmflow.llm_stream_call_execute(
            w.CALL_NAME, request, provider, codec=CODEC, response_codec=CODEC
        )
        async for _chunk in stream:
            pass


def _record_log(path: Path, n: int, streamed: bool) -> None:
    runtime = llmflow.Runtime()
    previous = runtime.install()
    AtofFileExporter(path, mode="overwrite", fsync=False).register(runtime=runtime)
    asyncio.run((_streamed if streamed else _plain)(n, False))
    runtime.shutdown()
    if previous is not None and not previous.closed:
        previous.install()


def _setup(case: str, runtime: llmflow.Runtime, log: Path) -> None:
    if case == "cost":
        CostRecorder().register(runtime=runtime)
    elif case == "budget":
        Budget(max_cost_usd=1e9, max_tokens=10**12).register()
    elif case in ("cache-hit", "cache-miss"):
        ResponseCache().register()
    elif case == "replay":
        replay(log).register()


def measure(case: str, streamed: bool, calls: int, tmp: Path) -> float:
    """Microseconds per call, delivery to the JSONL file included."""
    log = tmp / f"recorded-{'s' if streamed else 'p'}.jsonl"
    if case == "replay":
        _record_log(log, calls + 10, streamed)
    runtime = llmflow.Runtime()
    previous = runtime.install()
    try:
        AtofFileExporter(tmp / "out.jsonl", mode="overwrite", fsync=False).register(runtime=runtime)
        _setup(case, runtime, log)
        run: Callable[[int, bool], Any] = _streamed if streamed else _plain
        vary = case == "cache-miss"
        asyncio.run(run(10, False))  # warm up; a cache-hit case stores its entry here
        runtime.flush()
        start = time.perf_counter()
        asyncio.run(run(calls, vary))
        runtime.flush()
        elapsed = time.perf_counter() - start
    finally:
        runtime.shutdown()
        if previous is not None and not previous.closed:
            previous.install()
    return elapsed / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--cases", default=None, help=f"comma-separated subset of {list(CASES)} (bare always runs)"
    )
    parser.add_argument("--kinds", default="plain,stream", help="plain, stream or both")
    args = parser.parse_args(argv)
    names = ["bare", *(c for c in (args.cases or ",".join(CASES)).split(",") if c != "bare")]
    kinds = args.kinds.split(",")
    if unknown := [n for n in names if n not in CASES] + [
        k for k in kinds if k not in ("plain", "stream")
    ]:
        parser.error(f"--cases/--kinds: unknown {unknown}")
    results: dict[str, dict[str, list[float]]] = {
        kind: {case: [] for case in names} for kind in kinds
    }
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for kind in kinds:
                calls = args.calls if kind == "plain" else max(args.calls // 5, 20)
                for case in names:
                    results[kind][case].append(measure(case, kind == "stream", calls, Path(tmp)))
    summary: dict[str, dict[str, float]] = {}
    print(
        f"llmflow middleware, µs per call incl. delivery: median (and best) of {args.rounds} "
        "rounds; on a shared machine the best round is the steadier figure"
    )
    for kind, cases in results.items():
        label = "plain managed call" if kind == "plain" else f"streamed call ({CHUNKS} chunks)"
        print(f"\n{label}")
        bare = statistics.median(cases["bare"])
        bare_best = min(cases["bare"])
        summary[kind] = {}
        for case, figures in cases.items():
            median, best = statistics.median(figures), min(figures)
            summary[kind][case] = median
            summary[kind][f"{case}:best"] = best
            added = (
                ""
                if case == "bare"
                else f"  ({median - bare:+8.1f} µs; best {best - bare_best:+8.1f} µs vs bare)"
            )
            print(f"  {case:<11} {median:9.1f} µs (best {best:7.1f}){added}")
    if args.json is not None:
        args.json.write_text(json.dumps({"us_per_call": summary, "raw": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
