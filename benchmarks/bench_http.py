"""Benchmark for SPEC §11: what instrumenting an SDK client adds to each call.

Usage::

    /work/venv/bin/python benchmarks/bench_http.py [--quick] [--rounds N] [--json PATH]

The same calls go through a plain ``openai.OpenAI`` client, the same client
after ``llmflow.instrument`` (events written to a JSONL file, each timed batch
ending with ``llmflow.flush()``), and a plain client under OpenInference's
OpenAI instrumentation with an in-memory OpenTelemetry span exporter. Two
``FakeProvider`` servers run in this (parent) process; each measurement runs in
a child process of its own (OpenInference patches the SDK module, so it must
never share a process with the others), and the children alternate, round
after round. Cases: a non-streaming chat call (~2 KB request and response) and
a streamed one of 50 SSE text chunks (plus role, finish and ``[DONE]`` frames).
The same calls also run against ``httpx2.MockTransport`` (no socket, no
server): that isolates what the client side costs, free of the loopback
server's noise. A child's figure is its least disturbed batch (on a shared
machine noise only adds time); the table shows the median over rounds;
"added" is that minus the plain client's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ("plain", "llmflow", "openinference")
CASES = ("json", "sse")
CHUNKS = 50
TEXT = " ".join(f"word{i}" for i in range(300))  # ~2 KB of response text
MESSAGES = [
    {"role": "system", "content": "You are a careful assistant. " * 20},
    *(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "x" * 150}
        for i in range(9)
    ),
]


def _mock_client(case: str) -> Any:
    """An httpx2 client whose transport answers in-process: no socket, no server thread."""
    import httpx2

    from llmflow.testing import Reply
    from llmflow.testing._fake_provider import _chat_body, _chat_stream

    reply = Reply(text=TEXT, chunks=CHUNKS)
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


def _child(variant: str, case: str, base_url: str, calls: int, batches: int) -> dict[str, Any]:
    import openai

    flush = lambda: None  # noqa: E731
    if base_url == "transport":  # the httpx2 layer alone: no SDK, no socket
        return _transport_child(variant, case, calls, batches)
    mock = base_url == "mock"
    client: Any = openai.OpenAI(
        base_url="http://127.0.0.1:9/v1" if mock else base_url + "/v1",
        api_key="sk-bench",
        max_retries=0,
        http_client=_mock_client(case) if mock else None,
    )
    if variant == "llmflow":
        import llmflow
        from llmflow.exporters import AtofFileExporter

        log = Path(tempfile.mkdtemp()) / "bench.atof.jsonl"
        AtofFileExporter(log, mode="overwrite").register()
        client = llmflow.instrument(client)
        flush = llmflow.flush
    elif variant == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        flush = exporter.clear  # keeps memory flat; spans are already exported

    def one() -> None:
        if case == "json":
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return
        for _ in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass

    for _ in range(max(calls // 4, 5)):  # warm up connections, caches, imports
        one()
    flush()
    per_call: list[float] = []
    for _ in range(batches):
        began = time.perf_counter()
        for _ in range(calls):
            one()
        flush()
        per_call.append((time.perf_counter() - began) / calls * 1e6)
    # The least disturbed batch: on a shared machine the noise only ever adds time.
    return {"variant": variant, "case": case, "us_per_call": min(per_call)}


def _transport_child(variant: str, case: str, calls: int, batches: int) -> dict[str, Any]:
    flush = lambda: None  # noqa: E731
    client = _mock_client(case)
    if variant == "llmflow":
        import llmflow
        from llmflow.exporters import AtofFileExporter

        log = Path(tempfile.mkdtemp()) / "bench.atof.jsonl"
        AtofFileExporter(log, mode="overwrite").register()
        client = llmflow.instrument(client)
        flush = llmflow.flush
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": case == "sse"}
    content = json.dumps(body).encode()
    url = "http://127.0.0.1:9/v1/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}

    def one() -> None:
        with client.stream("POST", url, content=content, headers=headers) as response:
            for _ in response.iter_bytes():
                pass

    for _ in range(max(calls // 4, 5)):
        one()
    flush()
    per_call: list[float] = []
    for _ in range(batches):
        began = time.perf_counter()
        for _ in range(calls):
            one()
        flush()
        per_call.append((time.perf_counter() - began) / calls * 1e6)
    return {"variant": variant, "case": case, "us_per_call": min(per_call)}


def _run_child(variant: str, case: str, url: str, calls: int, batches: int) -> float:
    args = [sys.executable, __file__, "--child", variant, case, url, str(calls), str(batches)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["us_per_call"])


def _peer_available() -> bool:
    try:
        import openinference.instrumentation.openai  # noqa: F401
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--child", nargs=5, metavar=("VARIANT", "CASE", "URL", "CALLS", "BATCHES"))
    args = parser.parse_args()
    if args.child:
        variant, case, url, calls, batches = args.child
        print(json.dumps(_child(variant, case, url, int(calls), int(batches))))
        return 0

    from llmflow.testing import FakeProvider, Reply

    rounds = args.rounds or (1 if args.quick else 3)
    calls = {"json": 40 if args.quick else 100, "sse": 10 if args.quick else 30}
    batches = 3 if args.quick else 5
    variants = [v for v in VARIANTS if v != "openinference" or _peer_available()]
    figures: dict[tuple[str, str], list[float]] = {}
    with (
        FakeProvider(default=Reply(text=TEXT), record=False) as json_server,
        FakeProvider(default=Reply(text=TEXT, chunks=CHUNKS), record=False) as sse_server,
    ):
        urls = {
            ("loopback", "json"): json_server.base_url,
            ("loopback", "sse"): sse_server.base_url,
            ("mock", "json"): "mock",
            ("mock", "sse"): "mock",
            ("transport", "json"): "transport",
            ("transport", "sse"): "transport",
        }
        for _ in range(rounds):
            for (server, case), url in urls.items():
                for variant in variants:
                    if server == "transport" and variant == "openinference":
                        continue  # it instruments the SDK, not the HTTP layer
                    value = _run_child(variant, case, url, calls[case], batches)
                    figures.setdefault((server, variant, case), []).append(value)
    median = {key: statistics.median(values) for key, values in figures.items()}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average while measuring: {load} ({os.cpu_count()} CPUs)")
    print()
    results: dict[str, Any] = {}
    for server, title in (
        ("loopback", "FakeProvider on 127.0.0.1 (real sockets, server in the parent process)"),
        ("mock", "httpx2.MockTransport (no socket: the client side's own cost)"),
        ("transport", "httpx2 client + MockTransport, no SDK (llmflow's own cost)"),
    ):
        print(f"{title}; {rounds} round(s), µs per call")
        print()
        print(
            "| client | non-streaming call | added | 50-chunk SSE call | added | added per chunk |"
        )
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for variant in variants:
            if (server, variant, "json") not in median:
                continue
            j, sse = median[server, variant, "json"], median[server, variant, "sse"]
            added_j = j - median[server, "plain", "json"]
            added_s = sse - median[server, "plain", "sse"]
            pct = added_j / median[server, "plain", "json"] * 100
            print(
                f"| {variant} | {j:,.0f} µs | {added_j:+,.0f} µs ({pct:+.1f} %) | "
                f"{sse:,.0f} µs | {added_s:+,.0f} µs | {added_s / CHUNKS:+.2f} µs |"
            )
            results[f"{server}/{variant}"] = {
                "json_us": j,
                "json_added_us": added_j,
                "json_added_pct": pct,
                "sse_us": sse,
                "sse_added_us": added_s,
                "sse_added_per_chunk_us": added_s / CHUNKS,
            }
        print()
    if "openinference" not in variants:
        print("\nopeninference-instrumentation-openai is not installed: no peer figures.")
    if args.json is not None:
        args.json.write_text(json.dumps({"rounds": rounds, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
