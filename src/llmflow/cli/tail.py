"""``llmflow tail [-f] PATH``: one line per call as it ends; ``-f`` follows a growing log.

Without ``-f`` it prints the last ``-n`` ended calls and exits. With ``-f`` it
then keeps reading: a line is decoded only once its newline has been written
(a writer mid-line is never reported as broken), a file replaced under the
same name (rotation) is drained and the new one read from its start, and a
file that shrinks (truncation) is read again from its start. Ctrl-C stops it
cleanly with exit code 0. Memory holds only the spans still open.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from collections import deque
from collections.abc import Callable

from llmflow.atof import Node, Span, SpanJoiner
from llmflow.atof._follow import follow_lines
from llmflow.atof._reader import decode_line, open_source

from ._format import cost, duration
from ._input import EXIT_OK, EXIT_UNREADABLE, LogInput, UnreadableInput, check_readable

__all__ = ["follow_lines", "format_call", "register", "run"]


def format_call(span: Span) -> str:
    """One line for an ended span: time, category, name, model, latency, tokens, cost, status."""
    facts = span.facts
    second, micro = divmod(span.end_us or span.start_us, 1_000_000)
    clock = time.strftime("%H:%M:%S", time.gmtime(second)) + f".{micro // 1000:03d}"
    parts = [clock, f"{span.category or 'scope':<9}", span.name]
    if facts is not None:
        if facts.model:
            parts.append(f"[{facts.model}]")
        parts.append(duration(facts.duration_us))
        if facts.input_tokens is not None or facts.output_tokens is not None:
            parts.append(f"tokens {facts.input_tokens or 0:,}→{facts.output_tokens or 0:,}")
        if facts.cost_usd is not None:
            parts.append(cost(facts.cost_usd))
        if facts.cache_hit:
            parts.append("cache hit")
        if facts.retry_attempts is not None and facts.retry_attempts > 1:
            parts.append(f"{facts.retry_attempts} attempts")
    if span.rejected:
        parts.append("REJECTED")
    parts.append(f"!! {span.error[:120]}" if span.error else ("" if span.rejected else "ok"))
    return "  ".join(p for p in parts if p)


def _selector(args: argparse.Namespace) -> Callable[[Span], bool]:
    categories = {"llm", "tool"} if args.category is None else set(args.category.split(","))

    def keep(span: Span) -> bool:
        if "all" not in categories and span.category not in categories:
            return False
        if args.name is not None and not fnmatch.fnmatchcase(span.name, args.name):
            return False
        return not args.errors or span.failed

    return keep


def _last_calls(logs: LogInput, path: str, count: int, keep: Callable[[Span], bool]) -> deque[Span]:
    """The last ``count`` kept calls of a file."""
    last: deque[Span] = deque(maxlen=max(count, 0))
    joiner = SpanJoiner(on_problem=logs.report, source=path)
    for record in logs.records(path):
        node: Node | None = joiner.add(record)
        if isinstance(node, Span) and keep(node):
            last.append(node)
    return last


def _follow(path: str, logs: LogInput, keep: Callable[[Span], bool], count: int) -> None:
    write = sys.stdout.write
    if path == "-":
        # A pipe has no rotation: read it to its end, printing calls as they end.
        joiner = SpanJoiner(on_problem=logs.report, source="<stdin>")
        with open_source("-") as stdin:
            for number, raw in enumerate(iter(stdin.readline, b""), 1):
                record = decode_line(raw, number, "<stdin>", logs.report)
                node = joiner.add(record) if record is not None else None
                if isinstance(node, Span) and keep(node):
                    write(format_call(node) + "\n")
                    sys.stdout.flush()
        return
    # One pass: until the first catch-up the calls are backlog (only the last
    # ``count`` are printed), after it every kept call is printed as it ends.
    backlog: deque[Span] | None = deque(maxlen=max(count, 0))
    joiner = SpanJoiner(on_problem=logs.report, source=path)
    for item in follow_lines(path):
        if item is None:
            if backlog is not None:
                for span in backlog:
                    write(format_call(span) + "\n")
                backlog = None
            sys.stdout.flush()
            continue
        number, raw = item
        if number == 0:
            joiner = SpanJoiner(on_problem=logs.report, source=path)
            print(f"llmflow tail: {path}: new file (rotated or truncated)", file=sys.stderr)
            continue
        record = decode_line(raw, number, path, logs.report)
        node = joiner.add(record) if record is not None else None
        if isinstance(node, Span) and keep(node):
            if backlog is not None:
                backlog.append(node)
            else:
                write(format_call(node) + "\n")
                sys.stdout.flush()  # live view: each call as it ends


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow tail`` to its parser."""
    parser.add_argument("path", metavar="PATH", help="ATOF JSONL file (or - for stdin)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep reading as it grows")
    parser.add_argument("-n", "--lines", type=int, default=10, help="calls shown first (10)")
    parser.add_argument("--name", help="only spans whose name matches this glob")
    parser.add_argument(
        "--category", help="comma-separated categories, or 'all' (default: llm,tool)"
    )
    parser.add_argument("--errors", action="store_true", help="only failed calls and rejections")


def run(args: argparse.Namespace) -> int:
    """Run ``tail``; returns the exit code (Ctrl-C while following is a normal stop: 0)."""
    error = check_readable([args.path], "tail")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    if args.follow and args.path != "-":
        with open(args.path, "rb") as probe:
            if probe.read(2) == b"\x1f\x8b":
                print(f"llmflow tail: -f follows plain files; {args.path} is gzip", file=sys.stderr)
                return EXIT_UNREADABLE
    keep = _selector(args)
    logs = LogInput([args.path], command="tail", progress=False)
    try:
        if args.follow:
            _follow(args.path, logs, keep, args.lines)
        else:
            for span in _last_calls(logs, args.path, args.lines, keep):
                print(format_call(span))
    except UnreadableInput as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as exc:
        print(f"llmflow tail: cannot read {args.path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        sys.stdout.flush()
        return EXIT_OK
    logs.finish()
    return EXIT_OK
