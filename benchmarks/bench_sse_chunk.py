"""The CPU llmflow's HTTP transport adds per SSE chunk, without an SDK (SPEC §11).

Usage::

    /work/venv/bin/python benchmarks/bench_sse_chunk.py            # CPU per chunk
    valgrind --tool=callgrind /work/venv/bin/python benchmarks/bench_sse_chunk.py \\
        --calls N --chunks 50|500 --client plain|llmflow          # one count

A bare ``httpx2.Client`` on a ``MockTransport`` streams OpenAI chat chunks
(the frames ``bench_http.py`` uses), plain and instrumented, for 50 and for
500 chunks. The cost added per chunk is the marginal one,
``(added(500) - added(50)) / 450``, so the call's own share cancels out.
Timing is CPU (``time.thread_time`` of the calling thread and
``time.process_time`` including llmflow's writer thread) and wall time
(``time.perf_counter``), best of 7 batches, plain and instrumented
alternated twice; ``PYTHONPATH=<other tree>/src`` measures another tree's
llmflow with this script. For instruction counts, run the second form for
both clients and both sizes and take the same difference
(``PYTHONHASHSEED=0`` makes the counts repeatable).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

URL = "http://127.0.0.1:9/v1/chat/completions"
TEXT = " ".join(f"word{i}" for i in range(300))
BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
)


CLOCKS: tuple[tuple[str, Callable[[], float]], ...] = (
    ("thread CPU", time.thread_time),
    ("process CPU", time.process_time),
    ("wall", time.perf_counter),
)


def _client(chunks: int, instrumented: bool, obfuscation: bool = False) -> Any:
    import httpx2

    import llmflow
    from llmflow.testing import Reply
    from llmflow.testing._fake_provider import _chat_stream

    reply = Reply(text=TEXT * (chunks // 50 + 1), chunks=chunks)
    frames = list(_chat_stream(reply, "gpt-4o", 1, {}))
    if obfuscation:  # as OpenAI pads each chunk: a last field of varying length
        frames = [
            f[:-3] + b',"obfuscation":"' + b"aB3xYz9QkLmN0pR"[: 1 + n % 15] + b'"}\n\n'
            if f.startswith(b"data: {")
            else f
            for n, f in enumerate(frames)
        ]
    headers = {"content-type": "text/event-stream", "x-request-id": "req_1"}

    class Frames(httpx2.SyncByteStream):
        def __iter__(self) -> Any:
            return iter(frames)

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=headers, stream=Frames())

    client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return llmflow.instrument(client) if instrumented else client


def _call(client: Any) -> None:
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    with client.stream("POST", URL, content=BODY, headers=headers) as response:
        for _ in response.iter_bytes():
            pass


def _best(client: Any, calls: int, clock: Callable[[], float]) -> float:
    import llmflow

    best = float("inf")
    for _ in range(7):
        began = clock()
        for _ in range(calls):
            _call(client)
        best = min(best, (clock() - began) / calls)
        llmflow.flush()
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=None, help="one count: this many calls")
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--client", choices=["plain", "llmflow"], default="llmflow")
    parser.add_argument(
        "--obfuscation", action="store_true", help="chunks end with OpenAI's obfuscation field"
    )
    args = parser.parse_args()

    import llmflow
    from llmflow.exporters import AtofFileExporter

    AtofFileExporter(Path(tempfile.mkdtemp()) / "sse.atof.jsonl", mode="overwrite").register()
    if args.calls is not None:
        client = _client(args.chunks, args.client == "llmflow", args.obfuscation)
        for _ in range(args.calls + 1):
            _call(client)
        llmflow.flush()
        return 0
    got: dict[tuple[int, str], tuple[float, float]] = {}
    for chunks, calls in ((50, 40), (500, 6)):
        plain = _client(chunks, False, args.obfuscation)
        instrumented = _client(chunks, True, args.obfuscation)
        for name, clock in CLOCKS:
            pairs = [(_best(plain, calls, clock), _best(instrumented, calls, clock))]
            pairs.append((_best(plain, calls, clock), _best(instrumented, calls, clock)))
            got[chunks, name] = (min(p for p, _ in pairs), min(i for _, i in pairs))
    for name, _ in CLOCKS:
        (p50, i50), (p500, i500) = got[50, name], got[500, name]
        per_chunk = ((i500 - p500) - (i50 - p50)) / 450
        print(
            f"{name}: plain {p50:,.0f} / {p500:,.0f} µs per 50/500-chunk call, "
            f"added {i50 - p50:,.0f} / {i500 - p500:,.0f}; added per chunk {per_chunk:.2f} µs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
