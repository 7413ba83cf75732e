"""``stats`` on a log written by the real entry points with the real cost and retry middleware."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from cli_logs import run_cli

import llmflow
from llmflow import LlmRequest, intercepts
from llmflow.codecs import OpenAIChatCodec
from llmflow.exporters import AtofFileExporter
from llmflow.middleware import CostRecorder, retry


def completion(model: str, prompt: int, output: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        },
    }


def test_stats_sums_recorded_cost_and_counts_middleware_retries(
    runtime: llmflow.Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "run.jsonl"
    AtofFileExporter(path, mode="overwrite").register(runtime=runtime)
    CostRecorder().register(runtime=runtime)
    intercepts.register_llm_execution("retry", 10, retry(max_attempts=3, base_delay=0.001))
    failures = [ConnectionError("reset by peer")]

    async def provider(request: LlmRequest) -> dict[str, Any]:
        if failures:
            raise failures.pop()
        return completion(request.content["model"], 1_000, 200)

    async def run() -> None:
        for _ in range(2):
            await llmflow.llm_call_execute(
                "openai.chat",
                LlmRequest({}, {"model": "gpt-4o-mini", "messages": []}),
                provider,
                response_codec=OpenAIChatCodec(),
            )

    with llmflow.scope("agent", "agent"):
        asyncio.run(run())
    runtime.flush()
    ends = [
        orjson.loads(line)
        for line in path.read_bytes().splitlines()
        if b'"scope_category":"end"' in line and b'"category":"llm"' in line
    ]
    recorded = [end["metadata"]["cost.usd"] for end in ends]
    assert len(recorded) == 2 and all(isinstance(cost, float) and cost > 0 for cost in recorded)
    result = run_cli("stats", "--json", "--by", "model", str(path))
    assert result.returncode == 0, result.stderr
    (group,) = orjson.loads(result.stdout)["groups"]["model"]
    assert group["key"] == "gpt-4o-mini"
    assert (group["calls"], group["errors"], group["retries"]) == (2, 0, 1)
    assert group["cost_usd"] == round(sum(recorded), 9)
    assert group["tokens"]["input"] == 2_000 and group["tokens"]["output"] == 400
