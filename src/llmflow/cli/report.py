"""``llmflow report -o report.html``: one self-contained HTML page of a log.

The page needs no network and no server: CSS, JavaScript, data and the SVG
charts are inline. It holds a summary, latency and token charts per model, a
table per model, and a waterfall per embedded trace (nested spans on their own
rows, parallel work side by side, errors and guardrail rejections
highlighted); a click on a span shows its request, response, tokens and cost.

Caps keep a huge log usable: two passes over the file, the first streaming
(summaries and per-model aggregates, constant memory), the second keeping the
events of the chosen traces only: the ``--slowest`` slowest and up to
``--failed`` failed traces, at most ``--max-spans`` rows per trace and
``--max-payload`` bytes per request/response. The page says what was left out.
Stdin is spooled to a temporary file for the second pass.
"""

from __future__ import annotations

import argparse
import heapq
import html
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import orjson

from llmflow.atof import Mark, Node, Span, SpanJoiner, build_forest, iter_records

from ._format import cost, duration
from ._input import EXIT_OK, EXIT_UNREADABLE, LogInput, UnreadableInput, check_readable
from .stats import Group, percentile

__all__ = ["ReportLimits", "TraceSummary", "build_report", "register", "run"]

_SAMPLE: Final = 100_000
_HISTOGRAM_MIN: Final = 5
_CATEGORY_COLORS: Final = {
    "llm": "#3b6fd8",
    "tool": "#2e9e6a",
    "agent": "#7a5cc7",
    "function": "#8a96a8",
    "guardrail": "#c9962b",
    "retriever": "#2aa3b3",
}


@dataclass(frozen=True, slots=True)
class ReportLimits:
    """What the page embeds in full (see the module docstring)."""

    slowest: int = 20
    failed: int = 20
    max_spans: int = 500
    max_payload: int = 16_384


@dataclass(slots=True)
class TraceSummary:
    """Running totals of one trace (a top-level scope), filled as its spans end."""

    uuid: str
    name: str
    start_us: int
    duration_us: int | None = None
    spans: int = 0
    llm_calls: int = 0
    errors: int = 0
    rejected: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None

    def add(self, span: Span) -> None:
        """Count one ended span of this trace."""
        facts = span.facts
        self.spans += 1
        self.llm_calls += span.category == "llm"
        self.rejected += span.rejected
        if facts is not None:
            self.errors += facts.error_type is not None
            self.input_tokens += facts.input_tokens or 0
            self.output_tokens += facts.output_tokens or 0
            if facts.cost_usd is not None:
                self.cost_usd = (self.cost_usd or 0.0) + facts.cost_usd

    @property
    def failed(self) -> bool:
        """Whether any span of the trace failed or was rejected."""
        return bool(self.errors or self.rejected)


@dataclass(slots=True)
class _FirstPass:
    traces: int = 0
    spans: int = 0
    marks: int = 0
    open_spans: int = 0
    failed_traces: int = 0
    start_us: int | None = None
    end_us: int | None = None
    totals: TraceSummary = field(default_factory=lambda: TraceSummary("", "all", 0))
    models: dict[str, Group] = field(default_factory=dict)
    slowest: list[tuple[int, int, TraceSummary]] = field(default_factory=list)
    failed: list[TraceSummary] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)


