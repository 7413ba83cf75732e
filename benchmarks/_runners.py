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
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import _workload as w

__all__ = ["RUNNERS", "LlmflowRunner", "NemoRelayRunner", "events_per_call"]


def events_per_call(runtime: str, case: str, chunks: int) -> int:
    """Lines one call must add to the JSONL file.

    manual: the llm start/end pair. managed and stream: a guardrail start/end
    pair plus the llm pair. nemo-relay also records every stream chunk as an
    ``llm.chunk`` mark (it has no switch to turn that off).
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


RUNNERS: dict[str, type[LlmflowRunner] | type[NemoRelayRunner]] = {
    "llmflow": LlmflowRunner,
    "nemo-relay": NemoRelayRunner,
}
