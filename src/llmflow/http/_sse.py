"""Server-sent events: split a byte stream into whole events, keeping each event's bytes.

The transports forward the provider's bytes unchanged, one whole event at a
time, and read each event's ``data`` for the codec; nothing is re-encoded
unless a stream intercept replaced the chunk.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

__all__ = ["SseSplitter", "encode_event", "one_event"]

_BOUNDARY: Final = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE: Final = re.compile(rb"\r\n|\n|\r")


class SseSplitter:
    """Feed bytes, get whole events as ``(raw_bytes, data)`` pairs.

    ``data`` is the event's joined ``data:`` lines as bytes, or ``None`` for
    an event without data (a comment, a keep-alive). Bytes after the last
    complete event wait for the next feed (in ``buffer``); :meth:`rest` returns
    them at the end.
    """

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes | None]]:
        if not self.buffer and chunk.startswith(b"data: ") and one_event(chunk):
            return [(chunk, chunk[6:-2])]  # one one-line event per chunk: how providers flush
        buffer = self.buffer + chunk if self.buffer else chunk
        events: list[tuple[bytes, bytes | None]] = []
        start = 0
        while (found := _BOUNDARY.search(buffer, start)) is not None:
            end = found.end()
            events.append((buffer[start:end], _data_of(buffer[start : found.start()])))
            start = end
        self.buffer = buffer[start:]
        return events

    def rest(self) -> bytes:
        """Bytes that never formed a complete event (a cut-off stream)."""
        rest, self.buffer = self.buffer, b""
        return rest


def one_event(chunk: bytes) -> bool:
    """Whether ``chunk`` (starting with a field) is exactly one one-line event ending ``\\n\\n``."""
    return (
        chunk.endswith(b"\n\n")
        and chunk.find(b"\n", 0, len(chunk) - 2) == -1
        and b"\r" not in chunk
    )


def _data_of(block: bytes) -> bytes | None:
    if block.startswith(b"data: ") and b"\n" not in block and b"\r" not in block:
        return block[6:]  # the common one-line event, without splitting
    data: list[bytes] = []
    for line in _LINE.split(block):
        if line.startswith(b"data"):
            value = line[5:] if line[4:5] == b":" else None
            if value is None and line != b"data":
                continue  # a field named e.g. "database", not "data"
            value = value or b""
            data.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(data) if data else None


def encode_event(chunk: Any, named: bool) -> bytes:
    """One SSE frame for a chunk a stream intercept produced (not the provider's bytes)."""
    data = orjson.dumps(chunk)
    kind = chunk.get("type") if named and isinstance(chunk, dict) else None
    if isinstance(kind, str):
        return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
