"""ATIF: an ATOF log as an Agent Trajectory Interchange Format document (``ATIF-v1.7``).

:func:`to_atif` turns the events of one run into the trajectory that
agent-evaluation pipelines read (the models of ``nvidia-nat-atif``). It reads
every LLM call through its codec annotation (OpenAI Chat Completions, OpenAI
Responses and Anthropic Messages, decoding the recorded payload when the log
has no annotation) and every number through :func:`llmflow.atof.span_facts`.
``docs/exporters.md`` describes the mapping.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmflow._clock import format_rfc3339, parse_timestamp
from llmflow.atof import SpanFacts, span_facts
from llmflow.atof._wire import EventSource, wire_events, with_annotations

__all__ = ["ATIF_VERSION", "to_atif"]

ATIF_VERSION = "ATIF-v1.7"
_STEP_SOURCES = ("user", "system", "agent")
_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


@dataclass(slots=True)
class _Node:
    """One span (start/end pair) or mark of the log, with its children in time order."""

    start: Mapping[str, Any]
    end: Mapping[str, Any] | None = None
    children: list[_Node] = field(default_factory=list)

    @property
    def category(self) -> str | None:
        value = self.start.get("category")
        return value if isinstance(value, str) else None

    @property
    def is_mark(self) -> bool:
        return self.start.get("kind") == "mark"

    @property
    def uuid(self) -> str:
        return str(self.start["uuid"])

    @property
    def name(self) -> str:
        return str(self.start.get("name"))


def _tree(events: list[dict[str, Any]]) -> list[_Node]:
    """Join starts and ends, hang every node under its parent; return the top level."""
    nodes: dict[str, _Node] = {}
    order: list[_Node] = []
    for event in events:
        phase = event.get("scope_category")
        if event.get("kind") == "mark" or phase is None:
            order.append(_Node(event))
        elif phase == "start":
            node = nodes[str(event["uuid"])] = _Node(event)
            order.append(node)
        else:
            opened = nodes.get(str(event.get("uuid")))
            if opened is not None and opened.end is None:
                opened.end = event
    roots: list[_Node] = []
    for node in order:
        parent_uuid = node.start.get("parent_uuid")
        parent = nodes.get(parent_uuid) if isinstance(parent_uuid, str) else None
        (parent.children if parent is not None and parent is not node else roots).append(node)
    return roots


def _text(value: object) -> str:
    """A payload as step text: strings as they are, a one-string dict lifted, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        (only,) = value.values()
        if isinstance(only, str):
            return only
    return orjson.dumps(value, default=str).decode()


def _message(parts: object) -> str | list[dict[str, Any]]:
    """Annotated content parts as an ATIF message: text, or parts when images are present."""
    texts: list[str] = []
    content: list[dict[str, Any]] = []
    for part in parts if isinstance(parts, list) else ():
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(part["text"])
            content.append({"type": "text", "text": part["text"]})
        elif kind == "image":
            media_type = part.get("media_type") or "image/png"
            path = part.get("url") or part.get("file_id")
            if part.get("data") is not None:
                path = f"data:{media_type};base64,{part['data']}"
            if path and media_type in _IMAGE_TYPES:
                content.append(
                    {"type": "image", "source": {"media_type": media_type, "path": path}}
                )
    if any(item["type"] == "image" for item in content):
        return content
    return "".join(texts)


def _reasoning(parts: object) -> str | None:
    texts = [
        part.get("text") or ""
        for part in (parts if isinstance(parts, list) else ())
        if isinstance(part, Mapping) and part.get("type") == "reasoning"
    ]
    return "\n".join(texts) if any(texts) else None


def _arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    arguments = call.get("arguments")
    if isinstance(arguments, dict):
        return arguments
    if arguments is None and isinstance(call.get("raw_arguments"), str):
        return {"raw_arguments": call["raw_arguments"]}
    return {} if arguments is None else {"value": arguments}


def _timestamp(event: Mapping[str, Any] | None) -> str | None:
    return None if event is None else format_rfc3339(parse_timestamp(event["timestamp"]))


def _seconds(event: Mapping[str, Any]) -> float:
    return parse_timestamp(event["timestamp"]) / 1_000_000


@dataclass(slots=True)
class _Totals:
    prompt: int = 0
    completion: int = 0
    cached: int = 0
    reasoning: int = 0
    cost: float = 0.0
    llm_calls: int = 0
    tool_calls: int = 0
    errors: int = 0

    def add(self, other: _Totals) -> None:
        self.prompt += other.prompt
        self.completion += other.completion
        self.cached += other.cached
        self.reasoning += other.reasoning
        self.cost += other.cost
        self.llm_calls += other.llm_calls
        self.tool_calls += other.tool_calls
        self.errors += other.errors


