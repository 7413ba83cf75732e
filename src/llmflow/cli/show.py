"""Human-readable views of an ATOF log: a call tree with timings and key facts.

``render_tree(events)`` pairs starts with ends, nests spans under their
parents and prints one line per span or mark, e.g.::

    agent trip-planner                                   12.4 ms
    ├─ llm openai.chat [gpt-4o-mini]  tokens 42→17  tool_calls  3.1 ms
    │  └─ tool get_weather (call_1)                       0.4 ms
    └─ mark user_input

Used by ``python -m llmflow show PATH`` and by the demo.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmflow.atof import MarkEvent, ScopeEvent, read_events

__all__ = ["render_tree"]


@dataclass
class _Node:
    kind: str
    name: str
    category: str | None
    start_us: int
    end_us: int | None = None
    start: ScopeEvent | MarkEvent | None = None
    end: ScopeEvent | None = None
    children: list[_Node] = field(default_factory=list)


def _facts(node: _Node) -> str:
    parts: list[str] = []
    profile = {
        **((node.start and node.start.category_profile) or {}),
        **((node.end and node.end.category_profile) or {}),
    }
    if profile.get("model_name"):
        parts.append(f"[{profile['model_name']}]")
    if profile.get("tool_call_id"):
        parts.append(f"({profile['tool_call_id']})")
    if node.start is not None and isinstance(node.start, ScopeEvent) and node.start.attributes:
        parts.append("{" + ",".join(node.start.attributes) + "}")
    annotated: Any = profile.get("annotated_response") or {}
    usage = annotated.get("usage") or {}
    if usage.get("input_tokens") is not None:
        parts.append(f"tokens {usage.get('input_tokens')}→{usage.get('output_tokens')}")
    if annotated.get("finish_reason"):
        parts.append(str(annotated["finish_reason"]))
    metadata = (node.end.metadata if node.end else None) or {}
    if "exception.type" in metadata:
        parts.append(f"!! {metadata['exception.type']}: {metadata.get('exception.message', '')}")
    if metadata.get("stream.closed_early"):
        parts.append("closed early")
    if node.kind == "mark" and node.start is not None and isinstance(node.start.data, dict):
        preview = ", ".join(f"{k}={v!r}" for k, v in list(node.start.data.items())[:3])
        parts.append(preview[:80])
    return "  ".join(parts)


def render_tree(source: str | os.PathLike[str] | Iterable[ScopeEvent | MarkEvent]) -> str:
    """Render an ATOF stream (path or parsed events) as an indented call tree.

    Spans whose end is missing are shown as ``(open)``; events whose parent is
    not in the stream are shown as roots.
    """
    events = list(read_events(source)) if isinstance(source, (str, os.PathLike)) else list(source)
    nodes: dict[str, _Node] = {}
    order: list[tuple[str | None, _Node]] = []
    for event in events:
        if isinstance(event, ScopeEvent) and event.scope_category == "end":
            node = nodes.get(event.uuid)
            if node is not None:
                node.end, node.end_us = event, event.timestamp_us
            continue
        node = _Node(event.kind, event.name, event.category, event.timestamp_us, start=event)
        if isinstance(event, ScopeEvent):
            nodes[event.uuid] = node
        order.append((event.parent_uuid, node))
    roots: list[_Node] = []
    for parent, node in order:
        owner = nodes.get(parent) if parent else None
        (owner.children if owner is not None else roots).append(node)
    lines: list[str] = []

    def walk(node: _Node, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        label = f"{node.category or node.kind} {node.name}"
        if node.kind == "mark":
            label = f"mark {node.name}"
        facts = _facts(node)
        timing = ""
        if node.kind == "scope":
            timing = "(open)" if node.end_us is None else _duration(node.end_us - node.start_us)
        text = f"{prefix}{branch}{label}" + (f"  {facts}" if facts else "")
        lines.append(f"{text:<78} {timing}".rstrip())
        children = sorted(node.children, key=lambda n: n.start_us)
        extension = "" if root else ("   " if last else "│  ")
        for index, child in enumerate(children):
            walk(child, prefix + extension, index == len(children) - 1, False)

    for root in sorted(roots, key=lambda n: n.start_us):
        walk(root, "", True, True)
    return "\n".join(lines)


def _duration(us: int) -> str:
    if us < 1_000:
        return f"{us} µs"
    if us < 1_000_000:
        return f"{us / 1_000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"
