"""Benchmark for SPEC §11: what instrumenting an SDK client adds to each call.

Usage::

    /work/venv/bin/python benchmarks/bench_http.py [--quick] [--rounds N] [--json PATH]

The same calls go through a plain ``openai.OpenAI`` client, the same client
after ``llmflow.instrument`` (events written to a JSONL file by llmflow's
writer thread, which runs while the batch is timed; the ``llmflow.flush()``
after each batch, whose fsync costs milliseconds on this disk and which an
application never calls per call, is not timed), and a plain client
under OpenInference's OpenAI instrumentation with an in-memory OpenTelemetry
span exporter (instrumented before its batch, uninstrumented after it, outside
the timing). Batches of the three alternate, round after round, in one
process, each going first in turn, so a change of machine load hits all three
alike; each figure is the batch's wall time per call in its least disturbed
round (noise on a shared machine only ever adds time), "added" is that minus
the plain client's. Each batch is also timed in process CPU
(``time.process_time``: the calling thread and llmflow's writer thread, not
the server), which machine load disturbs far less than wall time.

Three settings: ``FakeProvider`` on 127.0.0.1 (real sockets; the servers run in
a child process so they never compete with the client for the GIL),
``httpx2.MockTransport`` (the SDK without a socket), and the bare httpx2 layer
(an ``httpx2.Client`` on a MockTransport, no SDK: llmflow's own cost, where
OpenInference, which patches the SDK, does not apply). Cases: a non-streaming
chat call (~2 KB request and response) and streamed ones of 50 and of 500
SSE text chunks (plus role, finish and ``[DONE]`` frames). The cost added per
chunk is the marginal one, ``(added(500) - added(50)) / 450``: the call's own
share (request, start and end events) cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHUNKS = 50
LONG = 500
TEXT = " ".join(f"word{i}" for i in range(300))  # ~2 KB of response text
LONG_TEXT = " ".join(f"word{i}" for i in range(3000))  # about the same text per chunk
MESSAGES = [
    {"role": "system", "content": "You are a careful assistant. " * 20},
    *(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "x" * 150}
        for i in range(9)
    ),
]
URL = "http://127.0.0.1:9/v1"  # never connected to: the mock settings answer in-process


def _serve() -> int:
    """Child: run the two FakeProviders until stdin closes; print their URLs first."""
    from llmflow.testing import FakeProvider, Reply

    with (
        FakeProvider(default=Reply(text=TEXT), record=False) as json_server,
        FakeProvider(default=Reply(text=TEXT, chunks=CHUNKS), record=False) as sse_server,
        FakeProvider(default=Reply(text=LONG_TEXT, chunks=LONG), record=False) as long_server,
    ):
        urls = {"json": json_server.base_url, "sse": sse_server.base_url}
        print(json.dumps({**urls, "sse500": long_server.base_url}), flush=True)
        sys.stdin.read()
    return 0


def _mock_client(case: str) -> Any:
    """An httpx2 client whose transport answers in-process: no socket, no server."""
    import httpx2

    from llmflow.testing import Reply
    from llmflow.testing._fake_provider import _chat_body, _chat_stream

    reply = (
        Reply(text=LONG_TEXT, chunks=LONG) if case == "sse500" else Reply(text=TEXT, chunks=CHUNKS)
    )
    body = json.dumps(_chat_body(reply, "gpt-4o", 1)).encode()
    frames = list(_chat_stream(reply, "gpt-4o", 1, {}))
    json_headers = {"content-type": "application/json", "x-request-id": "req_1"}
    sse_headers = {"content-type": "text/event-stream", "x-request-id": "req_1"}

    class Frames(httpx2.SyncByteStream):
        def __iter__(self) -> Any:
            return iter(frames)

    def handler(request: httpx2.Request) -> httpx2.Response:
        if case == "json":
            return httpx2.Response(200, headers=json_headers, content=body)
        return httpx2.Response(200, headers=sse_headers, stream=Frames())

    return httpx2.Client(transport=httpx2.MockTransport(handler))


class OpenInference:
    """OpenInference's OpenAI instrumentation, switched on only around its batches."""

    def __init__(self) -> None:
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.instrumentor = OpenAIInstrumentor()

    def on(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.provider)

    def off(self) -> None:
        self.instrumentor.uninstrument()
        self.exporter.clear()


