"""``llmflow show``: an ATOF log as a call tree with latency, model, tokens, cost, errors.

One line per span or mark, e.g.::

    agent trip-planner  Σ 2 llm  1 tool  tokens 254→57  $0.000067              20.4 ms
    ├─ mark user_input  role='user'
    ├─ llm openai.chat  [gpt-4o-mini]  tokens 96→36  $0.000036                 2.4 ms
    ├─ tool get_weather  (call_weather_1)                                      0.4 ms
    └─ llm openai.chat  [gpt-4o-mini]  tokens 158→21  $0.000031  2 attempts   9.1 ms

A scope that contains LLM calls shows their totals (``Σ``). Filters keep the
matching nodes with the path that leads to them. Bad lines are warnings;
a missing file is a one-line error with exit code 2.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from llmflow.atof import Mark, Node, ProblemHandler, Span, build_forest, iter_records

from ._format import cost, duration
from ._input import EXIT_OK, EXIT_UNREADABLE, LogInput, UnreadableInput, check_readable

__all__ = ["ShowFilter", "Totals", "register", "render_forest", "render_tree", "run"]

_WIDTH = 78


@dataclass(frozen=True, slots=True)
class ShowFilter:
    """Which nodes ``show`` keeps (all when every field is unset).

    ``name`` is a glob on span/mark names, ``category`` an ATOF category,
    ``trace`` a prefix of a top-level uuid or a glob on its name, ``errors``
    keeps failed spans and guardrail rejections only.
    """

    name: str | None = None
    category: str | None = None
    trace: str | None = None
    errors: bool = False

    @property
    def active(self) -> bool:
        """Whether any node-level filter is set."""
        return bool(self.name or self.category or self.errors)

    def keeps_trace(self, root: Node) -> bool:
        """Whether the ``trace`` filter selects this top-level node."""
        return self.trace is None or (
            root.uuid.startswith(self.trace) or fnmatch.fnmatchcase(root.name, self.trace)
        )

    def matches(self, node: Node) -> bool:
        """Whether a node itself passes the node-level filters."""
        if self.name is not None and not fnmatch.fnmatchcase(node.name, self.name):
            return False
        if self.category is not None and node.category != self.category:
            return False
        if self.errors:
            if isinstance(node, Span):
                return node.failed
            return node.name == "llmflow.guardrail_rejected"
        return True


@dataclass(slots=True)
class Totals:
    """Sums over the spans under a scope (the scope itself included)."""

    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    errors: int = 0
    rejected: int = 0

    def add(self, span: Span) -> None:
        """Count one span."""
        facts = span.facts
        if span.category == "llm":
            self.llm_calls += 1
        elif span.category == "tool":
            self.tool_calls += 1
        if facts is not None:
            self.input_tokens += facts.input_tokens or 0
            self.output_tokens += facts.output_tokens or 0
            if facts.cost_usd is not None:
                self.cost_usd = (self.cost_usd or 0.0) + facts.cost_usd
            self.errors += facts.error_type is not None
        self.rejected += span.rejected

    def describe(self) -> str:
        """``6 llm  tokens 97→60  $0.0012  1 error  1 rejected`` (zero parts left out)."""
        parts = [f"{self.llm_calls} llm"]
        if self.tool_calls:
            parts.append(f"{self.tool_calls} tool")
        if self.input_tokens or self.output_tokens:
            parts.append(f"tokens {self.input_tokens:,}→{self.output_tokens:,}")
        if self.cost_usd is not None:
            parts.append(cost(self.cost_usd))
        if self.errors:
            parts.append(f"{self.errors} error" + ("s" if self.errors > 1 else ""))
        if self.rejected:
            parts.append(f"{self.rejected} rejected")
        return "  ".join(parts)


def _totals(span: Span) -> Totals:
    totals = Totals()
    stack: list[Node] = [span]
    while stack:
        node = stack.pop()
        if isinstance(node, Span):
            totals.add(node)
            stack.extend(node.children)
    return totals


def _span_facts(span: Span) -> list[str]:
    parts: list[str] = []
    facts = span.facts
    if facts is not None:
        if facts.model:
            parts.append(f"[{facts.model}]")
        if facts.tool_call_id:
            parts.append(f"({facts.tool_call_id})")
    if span.attributes:
        parts.append("{" + ",".join(span.attributes) + "}")
    if facts is not None:
        if facts.input_tokens is not None or facts.output_tokens is not None:
            parts.append(f"tokens {facts.input_tokens or 0:,}→{facts.output_tokens or 0:,}")
        if facts.cost_usd is not None:
            parts.append(cost(facts.cost_usd))
        if facts.cache_hit:
            parts.append("cache hit")
        if facts.retry_attempts is not None and facts.retry_attempts > 1:
            parts.append(f"{facts.retry_attempts} attempts")
        if facts.status_code is not None and facts.status_code >= 400:
            parts.append(f"HTTP {facts.status_code}")
    if span.category != "llm" and any(isinstance(c, Span) for c in span.children):
        totals = _totals(span)
        if totals.llm_calls:
            parts.append(f"Σ {totals.describe()}")
    if span.rejected:
        parts.append("REJECTED")
    if span.error:
        parts.append(f"!! {span.error[:100]}")
    return parts


def _short(value: object) -> str:
    # A retry's jittered delay is a float with 17 digits; four say enough.
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _mark_facts(mark: Mark) -> list[str]:
    data = mark.event.get("data") if mark.event is not None else None
    if isinstance(data, dict):
        preview = ", ".join(f"{k}={_short(v)}" for k, v in list(data.items())[:3])
        return [preview if len(preview) <= 80 else preview[:79] + "…"]
    return []


def render_forest(roots: Iterable[Node], filters: ShowFilter | None = None) -> list[str]:
    """The tree lines of already-built nodes (see :func:`llmflow.atof.build_forest`)."""
    chosen = filters or ShowFilter()
    lines: list[str] = []
    decided: dict[int, bool] = {}  # by id(): each subtree is judged once

    def kept(node: Node) -> bool:
        if not chosen.active:
            return True
        verdict = decided.get(id(node))
        if verdict is None:
            verdict = chosen.matches(node) or (
                isinstance(node, Span) and any(kept(child) for child in node.children)
            )
            decided[id(node)] = verdict
        return verdict

    def walk(node: Node, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        if isinstance(node, Mark):
            label, facts, timing = f"mark {node.name}", _mark_facts(node), ""
        else:
            label = f"{node.category or 'scope'} {node.name}"
            facts = _span_facts(node)
            timing = "(open)" if node.is_open else duration(node.duration_us)
        text = f"{prefix}{branch}{label}" + ("  " + "  ".join(facts) if facts else "")
        lines.append(f"{text:<{_WIDTH}} {timing}".rstrip())
        if isinstance(node, Span):
            children = [child for child in node.children if kept(child)]
            extension = "" if root else ("   " if last else "│  ")
            for index, child in enumerate(children):
                walk(child, prefix + extension, index == len(children) - 1, False)

    for root in roots:
        if chosen.keeps_trace(root) and kept(root):
            walk(root, "", True, True)
    return lines


def render_tree(
    source: str | os.PathLike[str] | Iterable[Node],
    filters: ShowFilter | None = None,
    *,
    on_problem: ProblemHandler | None = None,
) -> str:
    """Render a log (a path, or nodes from ``build_forest``) as an indented call tree.

    Spans without an end are shown as ``(open)``; nodes whose parent is not in
    the log are shown as top-level. Bad lines go to ``on_problem`` (skipped
    silently without one). Raises ``OSError`` for a file that cannot be read.
    """
    if isinstance(source, (str, os.PathLike)):
        roots: Iterable[Node] = build_forest(iter_records(source, on_problem))
    else:
        roots = source
    return "\n".join(render_forest(roots, filters))


def _summary(roots: list[Node], filters: ShowFilter) -> str:
    totals = Totals()
    traces = spans = 0
    for root in roots:
        if not filters.keeps_trace(root):
            continue
        traces += 1
        stack: list[Node] = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, Span):
                spans += 1
                totals.add(node)
                stack.extend(node.children)
    return f"{traces} trace(s), {spans} span(s): {totals.describe()}"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow show`` to its parser."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="ATOF JSONL file(s), .gz, or -")
    parser.add_argument("--name", help="keep spans/marks whose name matches this glob")
    parser.add_argument("--category", help="keep nodes of this ATOF category (llm, tool, ...)")
    parser.add_argument("--trace", help="keep the trace whose top-level uuid starts with this")
    parser.add_argument("--errors", action="store_true", help="keep failed spans and rejections")


def run(args: argparse.Namespace) -> int:
    """Run ``show``; returns the exit code."""
    error = check_readable(args.paths, "show")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    filters = ShowFilter(args.name, args.category, args.trace, args.errors)
    logs = LogInput(args.paths, command="show")
    try:
        roots = build_forest(record for _, record in logs.all_records())
    except UnreadableInput as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    lines = render_forest(roots, filters)
    if lines:
        print("\n".join(lines))
        print()
    print(_summary(roots, filters))
    logs.finish()
    return EXIT_OK