def _first_pass(logs: LogInput, path: str, limits: ReportLimits) -> _FirstPass:
    """Stream the log once: totals, per-model groups, the slowest and failed traces."""
    result = _FirstPass()
    running: dict[str, TraceSummary] = {}
    joiner = SpanJoiner(on_problem=logs.report, source=path)
    sequence = 0
    # Trace durations for the histogram: a uniform sample (reservoir) of at most
    # _SAMPLE values keeps memory flat whatever the number of traces.
    reservoir = result.durations
    sampler = random.Random(0)
    for record in logs.records(path):
        timestamp_us = record[1]
        if result.start_us is None or timestamp_us < result.start_us:
            result.start_us = timestamp_us
        if result.end_us is None or timestamp_us > result.end_us:
            result.end_us = timestamp_us
        node = joiner.add(record)
        if node is None:
            continue
        if isinstance(node, Mark):
            result.marks += 1
            continue
        result.spans += 1
        result.totals.add(node)
        summary = running.get(node.trace)
        if summary is None:
            root = node if node.uuid == node.trace else joiner.open_span(node.trace)
            if root is not None:
                summary = running[node.trace] = TraceSummary(root.uuid, root.name, root.start_us)
        if summary is not None:
            summary.add(node)
        if node.category == "llm" and node.facts is not None:
            key = node.facts.model or "(unknown)"
            group = result.models.get(key)
            if group is None:
                group = result.models[key] = Group(key)
            group.add(node)
        if node.uuid == node.trace and summary is not None:
            del running[node.trace]
            summary.duration_us = node.duration_us
            result.traces += 1
            sequence += 1
            value = summary.duration_us or 0
            if len(reservoir) < _SAMPLE:
                reservoir.append(value)
            else:
                slot = sampler.randrange(sequence)
                if slot < _SAMPLE:
                    reservoir[slot] = value
            entry = (value, -sequence, summary)
            if len(result.slowest) < limits.slowest:
                heapq.heappush(result.slowest, entry)
            elif limits.slowest:
                heapq.heappushpop(result.slowest, entry)
            if summary.failed:
                result.failed_traces += 1
                if len(result.failed) < limits.failed:
                    result.failed.append(summary)
    left = joiner.close()
    result.open_spans = len(left)
    for summary in running.values():  # traces whose top-level scope never ended
        result.traces += 1
        if len(result.failed) < limits.failed:
            result.failed.append(summary)
    return result


# -- rendering --------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _payload(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    if len(text) > limit:
        return text[:limit] + f"\n… truncated: {len(text) - limit:,} more characters not embedded"
    return text


def _body_first(value: Any) -> Any:
    # An LLM request is recorded as {"headers", "content"}; the body is what a
    # reader looks for, and it must survive the payload cap, so it goes first.
    if isinstance(value, dict) and "headers" in value and "content" in value:
        return {"content": value["content"], **{k: v for k, v in value.items() if k != "content"}}
    return value


def _detail(span: Span, limits: ReportLimits) -> dict[str, Any]:
    facts = span.facts
    start, end = span.start or {}, span.end or {}
    metadata = {**(start.get("metadata") or {}), **(end.get("metadata") or {})}
    return {
        "name": span.name,
        "category": span.category,
        "uuid": span.uuid,
        "duration": duration(span.duration_us) if not span.is_open else "open (no end event)",
        "model": facts.model if facts else None,
        "provider": facts.provider if facts else None,
        "tokens": None
        if facts is None
        else {
            "input": facts.input_tokens,
            "output": facts.output_tokens,
            "cached": facts.cached_tokens,
            "reasoning": facts.reasoning_tokens,
        },
        "cost": cost(facts.cost_usd) if facts and facts.cost_usd is not None else None,
        "attempts": str(facts.retry_attempts)
        if facts and (facts.retry_attempts or 0) > 1
        else None,
        "error": span.error,
        "rejected": span.rejected,
        "request": _payload(_body_first(start.get("data")), limits.max_payload),
        "response": _payload(end.get("data"), limits.max_payload),
        "metadata": _payload(metadata or None, limits.max_payload),
    }


def _flatten(root: Node, limit: int) -> tuple[list[Node], int]:
    rows: list[Node] = []
    stack: list[Node] = [root]
    total = 0
    while stack:
        node = stack.pop()
        total += 1
        if len(rows) < limit:
            rows.append(node)
        if isinstance(node, Span):
            stack.extend(reversed(node.children))
    return rows, total - len(rows)