def _peer() -> OpenInference | None:
    try:
        return OpenInference()
    except ImportError:
        return None


def _sdk_call(client: Any, case: str) -> Callable[[], None]:
    def one() -> None:
        if case == "json":
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass

    return one


def _http_call(client: Any, case: str) -> Callable[[], None]:
    content = json.dumps({"model": "gpt-4o", "messages": MESSAGES, "stream": case != "json"})
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    def one() -> None:
        with client.stream(
            "POST", URL + "/chat/completions", content=content, headers=headers
        ) as r:
            for _ in r.iter_bytes():
                pass

    return one


def _batch(one: Callable[[], None], calls: int, flush: Callable[[], object]) -> tuple[float, float]:
    """(wall, process CPU) per call in µs."""
    began, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        one()
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    flush()  # untimed: its fsync is per flush, and an application does not flush per call
    return elapsed / calls * 1e6, cpu / calls * 1e6


def _count(client: str, calls: int) -> int:
    """Make ``calls`` non-streaming calls with one client, events written to a JSONL file."""
    import openai

    import llmflow
    from llmflow.exporters import AtofFileExporter

    AtofFileExporter(Path(tempfile.mkdtemp()) / "count.jsonl", mode="overwrite").register()
    kind, _, instrumented = client.partition("-")
    if kind not in ("sdk", "http") or instrumented not in ("", "llmflow"):
        raise SystemExit(f"--count: unknown client {client!r}")
    target: Any = _mock_client("json")
    if kind == "sdk":
        target = openai.OpenAI(base_url=URL, api_key="sk-bench", max_retries=0, http_client=target)
    if instrumented:
        target = llmflow.instrument(target)
    one = (_sdk_call if kind == "sdk" else _http_call)(target, "json")
    for _ in range(calls):
        one()
    llmflow.flush()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--count",
        nargs=2,
        metavar=("CLIENT", "CALLS"),
        help="only make CALLS non-streaming calls on MockTransport with CLIENT (sdk, "
        "sdk-llmflow, http or http-llmflow), for an instruction counter (see the docstring)",
    )
    args = parser.parse_args()
    if args.serve:
        return _serve()
    if args.count:
        return _count(args.count[0], int(args.count[1]))

    import openai

    import llmflow
    from llmflow.exporters import AtofFileExporter

    rounds = args.rounds or (3 if args.quick else 9)
    calls = {
        "json": 20 if args.quick else 100,
        "sse": 6 if args.quick else 30,
        "sse500": 1 if args.quick else 4,
    }
    log = Path(tempfile.mkdtemp()) / "bench_http.atof.jsonl"
    AtofFileExporter(log, mode="overwrite").register()
    peer = _peer()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    urls = json.loads(server.stdout.readline())

    def sdk(base_url: str | None, case: str) -> Any:
        http_client = _mock_client(case) if base_url is None else None
        return openai.OpenAI(
            base_url=(base_url + "/v1") if base_url else URL,
            api_key="sk-bench",
            max_retries=0,
            http_client=http_client,
        )

    settings: dict[str, dict[str, dict[str, Callable[[], None]]]] = {}
    for case in ("json", "sse", "sse500"):
        loop_client, mock_client, http_client = (
            sdk(urls[case], case),
            sdk(None, case),
            _mock_client(case),
        )
        settings.setdefault("loopback", {})[case] = {
            "plain": _sdk_call(loop_client, case),
            "llmflow": _sdk_call(llmflow.instrument(sdk(urls[case], case)), case),
        }
        settings.setdefault("mock", {})[case] = {
            "plain": _sdk_call(mock_client, case),
            "llmflow": _sdk_call(llmflow.instrument(sdk(None, case)), case),
        }
        settings.setdefault("transport", {})[case] = {
            "plain": _http_call(http_client, case),
            "llmflow": _http_call(llmflow.instrument(_mock_client(case)), case),
        }
    figures: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    noop = lambda: None  # noqa: E731
    try:
        for round_ in range(rounds + 1):  # round 0 warms up and is not counted
            for setting, cases in settings.items():
                for case, variants in cases.items():
                    n = calls[case]
                    order = ["plain", "llmflow"]
                    if peer is not None and setting != "transport":
                        order.append("openinference")
                    shift = round_ % len(order)  # each variant goes first in turn
                    got: dict[str, tuple[float, float]] = {}
                    for variant in order[shift:] + order[:shift]:
                        if variant == "plain":
                            got[variant] = _batch(variants["plain"], n, noop)
                        elif variant == "llmflow":
                            got[variant] = _batch(variants["llmflow"], n, llmflow.flush)
                        else:
                            assert peer is not None
                            peer.on()
                            try:
                                got[variant] = _batch(variants["plain"], n, noop)
                            finally:
                                peer.off()
                    if round_:
                        for variant, value in got.items():
                            figures.setdefault((setting, case, variant), []).append(value)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)

    # The least disturbed round: on a shared machine noise only ever adds time.
    wall = {key: min(v[0] for v in values) for key, values in figures.items()}
    cpu = {key: min(v[1] for v in values) for key, values in figures.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"bench_http: {rounds} rounds; load average {load} on {os.cpu_count()} CPUs")
    results: dict[str, Any] = {}
    titles = {
        "loopback": "openai SDK -> FakeProvider on 127.0.0.1 (real sockets)",
        "mock": "openai SDK -> httpx2.MockTransport (no socket)",
        "transport": "httpx2.Client -> MockTransport, no SDK (llmflow's own cost)",
    }
    marginal = LONG - CHUNKS
    for setting, title in titles.items():
        print()
        print(f"{title}: µs per call, wall (process CPU)")
        print()
        print(
            "| client | call | added | 50-chunk SSE call | added | 500-chunk SSE call | added "
            "| added per chunk, wall | added per chunk, CPU |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for variant in ("plain", "llmflow", "openinference"):
            if (setting, "json", variant) not in wall:
                continue
            row: dict[str, float] = {}
            for name, table in (("wall", wall), ("cpu", cpu)):
                for case in ("json", "sse", "sse500"):
                    value = table[setting, case, variant]
                    row[f"{case}_{name}_us"] = value
                    row[f"{case}_{name}_added_us"] = value - table[setting, case, "plain"]
                added = row[f"sse500_{name}_added_us"] - row[f"sse_{name}_added_us"]
                row[f"per_chunk_{name}_added_us"] = added / marginal
            pct = row["json_wall_added_us"] / wall[setting, "json", "plain"] * 100
            row["json_wall_added_pct"] = pct
            cells = [
                f"{row['json_wall_us']:,.0f} ({row['json_cpu_us']:,.0f})",
                f"{row['json_wall_added_us']:+,.0f} ({pct:+.1f} %)",
            ]
            for case in ("sse", "sse500"):
                cells.append(f"{row[f'{case}_wall_us']:,.0f} ({row[f'{case}_cpu_us']:,.0f})")
                cells.append(
                    f"{row[f'{case}_wall_added_us']:+,.0f} ({row[f'{case}_cpu_added_us']:+,.0f})"
                )
            cells.append(f"{row['per_chunk_wall_added_us']:+.2f}")
            cells.append(f"{row['per_chunk_cpu_added_us']:+.2f}")
            print(f"| {variant} | " + " | ".join(cells) + " |")
            results[f"{setting}/{variant}"] = row
    if peer is None:
        print("\nopeninference-instrumentation-openai is not installed: no peer figures.")
    if args.json is not None:
        args.json.write_text(json.dumps({"rounds": rounds, "load": load, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
