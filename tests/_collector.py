"""A loopback ATOF collector for the HttpExporter tests.

``Collector`` is a real HTTP server on 127.0.0.1 (ephemeral port, kept across
``stop()``/``start()`` so the exporter's URL stays valid). It decompresses gzip
bodies and records every line; ``script`` queues answers (status, headers) for
the next requests, ``sticky`` answers every request with one status, and
``hang`` makes it accept requests and never answer until released;
``lose_answers`` stores that many batches and closes the connection instead
of answering (the sender resends: at-least-once). OTLP
protobuf bodies are kept as sent in ``protobuf``.
"""

from __future__ import annotations

import gzip
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must not block stop()
    allow_reuse_address = True
    collector: Collector


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        collector = self.server.collector
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {key.lower(): value for key, value in self.headers.items()}
        with collector.lock:
            collector.requests.append(headers)
            answer = collector.script.popleft() if collector.script else None
            if answer is None and collector.sticky is not None:
                answer = collector.sticky
        if collector.hang.is_set():
            collector.release.wait(30.0)
            return
        if answer is not None and not 200 <= answer[0] < 300:
            status, extra = answer
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if headers.get("content-type", "").startswith("application/x-protobuf"):
            with collector.lock:  # an OTLP export: kept as sent
                collector.protobuf.append((self.path, body))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        lines = [orjson.loads(line) for line in body.splitlines() if line.strip()]
        with collector.lock:
            collector.bodies.append(body)
            collector.received.extend(lines)
            collector.batches.append(len(lines))
            lose_answer = collector.lose_answers > 0
            collector.lose_answers -= lose_answer
        if lose_answer:  # stored, but the answer never reaches the sender
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()


class Collector:
    """Records what the exporter delivers; can go down, fail, throttle and hang."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []  # decompressed ATOF bodies, byte for byte
        self.batches: list[int] = []
        self.requests: list[dict[str, str]] = []
        self.protobuf: list[tuple[str, bytes]] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.sticky: tuple[int, dict[str, str]] | None = None
        self.lose_answers = 0
        self.hang = threading.Event()
        self.release = threading.Event()
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/atof"

    def start(self) -> Collector:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.collector = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            self.release.set()
            server.shutdown()
            server.server_close()
            self.release.clear()

    def reserve_port(self) -> Collector:
        """Pick a free port without serving yet (the receiver starts 'down')."""
        self.start()
        self.stop()
        return self

    def uuids(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return [(line["uuid"], line.get("scope_category")) for line in self.received]
