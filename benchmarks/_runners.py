"""One adapter per runtime: the same three workloads, written with each runtime's public API.

A runner owns one runtime configured for one case: with or without the JSONL
exporter, with or without the managed-call middleware. ``bench.py`` creates
exactly one runner per child process, so registrations never leak between
runtimes or cases.

Middleware registered for ``managed`` and ``stream`` (identity functions only,
so that the figures are the cost of the runtime, not of the callbacks):

* one conditional-execution guardrail that allows,
* one request intercept that returns the request unchanged,
* one async execution intercept that awaits ``next`` (non-streaming calls only;
  neither runtime runs it for streams),
* one sanitize-request and one sanitize-response guardrail returning their input.

``FloorRunner`` ("floor") is no runtime: it is the manual case written by hand,
the lower bound for the figures above (see its docstring).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import _workload as w

__all__ = ["RUNNERS", "FloorRunner", "LlmflowRunner", "NemoRelayRunner", "events_per_call"]


def events_per_call(runtime: str, case: str, chunks: int) -> int:
    """Lines one call must add to the JSONL file.

    manual: the llm start/end pair (every runtime, the floor included). managed
    and stream: a guardrail start/end pair plus the llm pair. nemo-relay also
    records every stream chunk as an ``llm.chunk`` mark (it has no switch to
    turn that off).
    """
    if case == "manual":
        return 2
    if case == "managed":
        return 4
    if case == "stream":
        return 4 + (chunks if runtime == "nemo-relay" else 0)
    raise ValueError(f"case: unknown {case!r}")


def _stream_provider(chunks: list[dict[str, Any]]) -> Callable[[Any], AsyncIterator[Any]]:
    async def provider(_request: Any) -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    return provider


class LlmflowRunner:
    """llmflow: a fresh ``Runtime()`` installed as the default, shut down at close."""

    name = "llmflow"

    def __init__(self, path: str | None, *, middleware: bool, chunks: int = 0) -> None:
        import llmflow
        from llmflow.codecs import OpenAIChatCodec
        from llmflow.exporters import AtofFileExporter

        self._llmflow = llmflow
        self.runtime = llmflow.Runtime()
        self.runtime.install()
        self.path = path
        if path is not None:
            AtofFileExporter(path, mode="overwrite", fsync=False).register()
        self.request = llmflow.LlmRequest(w.request_headers(), w.request_body())
        self.response = w.response()
        self.codec = OpenAIChatCodec()
        self.stream_chunks = w.chunks(chunks) if chunks else []
        response = self.response

        async def provider(_request: Any) -> Any:
            return response

        self.provider = provider
        self.stream_provider = _stream_provider(self.stream_chunks)
        if middleware:
            self._register()

    def _register(self) -> None:
        guardrails, intercepts = self._llmflow.guardrails, self._llmflow.intercepts

        def allow(_request: Any) -> None:
            return None

        def same_request(request: Any, _ctx: Any) -> Any:
            return request

        async def around(request: Any, next_: Any) -> Any:
            return await next_(request)

        def same_response(response: Any, _ctx: Any) -> Any:
            return response

        guardrails.register_llm_conditional_execution("bench-allow", 10, allow)
        intercepts.register_llm_request("bench-request", 10, same_request)
        intercepts.register_llm_execution("bench-execution", 10, around)
        guardrails.register_llm_sanitize_request("bench-sanitize-request", 10, same_request)
        guardrails.register_llm_sanitize_response("bench-sanitize-response", 10, same_response)

    # -- the timed loops ---------------------------------------------------------

    def manual(self, n: int) -> None:
        llm_call, llm_call_end = self._llmflow.llm_call, self._llmflow.llm_call_end
        request, response = self.request, self.response
        for _ in range(n):
            handle = llm_call(w.CALL_NAME, request, model_name=w.MODEL)
            llm_call_end(handle, response)

    async def managed(self, n: int) -> Any:
        execute = self._llmflow.llm_call_execute
        request, provider, codec = self.request, self.provider, self.codec
        result = None
        for _ in range(n):
            result = await execute(
                w.CALL_NAME, request, provider, model_name=w.MODEL, response_codec=codec
            )
        return result

    async def stream(self, n: int) -> int:
        stream_execute = self._llmflow.llm_stream_call_execute
        request, provider, codec = self.request, self.stream_provider, self.codec
        received = 0
        for _ in range(n):
            stream = await stream_execute(
                w.CALL_NAME, request, provider, model_name=w.MODEL, response_codec=codec
            )
            async for _chunk in stream:
                received += 1
        return received

    def flush(self) -> None:
        self._llmflow.flush()

    async def aflush(self) -> None:
        await self._llmflow.aflush()

    def close(self) -> None:
        self.runtime.shutdown()


class NemoRelayRunner:
    """nemo-relay: one process-global runtime; the child process is the isolation."""

    name = "nemo-relay"

    def __init__(self, path: str | None, *, middleware: bool, chunks: int = 0) -> None:
        import nemo_relay
        from nemo_relay import codecs

        self._nr = nemo_relay
        self.path = path
        self.exporter: Any = None
        if path is not None:
            config = nemo_relay.AtofExporterConfig()
            config.sink_type = "file"
            config.output_directory = os.path.dirname(path)
            config.filename = os.path.basename(path)
            # Append opens the file with O_APPEND (the memory run truncates it between
            # samples); every run starts from a new, empty file in a fresh directory.
            config.mode = nemo_relay.AtofExporterMode.Append
            self.exporter = nemo_relay.AtofExporter(config)
            self.exporter.register("bench-atof")
            if os.path.abspath(self.exporter.path) != os.path.abspath(path):
                raise RuntimeError(f"nemo-relay writes {self.exporter.path}, expected {path}")
        self.request = nemo_relay.LLMRequest(w.request_headers(), w.request_body())
        self.response = w.response()
        self.codec = codecs.OpenAIChatCodec()
        self.stream_chunks = w.chunks(chunks) if chunks else []
        # nemo-relay's codecs have no stream accumulator: the collector/finalizer pair
        # is llmflow's OpenAI accumulator, so both runtimes run the same fold code.
        self._accumulator: Callable[[], Any] | None = None
        if chunks:
            from llmflow.codecs import OpenAIChatCodec

            self._accumulator = OpenAIChatCodec().stream_accumulator
        response = self.response

        async def provider(_request: Any) -> Any:
            return response

        self.provider = provider
        self.stream_provider = _stream_provider(self.stream_chunks)
        self._registered: list[tuple[Callable[[str], bool], str]] = []
        if middleware:
            self._register()

    def _register(self) -> None:
        nr = self._nr
        outcome = nr.LLMRequestInterceptOutcome

        def allow(_request: Any) -> None:
            return None

        def same_request(_name: str, request: Any, annotated: Any) -> Any:
            return outcome(request, annotated)

        async def around(_name: str, request: Any, _ctx: Any, next_call: Any) -> Any:
            return await next_call(request)

        def sanitize_request(request: Any, _ctx: Any) -> Any:
            return request

        def sanitize_response(response: Any, _ctx: Any) -> Any:
            return response

        g, i = nr.guardrails, nr.intercepts
        g.register_llm_conditional_execution("bench-allow", 10, allow)
        i.register_llm_request("bench-request", 10, False, same_request)
        i.register_llm_execution("bench-execution", 10, around)
        g.register_llm_sanitize_request("bench-sanitize-request", 10, sanitize_request)
        g.register_llm_sanitize_response("bench-sanitize-response", 10, sanitize_response)
        self._registered = [
            (g.deregister_llm_conditional_execution, "bench-allow"),
            (i.deregister_llm_request, "bench-request"),
            (i.deregister_llm_execution, "bench-execution"),
            (g.deregister_llm_sanitize_request, "bench-sanitize-request"),
            (g.deregister_llm_sanitize_response, "bench-sanitize-response"),
        ]

    # -- the timed loops ---------------------------------------------------------

    def manual(self, n: int) -> None:
        call, call_end = self._nr.llm.call, self._nr.llm.call_end
        request, response = self.request, self.response
        for _ in range(n):
            handle = call(w.CALL_NAME, request, model_name=w.MODEL)
            call_end(handle, response)

    async def managed(self, n: int) -> Any:
        execute = self._nr.llm.execute
        request, provider, codec = self.request, self.provider, self.codec
        result = None
        for _ in range(n):
            result = await execute(
                w.CALL_NAME, request, provider, model_name=w.MODEL, response_codec=codec
            )
        return result

    async def stream(self, n: int) -> int:
        stream_execute = self._nr.llm.stream_execute
        request, provider, codec = self.request, self.stream_provider, self.codec
        make_accumulator = self._accumulator
        assert make_accumulator is not None
        received = 0
        for _ in range(n):
            accumulator = make_accumulator()
            stream = await stream_execute(
                w.CALL_NAME,
                request,
                provider,
                accumulator.collect,
                accumulator.finalize,
                model_name=w.MODEL,
                response_codec=codec,
            )
            async for _chunk in stream:
                received += 1
        return received

    def flush(self) -> None:
        self._nr.subscribers.flush()
        if self.exporter is not None:
            self.exporter.force_flush()

    async def aflush(self) -> None:
        await self._nr.subscribers.flush_async()
        if self.exporter is not None:
            self.exporter.force_flush()

    def close(self) -> None:
        for deregister, name in self._registered:
            deregister(name)
        if self.exporter is not None:
            self.exporter.force_flush()
            self.exporter.deregister("bench-atof")
            self.exporter.shutdown()


class FloorRunner:
    """The floor: the manual case's lines written by hand, with no library at all.

    Per call it does the observable work of ``llm_call`` + ``llm_call_end``
    with the exporter, and nothing else: a UUIDv7-shaped id, two wall-clock
    timestamps, two ``orjson.dumps`` snapshots (the request's headers without
    ``authorization`` plus its body, then the response), and the two ATOF lines
    llmflow writes (same fields, same order), appended to a deque. One daemon
    thread takes up to ``BATCH`` lines at a time and writes them with
    ``os.writev`` to an ``O_APPEND`` file; once the queue is empty it naps
    ``NAP`` seconds, then sleeps until woken, and an emitter wakes it only when
    it sleeps (flush and close wake it at once). The queue is bounded
    (``CAPACITY`` lines, the caller waits for room: no loss) and ``flush()``
    returns once every line appended before it is written. Without a path the
    worker pops and discards.

    Deliberately skipped: argument validation, scopes and parent ids (every
    call is a root), a monotonic id counter inside one millisecond, middleware,
    subscribers, sanitizers, the Event object and its wire caching. The name
    and the model are constants of the workload, so their JSON is built once.
    A pure-Python runtime of this architecture (snapshot on the caller's
    thread, one delivery thread writing the file) does at least this work per
    call, so on the same machine it cannot be faster. Only ``manual`` is
    implemented.
    """

    name = "floor"
    CAPACITY = 4096
    BATCH = 1000  # buffers per writev(2): one per line, below IOV_MAX (1024)
    NAP = 0.002

    def __init__(self, path: str | None, *, middleware: bool, chunks: int = 0) -> None:
        import orjson

        if middleware or chunks:
            raise NotImplementedError("floor: only the manual case (no middleware, no stream)")
        self._dumps = orjson.dumps
        self.path = path
        headers = {k: v for k, v in w.request_headers().items() if k.lower() != "authorization"}
        self.headers = headers
        self.body = w.request_body()
        self.response = w.response()
        identity = (
            b'","name":' + orjson.dumps(w.CALL_NAME) + b',"scope_category":"%s",'
            b'"attributes":[],"category":"llm","category_profile":{"model_name":'
            + orjson.dumps(w.MODEL)
            + b'},"data":'
        )
        self._head = b'{"kind":"scope","atof_version":"0.1","uuid":"'
        self._start_mid = identity.replace(b"%s", b"start")
        self._end_mid = identity.replace(b"%s", b"end")
        self._tail = b',"data_schema":null,"metadata":null}\n'
        self._second = -1
        self._second_text = ""

        self._queue: deque[bytes] = deque()
        self._wake = threading.Event()  # cuts the worker's nap or sleep short
        self._space = threading.Event()  # set by the worker after every batch
        self._written = threading.Condition()
        self._appended = 0  # lines appended; only the emitting thread writes it
        self._lines_written = 0  # lines the worker wrote (or discarded); under _written
        self._sleeping = False
        self._stopping = False
        self._fd: int | None = None
        if path is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._thread = threading.Thread(target=self._run, name="floor-writer", daemon=True)
        self._thread.start()

    # -- the timed loop ------------------------------------------------------------

    def manual(self, n: int) -> None:
        dumps, time_ns, getrandbits, strftime, gmtime = (
            self._dumps,
            time.time_ns,
            random.getrandbits,
            time.strftime,
            time.gmtime,
        )
        headers, body, response = self.headers, self.body, self.response
        head, start_mid, end_mid, tail = self._head, self._start_mid, self._end_mid, self._tail
        join = b"".join
        queue, wake, capacity = self._queue, self._wake, self.CAPACITY
        append = queue.append
        # uuid: 1 (a leading digit, sliced off) | ms:48 | version 7:4 | rand:12 | 0b10 | rand:62
        fixed = 1 << 128 | 7 << 76 | 1 << 63
        rand_mask = ((1 << 76) - 1) ^ (3 << 62)
        second, second_text = self._second, self._second_text
        for _ in range(n):
            us = time_ns() // 1000
            digits = hex(fixed | (us // 1000) << 80 | (getrandbits(76) & rand_mask))[3:]
            uuid = f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
            sec, micro = divmod(us, 1_000_000)
            if sec != second:
                second, second_text = sec, strftime("%Y-%m-%dT%H:%M:%S", gmtime(sec))
            ident = f'{uuid}","parent_uuid":null,"timestamp":"'
            stamp = f"{ident}{second_text}.{micro:06d}Z".encode()
            snapshot = dumps({"headers": headers, "content": body})
            if len(queue) >= capacity:
                self._wait_for_room()
            append(join((head, stamp, start_mid, snapshot, tail)))
            if self._sleeping:
                wake.set()

            us = time_ns() // 1000
            sec, micro = divmod(us, 1_000_000)
            if sec != second:
                second, second_text = sec, strftime("%Y-%m-%dT%H:%M:%S", gmtime(sec))
            stamp = f"{ident}{second_text}.{micro:06d}Z".encode()
            snapshot = dumps(response)
            if len(queue) >= capacity:
                self._wait_for_room()
            append(join((head, stamp, end_mid, snapshot, tail)))
            if self._sleeping:
                wake.set()
        self._second, self._second_text = second, second_text
        self._appended += 2 * n  # this loop is the only emitter

    def _wait_for_room(self) -> None:
        queue, space = self._queue, self._space
        while len(queue) >= self.CAPACITY:
            space.clear()
            if len(queue) < self.CAPACITY:  # the worker made room before the clear
                break
            self._wake.set()
            space.wait(0.05)

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        queue, popleft, wake, space = self._queue, self._queue.popleft, self._wake, self._space
        fd, batch_size, nap, written = self._fd, self.BATCH, self.NAP, self._written
        writev = os.writev
        while True:
            if not queue:
                if self._stopping:
                    return
                wake.wait(nap)  # let the next batch gather; flush and close cut it short
                wake.clear()
                if not queue:
                    self._sleeping = True
                    if not queue and not self._stopping:  # re-check: an emitter missed the flag
                        wake.wait()
                    self._sleeping = False
                    wake.clear()
                continue
            batch: list[bytes] = []
            take = batch.append
            try:
                for _ in range(batch_size):
                    take(popleft())
            except IndexError:
                pass
            space.set()
            if fd is not None:
                done = writev(fd, batch)
                total = sum(map(len, batch))
                if done < total:  # cut short (signal, full disk): finish it
                    rest = memoryview(b"".join(batch))[done:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
            with written:
                self._lines_written += len(batch)
                written.notify_all()

    # -- flush and close ---------------------------------------------------------------

    def flush(self) -> None:
        target = self._appended
        with self._written:
            if self._lines_written < target:
                self._wake.set()
                self._written.wait_for(lambda: self._lines_written >= target)

    async def aflush(self) -> NoReturn:
        raise NotImplementedError("floor: only the manual case")

    async def managed(self, n: int) -> NoReturn:
        raise NotImplementedError("floor: only the manual case")

    async def stream(self, n: int) -> NoReturn:
        raise NotImplementedError("floor: only the manual case")

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


RUNNERS: dict[str, type[LlmflowRunner] | type[NemoRelayRunner] | type[FloorRunner]] = {
    "llmflow": LlmflowRunner,
    "nemo-relay": NemoRelayRunner,
    "floor": FloorRunner,
}