def _waterfall(
    root: Node, summary: TraceSummary | None, limits: ReportLimits, details: dict[str, Any]
) -> str:
    rows, hidden = _flatten(root, limits.max_spans)
    begin = root.start_us
    end = max(
        (n.end_us if isinstance(n, Span) and n.end_us is not None else n.start_us for n in rows),
        default=begin,
    )
    span_us = max(end - begin, 1)
    failed = summary.failed if summary else False
    title = f"{root.category or 'scope'} {root.name}" if isinstance(root, Span) else root.name
    facts = []
    if summary is not None:
        facts = [
            duration(summary.duration_us) if summary.duration_us is not None else "open",
            f"{summary.spans} spans",
            f"{summary.llm_calls} llm calls",
            f"tokens {summary.input_tokens:,}→{summary.output_tokens:,}",
        ]
        if summary.cost_usd is not None:
            facts.append(cost(summary.cost_usd))
        if summary.errors:
            facts.append(f"{summary.errors} error" + ("s" if summary.errors > 1 else ""))
        if summary.rejected:
            facts.append(f"{summary.rejected} rejected")
    out = [
        f'<section class="trace{" failed" if failed else ""}" data-trace="{_esc(root.uuid)}">',
        f'<h3>{_esc(title)} <span class="muted">{_esc(" · ".join(facts))}</span></h3>',
        '<div class="axis">',
    ]
    for step in range(5):
        out.append(f'<span style="left:{step * 25}%">{_esc(duration(span_us * step / 4))}</span>')
    out.append("</div>")
    for node in rows:
        left = (node.start_us - begin) / span_us * 100
        indent = node.depth * 14
        if isinstance(node, Mark):
            rejected_mark = node.name == "llmflow.guardrail_rejected"
            out.append(
                f'<div class="row mark{" rejected" if rejected_mark else ""}">'
                f'<div class="label" style="padding-left:{indent}px">◆ {_esc(node.name)}</div>'
                f'<div class="lane"><div class="tick" style="left:{left:.3f}%"></div></div>'
                "</div>"
            )
            continue
        width = ((node.end_us or end) - node.start_us) / span_us * 100
        classes = ["row", "span", f"cat-{_esc(node.category or 'unknown')}"]
        if node.error:
            classes.append("error")
        if node.rejected:
            classes.append("rejected")
        if node.is_open:
            classes.append("open")
        color = _CATEGORY_COLORS.get(node.category or "", "#9aa3b2")
        model = f" [{node.facts.model}]" if node.facts and node.facts.model else ""
        badge = ""
        if node.error:
            badge = '<b class="badge err">error</b>'
        elif node.rejected:
            badge = '<b class="badge rej">rejected</b>'
        label = duration(node.duration_us) if not node.is_open else "open"
        # The latency label goes after the bar, before it when the bar reaches
        # the right edge, and inside it when the bar spans nearly everything.
        if left + width <= 82:
            where = f'class="dur" style="left:{left + width:.3f}%"'
        elif left >= 12:
            where = f'class="dur before" style="right:{100 - left:.3f}%"'
        else:
            where = 'class="dur inside" style="right:1%"'
        details[node.uuid] = _detail(node, limits)
        out.append(
            f'<div class="{" ".join(classes)}" data-span="{_esc(node.uuid)}" tabindex="0">'
            f'<div class="label" style="padding-left:{indent}px">'
            f'<span class="cat">{_esc(node.category or "")}</span> {_esc(node.name)}'
            f'<span class="muted">{_esc(model)}</span>{badge}</div>'
            f'<div class="lane"><div class="bar" style="left:{left:.3f}%;'
            f'width:max({width:.3f}%,2px);background:{color}"></div>'
            f"<span {where}>{_esc(label)}</span></div>"
            "</div>"
        )
    if hidden:
        out.append(
            f'<p class="note">{hidden:,} more spans of this trace are not shown '
            f"(at most {limits.max_spans:,} rows per trace).</p>"
        )
    out.append("</section>")
    return "\n".join(out)


