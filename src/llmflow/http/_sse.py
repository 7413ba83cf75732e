"""Server-sent events: split a byte stream into whole events, keeping each event's bytes.

The transports forward the provider's bytes unchanged, whole events at a
time, and read each event's ``data`` for the codec; nothing is re-encoded
unless a stream intercept replaced the chunk.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

__all__ = ["SseSplitter", "encode_event"]

_BOUNDARY: Final = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE: Final = re.compile(rb"\r\n|\n|\r")


class SseSplitter:
    """Feed bytes, get whole events as ``(raw_bytes, data)`` pairs.

    ``data`` is the event's joined ``data:`` lines as bytes, or ``None`` for
    an event without data (a comment, a keep-alive). An event ends at the
    first ``\\r\\n\\r\\n``, ``\\n\\n`` or ``\\r\\r``. Bytes after the last
    complete event wait for the next feed (in ``buffer``); :meth:`rest`
    returns them at the end.
    """

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes | None]]:
        buffer = self.buffer + chunk if self.buffer else chunk
        events: list[tuple[bytes, bytes | None]] = []
        start = 0
        if b"\r" in buffer:
            while (found := _BOUNDARY.search(buffer, start)) is not None:
                end = found.end()
                events.append((buffer[start:end], _data_of(buffer[start : found.start()])))
                start = end
        else:  # the usual "\n" line ends: the only boundary is "\n\n"; no regex
            find = buffer.find
            while (end := find(b"\n\n", start)) != -1:
                block = buffer[start:end]
                events.append((buffer[start : end + 2], _lf_data_of(block)))
                start = end + 2
        self.buffer = buffer[start:]
        return events

    def rest(self) -> bytes:
        """Bytes that never formed a complete event (a cut-off stream)."""
        rest, self.buffer = self.buffer, b""
        return rest


def _lf_data_of(block: bytes) -> bytes | None:
    """:func:`_data_of` of a block without ``\\r``, reading the two usual shapes directly."""
    if block.startswith(b"data: "):
        if b"\n" not in block:
            return block[6:]  # one data line
    elif block.startswith(b"event: "):
        line = block.find(b"\n") + 1  # an event line, then one data line (named events)
        if line and block.startswith(b"data: ", line) and block.find(b"\n", line) == -1:
            return block[line + 6 :]
    return _data_of(block)


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
