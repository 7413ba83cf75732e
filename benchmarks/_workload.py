"""The benchmark workload: one OpenAI Chat Completions exchange, built deterministically.

Both runtimes get exactly these objects: a request of about 2 KB (headers plus
a body of nine messages), a ``chat.completion`` response of about 2 KB, and the
same response as a stream of ``chat.completion.chunk`` dicts. Nothing here
imports llmflow or nemo-relay.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "MODEL",
    "CALL_NAME",
    "chunks",
    "request_body",
    "request_headers",
    "response",
    "serialized_size",
]

MODEL = "gpt-4o-2024-08-06"
CALL_NAME = "openai.chat"
_ID = "chatcmpl-AxQ7mB2vK9fLr3TnW5yZc8Hd1Ge4"
_CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z
_FINGERPRINT = "fp_50cad350e4"

_SYSTEM = (
    "You are a support engineer for a data platform. Answer precisely, cite the "
    "configuration keys involved, and prefer minimal changes. If the user shares logs, "
    "point at the first line that explains the failure before proposing a fix."
)

_TURNS = [
    (
        "user",
        "Our nightly ingestion job started failing after we moved the warehouse to the new "
        "region. The scheduler marks it as failed after about forty minutes.",
    ),
    (
        "assistant",
        "Forty minutes matches the default task timeout. Do the logs show the job still "
        "copying files when it stops, or is it waiting on a lock?",
    ),
    (
        "user",
        "It is still copying. The last lines say 'batch 212 of 480 uploaded' and then the "
        "worker receives SIGTERM. Before the move it finished in about twenty-five minutes.",
    ),
    (
        "assistant",
        "Then the copy got slower rather than stuck. Cross-region transfers add latency per "
        "request; with small files the per-request cost dominates. How large are the files?",
    ),
    (
        "user",
        "Mostly 200 to 400 KB parquet files, around 96,000 per night. We use the default "
        "uploader settings, nothing custom in ingest.yaml except the bucket name.",
    ),
    (
        "assistant",
        "Small files and default concurrency explain it. Check whether the uploader runs "
        "with upload.concurrency = 4, the default, and whether compaction is enabled.",
    ),
    (
        "user",
        "Concurrency is 4 and compaction is off. Can you give me the smallest change that "
        "gets us back under the timeout, and what to watch so we notice the next regression?",
    ),
]


def request_headers() -> dict[str, str]:
    """Provider headers, including a credential that both runtimes must strip from events."""
    return {
        "authorization": "Bearer sk-proj-4fT9qLm2Xc7VbN1rZs8KdW3yHj6PaE0uGi5OtRl",
        "content-type": "application/json",
        "openai-organization": "org-8Yq2LmTz4XcVb9Nk1RsD3WfH",
        "user-agent": "AsyncOpenAI/Python 3.0.0",
    }


def request_body() -> dict[str, Any]:
    """A Chat Completions body: model, nine messages, sampling parameters."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": _SYSTEM}]
    messages.extend({"role": role, "content": text} for role, text in _TURNS)
    messages.append(
        {
            "role": "user",
            "content": "Also, is there a way to get an alert before the scheduler kills it?",
        }
    )
    return {
        "model": MODEL,
        "messages": messages,
        "temperature": 0.2,
        "top_p": 1.0,
        "max_tokens": 1024,
        "user": "tenant-1729",
    }


_ANSWER = (
    "The smallest change is to raise the uploader's parallelism and let it batch small "
    "files, without touching the scheduler.\n\n"
    "1. In ingest.yaml set `upload.concurrency: 16`. Cross-region requests spend most of "
    "their time waiting on round trips, so more requests in flight recover most of the "
    "throughput you lost; the worker's CPU and memory barely change.\n"
    "2. Set `upload.multipart_threshold: 8MB` so that files below it go up as single "
    "requests instead of paying for the multipart handshake.\n"
    "3. If you can, enable `compaction.enabled: true` with `compaction.target_size: 128MB`. "
    "Fewer, larger files cut the request count by two orders of magnitude.\n\n"
    "With the first two changes alone, 96,000 files at roughly 120 ms per request and 16 "
    "requests in flight take about 12 minutes, comfortably under the 40-minute timeout.\n\n"
    "To notice the next regression early:\n"
    "- Export `ingest_batch_duration_seconds` and alert when the p95 of a night exceeds "
    "twice its 7-day median.\n"
    "- Add `scheduler.soft_timeout: 30m` to the task. The scheduler then emits a "
    "`task.soft_timeout` event ten minutes before the hard kill, which your alerting can "
    "route to the on-call channel.\n"
    "- Log the region of the bucket at job start, so a future move shows up in the first "
    "line of the log rather than in a timeout.\n\n"
    "Roll the change out on one night's run with the old timeout still in place; if the job "
    "finishes under 15 minutes, keep the settings and lower the timeout back to 30 minutes "
    "so that the soft timeout stays meaningful."
)

_USAGE = {
    "prompt_tokens": 412,
    "completion_tokens": 336,
    "total_tokens": 748,
    "prompt_tokens_details": {"cached_tokens": 256, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 64,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def response() -> dict[str, Any]:
    """A ``chat.completion`` with one choice (an assistant message of about 1.5 KB)."""
    return {
        "id": _ID,
        "object": "chat.completion",
        "created": _CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _ANSWER, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": json.loads(json.dumps(_USAGE)),
        "system_fingerprint": _FINGERPRINT,
        "service_tier": "default",
    }


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "system_fingerprint": _FINGERPRINT,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def chunks(count: int) -> list[dict[str, Any]]:
    """The response as ``count`` stream chunks, shaped like OpenAI's with ``include_usage``.

    ``count >= 4``: a role chunk, ``count - 3`` content deltas, a chunk carrying
    ``finish_reason`` and a final chunk with empty ``choices`` and the usage.
    ``count == 1``: one chunk carrying role, the whole text, finish reason and usage.
    Every stream folds back into the same final message.
    """
    if count == 1:
        only = _chunk({"role": "assistant", "content": _ANSWER}, "stop")
        only["usage"] = json.loads(json.dumps(_USAGE))
        return [only]
    if count < 4:
        raise ValueError("count: expected 1 or >= 4")
    pieces = count - 3
    size = -(-len(_ANSWER) // pieces)
    texts = [_ANSWER[i * size : (i + 1) * size] for i in range(pieces)]
    if len(texts) != pieces or not all(texts):
        raise ValueError(f"count: cannot split the answer into {pieces} non-empty pieces")
    out = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    out.extend(_chunk({"content": text}) for text in texts)
    out.append(_chunk({}, "stop"))
    usage_chunk = _chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = json.loads(json.dumps(_USAGE))
    out.append(usage_chunk)
    return out


def serialized_size(value: Any) -> int:
    """Bytes of compact JSON, the way the payload travels on the wire."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