def _bar_chart(
    title: str, rows: Sequence[tuple[str, Sequence[float]]], legend: Sequence[str], unit: str
) -> str:
    """A horizontal grouped bar chart as inline SVG."""
    colors = ("#3b6fd8", "#e0823d", "#2e9e6a")
    biggest = max((v for _, values in rows for v in values), default=0) or 1
    bar_h, gap, label_w, chart_w = 14, 10, 150, 330
    group_h = bar_h * len(legend) + gap
    height = 30 + group_h * len(rows) + 10
    parts = [
        f'<svg class="chart" role="img" aria-label="{_esc(title)}" '
        f'width="{label_w + chart_w + 90}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="0" y="14" class="chart-title">{_esc(title)}</text>',
    ]
    for index, name in enumerate(legend):
        x = label_w + index * 110
        parts.append(
            f'<rect x="{x}" y="20" width="10" height="10" fill="{colors[index]}"/>'
            f'<text x="{x + 14}" y="29" class="legend">{_esc(name)}</text>'
        )
    for row_index, (label, values) in enumerate(rows):
        y0 = 38 + row_index * group_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y0 + bar_h}" text-anchor="end" class="axis-label">'
            f"{_esc(label[:28])}</text>"
        )
        for index, value in enumerate(values):
            width = max(value / biggest * chart_w, 1)
            y = y0 + index * bar_h
            text = duration(value) if unit == "us" else f"{value:,.0f}"
            parts.append(
                f'<rect class="bar-{index}" x="{label_w}" y="{y}" width="{width:.1f}" '
                f'height="{bar_h - 2}" fill="{colors[index]}"><title>{_esc(label)} '
                f"{_esc(legend[index])}: {_esc(text)}</title></rect>"
                f'<text x="{label_w + width + 4:.1f}" y="{y + bar_h - 3}" class="value">'
                f"{_esc(text)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _model_table(models: dict[str, Group]) -> str:
    head = (
        "<tr><th>model</th><th>calls</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th>"
        "<th>tokens in</th><th>tokens out</th><th>cached</th><th>cost</th></tr>"
    )
    body = []
    for group in sorted(models.values(), key=lambda g: -g.calls):
        ordered = sorted(group.latencies)
        body.append(
            f"<tr><td>{_esc(group.key)}</td><td>{group.calls:,}</td><td>{group.errors:,}</td>"
            f"<td>{_esc(duration(percentile(ordered, 0.5)))}</td>"
            f"<td>{_esc(duration(percentile(ordered, 0.95)))}</td>"
            f"<td>{_esc(duration(percentile(ordered, 0.99)))}</td>"
            f"<td>{group.input_tokens or 0:,}</td><td>{group.output_tokens or 0:,}</td>"
            f"<td>{group.cached_tokens or 0:,}</td><td>{_esc(cost(group.cost_usd))}</td></tr>"
        )
    return f'<table class="models">{head}{"".join(body)}</table>'


def _histogram(values: list[int]) -> str:
    """Trace durations on a log scale, as inline SVG bars."""
    if not values:
        return ""
    low, high = max(min(values), 1), max(*values, 2)
    buckets = 24
    ratio = (high / low) ** (1 / buckets) if high > low else 2.0
    counts = [0] * buckets
    for value in values:
        index = 0
        if value > low and ratio > 1:
            index = min(int(math.log(value / low, ratio)), buckets - 1)
        counts[index] += 1
    peak = max(counts) or 1
    width, height = 600, 120
    bar_w = width / buckets
    parts = [
        f'<svg class="chart histogram" role="img" aria-label="trace durations" '
        f'width="{width + 20}" height="{height + 50}" xmlns="http://www.w3.org/2000/svg">',
        '<text x="0" y="14" class="chart-title">trace durations (log scale)</text>',
    ]
    for index, count in enumerate(counts):
        h = count / peak * height
        parts.append(
            f'<rect x="{index * bar_w:.1f}" y="{20 + height - h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}" fill="#7a5cc7"><title>{count:,} traces ≥ '
            f"{_esc(duration(low * ratio**index))}</title></rect>"
        )
    parts.append(
        f'<text x="0" y="{height + 40}" class="axis-label">{_esc(duration(low))}</text>'
        f'<text x="{width}" y="{height + 40}" text-anchor="end" class="axis-label">'
        f"{_esc(duration(high))}</text></svg>"
    )
    return "".join(parts)


def _asset(name: str) -> str:
    return resources.files("llmflow.cli").joinpath("report_assets", name).read_text("utf-8")


def build_report(
    logs: LogInput, path: str, limits: ReportLimits | None = None, *, title: str | None = None
) -> str:
    """Read ``path`` twice and return the report page (raises ``UnreadableInput``).

    ``title`` names the log on the page (default: the file name).
    """
    chosen_limits = limits or ReportLimits()
    first = _first_pass(logs, path, chosen_limits)
    slowest = [entry[2] for entry in sorted(first.slowest, reverse=True)]
    chosen: dict[str, TraceSummary] = {}
    for summary in [*first.failed, *slowest]:
        chosen.setdefault(summary.uuid, summary)
    # Second pass: problems were reported by the first one.
    roots = build_forest(iter_records(path), keep_events=True, traces=set(chosen))
    details: dict[str, Any] = {}
    order = {uuid: index for index, uuid in enumerate(chosen)}
    embedded = sorted(
        (root for root in roots if isinstance(root, Span) and root.uuid in chosen),
        key=lambda root: order[root.uuid],
    )
    sections = [
        _waterfall(root, chosen.get(root.uuid), chosen_limits, details) for root in embedded
    ]
    options = "".join(
        f'<option value="{_esc(root.uuid)}">{"✕ " if chosen[root.uuid].failed else ""}'
        f"{_esc(root.name)} · {_esc(duration(chosen[root.uuid].duration_us))}</option>"
        for root in embedded
    )
    totals = first.totals
    if len(embedded) >= first.traces:
        cap_note = f"All {first.traces:,} trace(s) are shown in full."
    else:
        cap_note = (
            f"{len(embedded):,} of {first.traces:,} traces are shown in full: the "
            f"{min(chosen_limits.slowest, first.traces):,} slowest and up to "
            f"{chosen_limits.failed:,} failed ones ({first.failed_traces:,} failed in all). "
            f"The others are counted in the summary, the charts and the table."
        )
    cap_note += (
        f" At most {chosen_limits.max_spans:,} spans per trace and "
        f"{chosen_limits.max_payload:,} characters per payload are embedded."
    )
    model_rows = sorted(first.models.values(), key=lambda g: -g.calls)
    latency_chart = _bar_chart(
        "LLM latency per model",
        [
            (g.key, [percentile(sorted(g.latencies), q) or 0 for q in (0.5, 0.95)])
            for g in model_rows
        ],
        ("p50", "p95"),
        "us",
    )
    token_chart = _bar_chart(
        "tokens per model",
        [(g.key, [g.input_tokens or 0, g.output_tokens or 0]) for g in model_rows],
        ("input", "output"),
        "tokens",
    )
    span_range = (
        "-"
        if first.start_us is None or first.end_us is None
        else f"{_clock(first.start_us)} → {_clock(first.end_us)} UTC"
    )
    cards = [
        ("traces", f"{first.traces:,}"),
        ("spans", f"{first.spans:,}"),
        ("LLM calls", f"{totals.llm_calls:,}"),
        ("errors", f"{totals.errors:,}"),
        ("rejected", f"{totals.rejected:,}"),
        ("tokens in / out", f"{totals.input_tokens:,} / {totals.output_tokens:,}"),
        ("cost", cost(totals.cost_usd)),
    ]
    # "<" only occurs inside JSON strings; as \u003c no payload can close the
    # <script> element or open a comment in it.
    data = orjson.dumps(details).decode().replace("<", "\\u003c")
    name = title if title is not None else Path(path).name
    return _asset("report.html").format(
        title=_esc(f"llmflow report · {name}"),
        css=_asset("report.css"),
        js=_asset("report.js"),
        source=_esc(name),
        range=_esc(span_range),
        generated=_esc(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        cards="".join(
            f'<div class="card"><div class="k">{_esc(k)}</div><div class="v">{_esc(v)}</div></div>'
            for k, v in cards
        ),
        cap_note=_esc(cap_note),
        charts=latency_chart
        + token_chart
        + (_histogram(first.durations) if first.traces >= _HISTOGRAM_MIN else ""),
        models=_model_table(first.models),
        options=options,
        traces="\n".join(sections) or '<p class="note">No complete trace in this log.</p>',
        data=data,
        skipped=_esc(f"{logs.problems:,} malformed line(s) skipped. " if logs.problems else ""),
    )


def _clock(us: int) -> str:
    second, micro = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)) + f".{micro // 1000:03d}"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow report`` to its parser."""
    parser.add_argument("path", metavar="PATH", help="ATOF JSONL file, .gz, or -")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write")
    parser.add_argument("--slowest", type=int, default=20, help="slowest traces in full (20)")
    parser.add_argument("--failed", type=int, default=20, help="failed traces in full (20)")
    parser.add_argument("--max-spans", type=int, default=500, help="rows per trace (500)")
    parser.add_argument(
        "--max-payload", type=int, default=16_384, help="characters per payload (16384)"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``report``; returns the exit code."""
    error = check_readable([args.path], "report")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    limits = ReportLimits(args.slowest, args.failed, args.max_spans, args.max_payload)
    path = args.path
    spool = None
    if path == "-":  # two passes need a file: keep stdin on disk meanwhile
        spool = tempfile.NamedTemporaryFile(prefix="llmflow-report-", suffix=".jsonl")  # noqa: SIM115
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        path = spool.name
    logs = LogInput([path], command="report")
    try:
        page = build_report(
            logs, path, limits, title="<stdin>" if spool is not None else Path(path).name
        )
        Path(args.output).write_text(page, encoding="utf-8")
    except UnreadableInput as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as exc:
        print(f"llmflow report: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    finally:
        if spool is not None:
            spool.close()
    logs.finish()
    size = Path(args.output).stat().st_size
    print(f"llmflow report: wrote {args.output} ({size / 1024:,.0f} KiB)", file=sys.stderr)
    return EXIT_OK