class _Trajectory:
    """Builds the steps of one agent (the root, or a sub-agent embedded in its parent)."""

    def __init__(
        self, root: _Node | None, children: list[_Node], session_id: str | None = None
    ) -> None:
        self.root = root
        self.children = children
        metadata = (root.start.get("metadata") if root is not None else None) or {}
        session = metadata.get("session_id") or session_id
        self.session_id = session if isinstance(session, str) else None
        if self.session_id is None and root is not None:
            self.session_id = root.uuid
        self.steps: list[dict[str, Any]] = []
        self.subagents: list[dict[str, Any]] = []
        self.totals = _Totals()
        self.models: Counter[str] = Counter()
        self.tools: dict[str, dict[str, Any]] = {}
        self.seen_inputs: set[tuple[str, str]] = set()
        self.calls: dict[str, dict[str, Any]] = {}  # tool_call_id -> the agent step that made it

    def build(self) -> dict[str, Any]:
        root = self.root
        if root is not None and root.start.get("data") is not None:
            message = _text(root.start.get("data"))
            self._step("user", message, root.start, extra=self._ancestry(root))
            self.seen_inputs.add(("user", message))
        self._walk(self.children)
        if root is not None and root.end is not None and root.end.get("data") is not None:
            self._final_answer(root)
        return self._document()

    # -- walking the tree -----------------------------------------------------------------

    def _walk(self, nodes: list[_Node]) -> None:
        for node in nodes:
            if node.is_mark:
                self._mark(node)
            elif node.category == "agent":
                self._subagent(node)
            elif node.category == "llm":
                self._llm(node)
            elif node.category == "embedder":
                continue  # an embedding is no step of the conversation
            elif node.category == "tool":
                self._tool(node)
            else:
                self._walk(node.children)  # function, guardrail, custom ...: transparent

    def _step(
        self,
        source: str,
        message: str | list[dict[str, Any]],
        event: Mapping[str, Any] | None,
        **fields: Any,
    ) -> dict[str, Any]:
        step: dict[str, Any] = {
            "step_id": len(self.steps) + 1,
            "source": source,
            "message": message,
        }
        timestamp = _timestamp(event)
        if timestamp is not None:
            step["timestamp"] = timestamp
        step.update({key: value for key, value in fields.items() if value is not None})
        self.steps.append(step)
        return step

    def _ancestry(self, node: _Node, *, tool_call_id: str | None = None) -> dict[str, Any]:
        parent_uuid = node.start.get("parent_uuid")
        ancestry: dict[str, Any] = {"function_id": node.uuid, "function_name": node.name}
        if isinstance(parent_uuid, str):
            ancestry["parent_id"] = parent_uuid
        extra: dict[str, Any] = {"ancestry": ancestry}
        if node.end is not None:
            facts = span_facts(node.start, node.end)
            invocation: dict[str, Any] = {
                "start_timestamp": _seconds(node.start),
                "end_timestamp": _seconds(node.end),
                "invocation_id": tool_call_id or node.uuid,
                "status": "completed" if facts.ok else "error",
                "framework": "llmflow",
            }
            extra["invocation"] = invocation
            if not facts.ok:
                extra["error"] = {"type": facts.error_type, "message": facts.error_message}
        return extra

    def _inputs(self, request: Mapping[str, Any], start: Mapping[str, Any]) -> None:
        """New system and user messages of a call's input become system/user steps."""
        system = _message(request.get("system"))
        candidates: list[tuple[str, str | list[dict[str, Any]]]] = []
        if system:
            candidates.append(("system", system))
        for message in request.get("messages") or ():
            role = message.get("role")
            if role in ("system", "user"):
                text = _message(message.get("content"))
                if text:  # a user message holding only tool results has no text
                    candidates.append((role, text))
        for source, text in candidates:
            key = (source, text if isinstance(text, str) else orjson.dumps(text).decode())
            if key not in self.seen_inputs:
                self.seen_inputs.add(key)
                self._step(source, text, start)

    def _llm(self, node: _Node) -> None:
        start, end = with_annotations(node.start, node.end)
        request = (start.get("category_profile") or {}).get("annotated_request")
        response = ((end or {}).get("category_profile") or {}).get("annotated_response")
        if isinstance(request, Mapping):
            self._inputs(request, start)
            for tool in request.get("tools") or ():
                if tool.get("type", "function") == "function" and tool.get("name"):
                    self.tools.setdefault(tool["name"], tool)
        facts = span_facts(start, end)
        self.totals.llm_calls += 1
        self.totals.errors += 0 if facts.ok else 1
        if facts.model:
            self.models[facts.model] += 1
        messages = response.get("messages") if isinstance(response, Mapping) else None
        parts = [part for m in messages or () for part in m.get("content") or ()]
        tool_calls: list[dict[str, Any]] = []
        for call in (response or {}).get("tool_calls") or ():
            call_id = call.get("id") or f"{node.uuid}:{len(tool_calls)}"
            tool_calls.append(
                {
                    "tool_call_id": call_id,
                    "function_name": call.get("name") or "",
                    "arguments": _arguments(call),
                }
            )
        step = self._step(
            "agent",
            _message(parts),
            end or start,
            model_name=facts.model,
            reasoning_content=_reasoning(parts),
            tool_calls=tool_calls or None,
            metrics=self._metrics(facts),
            llm_call_count=1,
            extra=self._ancestry(node),
        )
        for made in tool_calls:
            self.calls[made["tool_call_id"]] = step

    def _metrics(self, facts: SpanFacts) -> dict[str, Any] | None:
        metrics: dict[str, Any] = {}
        for key, value in (
            ("prompt_tokens", facts.input_tokens),
            ("completion_tokens", facts.output_tokens),
            ("cached_tokens", facts.cached_tokens),
            ("cost_usd", facts.cost_usd),
        ):
            if value is not None:
                metrics[key] = value
        extra = {}
        if facts.reasoning_tokens is not None:
            extra["reasoning_tokens"] = facts.reasoning_tokens
        if facts.duration_us is not None:
            extra["duration_us"] = facts.duration_us
        if extra:
            metrics["extra"] = extra
        totals = self.totals
        totals.prompt += facts.input_tokens or 0
        totals.completion += facts.output_tokens or 0
        totals.cached += facts.cached_tokens or 0
        totals.reasoning += facts.reasoning_tokens or 0
        totals.cost += facts.cost_usd or 0.0
        return metrics or None

    def _tool(self, node: _Node) -> None:
        facts = span_facts(node.start, node.end)
        self.totals.tool_calls += 1
        self.totals.errors += 0 if facts.ok else 1
        call_id = facts.tool_call_id
        step = self.calls.get(call_id) if call_id is not None else None
        if step is None:
            # No model asked for this call (or it has no id): a deterministic dispatch,
            # shown as an agent step with no LLM call that makes the call itself.
            call_id = call_id or node.uuid
            call = {
                "tool_call_id": call_id,
                "function_name": node.name,
                "arguments": _arguments({"arguments": node.start.get("data")}),
            }
            step = self._step("agent", "", node.start, tool_calls=[call], llm_call_count=0)
            self.calls[call_id] = step
        for call in step.get("tool_calls") or ():
            if call["tool_call_id"] == call_id:
                call["extra"] = self._ancestry(node, tool_call_id=call_id)
        result: dict[str, Any] = {"source_call_id": call_id}
        if node.end is not None:
            result["content"] = _text(node.end.get("data"))
        if not facts.ok:
            # The model saw the failure, not a result: say what it was.
            result["extra"] = {"error": {"type": facts.error_type, "message": facts.error_message}}
            if node.end is not None and node.end.get("data") is None:
                result["content"] = f"{facts.error_type}: {facts.error_message}"
        refs = [self._embed(child)[0] for child in _agents_below(node)]
        if refs:
            result["subagent_trajectory_ref"] = refs
        step.setdefault("observation", {"results": []})["results"].append(result)
        self._walk([c for c in node.children if c.category != "agent" and not _has_agent(c)])

    def _subagent(self, node: _Node) -> None:
        """A nested agent: an embedded trajectory, called from an agent step of this one."""
        reference, answer = self._embed(node)
        call = {
            "tool_call_id": node.uuid,
            "function_name": node.name,
            "arguments": _arguments({"arguments": node.start.get("data")}),
        }
        result: dict[str, Any] = {
            "source_call_id": node.uuid,
            "subagent_trajectory_ref": [reference],
        }
        if answer is not None:
            result["content"] = answer
        step = self._step(
            "agent",
            "",
            node.start,
            tool_calls=[call],
            llm_call_count=0,
            observation={"results": [result]},
            extra=self._ancestry(node),
        )
        self.calls[node.uuid] = step

    def _embed(self, node: _Node) -> tuple[dict[str, Any], str | None]:
        """Build ``node``'s trajectory into ``subagent_trajectories``; return its ref and answer."""
        child = _Trajectory(node, node.children, self.session_id)
        document = child.build()
        self.subagents.append(document)
        self.totals.add(child.totals)
        for name, tool in child.tools.items():
            self.tools.setdefault(name, tool)
        answer = next(
            (
                step["message"]
                for step in reversed(document["steps"])
                if step["source"] == "agent"
                and isinstance(step["message"], str)
                and step["message"]
            ),
            None,
        )
        return {"trajectory_id": node.uuid}, answer

    def _mark(self, node: _Node) -> None:
        data = node.start.get("data")
        if isinstance(data, Mapping) and data.get("role") in _STEP_SOURCES:
            content = data.get("content", data.get("message"))
            self._step(str(data["role"]), _text(content), node.start)
            return
        extra = {"mark": {"name": node.name, "uuid": node.uuid}}
        if data is not None:
            extra["mark"]["data"] = data
        self._step("system", node.name, node.start, extra=extra)

    def _final_answer(self, root: _Node) -> None:
        assert root.end is not None
        answer = _text(root.end.get("data"))
        last_agent = next((s for s in reversed(self.steps) if s["source"] == "agent"), None)
        if last_agent is not None and last_agent["message"] == answer:
            return
        self._step("agent", answer, root.end, llm_call_count=0, extra=self._ancestry(root))

    # -- the document ------------------------------------------------------------------------

    def _document(self) -> dict[str, Any]:
        root = self.root
        metadata = (root.start.get("metadata") if root is not None else None) or {}
        version = metadata.get("agent.version", metadata.get("version"))
        agent: dict[str, Any] = {
            "name": root.name if root is not None else "llmflow",
            "version": version if isinstance(version, str) else "unknown",
        }
        if self.models:
            agent["model_name"] = self.models.most_common(1)[0][0]
        if self.tools:
            agent["tool_definitions"] = [
                {
                    "type": "function",
                    "function": {
                        key: tool[key]
                        for key in ("name", "description", "parameters")
                        if tool.get(key) is not None
                    },
                }
                for tool in self.tools.values()
            ]
        totals = self.totals
        final: dict[str, Any] = {
            "total_prompt_tokens": totals.prompt,
            "total_completion_tokens": totals.completion,
            "total_cached_tokens": totals.cached,
            "total_cost_usd": round(totals.cost, 12),
            "total_steps": len(self.steps),
            "extra": {
                "total_reasoning_tokens": totals.reasoning,
                "llm_calls": totals.llm_calls,
                "tool_calls": totals.tool_calls,
                "errors": totals.errors,
            },
        }
        document: dict[str, Any] = {"schema_version": ATIF_VERSION}
        if self.session_id is not None:
            document["session_id"] = self.session_id
        if root is not None:
            document["trajectory_id"] = root.uuid
        document.update({"agent": agent, "steps": self.steps, "final_metrics": final})
        if self.subagents:
            document["subagent_trajectories"] = self.subagents
        return document


def _has_agent(node: _Node) -> bool:
    return any(child.category == "agent" or _has_agent(child) for child in node.children)


def _agents_below(node: _Node) -> list[_Node]:
    """The outermost agent scopes under ``node`` (through function/custom scopes)."""
    found: list[_Node] = []
    for child in node.children:
        if child.category == "agent":
            found.append(child)
        elif not child.is_mark:
            found.extend(_agents_below(child))
    return found


def to_atif(events: EventSource) -> dict[str, Any]:
    """Convert one run's ATOF events into an ATIF-v1.7 trajectory (a JSON-ready dict).

    ``events``: a JSONL path, or an iterable of :class:`llmflow.Event` objects or
    ATOF dicts. A single top-level scope (usually the agent) is the trajectory's
    agent; its start data is the first user step and its end data the final
    agent message. Each LLM call is an agent step with its tool calls, reasoning
    and per-step ``metrics`` (prompt tokens including cached ones, completion
    tokens, cached tokens, cost); each tool span is an observation on the step
    whose tool call has its ``tool_call_id``; a nested agent scope is an embedded
    sub-agent trajectory. Token and cost totals in ``final_metrics`` include the
    sub-agents. Raises :class:`~llmflow.AtofParseError` for a malformed line and
    ``TypeError`` for input that is not events.
    """
    roots = _tree(wire_events(events))
    spans = [node for node in roots if not node.is_mark]
    if len(spans) == 1 and spans[0].category not in ("llm", "tool", "embedder"):
        (root,) = spans
        children = [*[node for node in roots if node.is_mark], *root.children]
        children.sort(key=lambda node: parse_timestamp(node.start["timestamp"]))
        return _Trajectory(root, children).build()
    return _Trajectory(None, roots).build()
