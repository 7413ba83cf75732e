"""``llmflow ship LOG [TARGET ...]``: deliver a JSONL log to exporters from this process.

Follows the log as it grows (``--once``: ships what is there and exits) and
hands its complete lines to the targets (``parquet:DIR``, ``http:URL``,
``otlp``, ``jsonl:PATH``; none: the names in ``LLMFLOW_EXPORTERS``), with a
checkpoint in a state file so that a restart resumes where the last
delivered batch ended (at-least-once). SIGINT and SIGTERM drain to the end,
checkpoint and exit. Exit codes: 0 everything read was delivered, 1 not
(an exporter kept refusing), 2 bad usage, an unreadable log or state file.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any

from ._input import EXIT_OK, EXIT_UNREADABLE, EXIT_VIOLATIONS

__all__ = ["register", "run"]


def register(ship: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow ship`` to its parser."""
    ship.add_argument("path", metavar="LOG", help="ATOF JSONL file written by the application")
    ship.add_argument(
        "targets",
        metavar="TARGET",
        nargs="*",
        help="parquet:DIR, http:URL, otlp or jsonl:PATH (default: LLMFLOW_EXPORTERS)",
    )
    ship.add_argument("--once", action="store_true", help="ship what is there, then exit")
    ship.add_argument("--state", help="checkpoint file (default: LOG.ship-state)")
    ship.add_argument("--batch-lines", type=int, default=2_048, help="lines per batch (2048)")
    ship.add_argument(
        "--batch-seconds", type=float, default=2.0, help="longest wait to fill a batch (2.0)"
    )
    ship.add_argument(
        "--commit-seconds",
        type=float,
        default=60.0,
        help="seconds between checkpoints; each finishes the Parquet file being written (60)",
    )
    ship.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds a refused batch is retried by --once or a stopping shipper (60)",
    )
    ship.add_argument("--nice", type=int, default=0, help="lower this process's priority by N")
    ship.add_argument(
        "--control-stdin",
        action="store_true",
        help="read 'flush'/'stop' lines on stdin; its end stops (used by start_shipper)",
    )
    _intermixed(ship)


def _intermixed(parser: argparse.ArgumentParser) -> None:
    """Let options come between LOG and the targets (``ship LOG --once parquet:lake``).

    argparse matches a ``nargs="*"`` positional only next to the one before it;
    its intermixed parsing (which calls ``parse_known_args`` itself) does not.
    """
    plain = parser.parse_known_args
    inside = False

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        nonlocal inside
        if inside:
            return plain(args, namespace)
        inside = True
        try:
            return parser.parse_known_intermixed_args(args, namespace)
        finally:
            inside = False

    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def _targets(args: argparse.Namespace) -> list[str]:
    if args.targets:
        return list(args.targets)
    names = [item.strip().lower() for item in os.environ.get("LLMFLOW_EXPORTERS", "").split(",")]
    return [name for name in dict.fromkeys(names) if name and name != "jsonl"]


def run(args: argparse.Namespace) -> int:
    """Run ``ship``; returns the exit code."""
    from llmflow._ship import ship, watch_control

    targets = _targets(args)
    if not targets:
        print(
            "llmflow ship: targets: name at least one TARGET (parquet:DIR, http:URL, otlp, "
            "jsonl:PATH) or set LLMFLOW_EXPORTERS",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE
    if args.nice:
        try:
            os.nice(args.nice)
        except (OSError, AttributeError) as exc:
            print(f"llmflow ship: --nice {args.nice}: {exc}", file=sys.stderr)
    stop, commit = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()  # drain to the end, checkpoint, exit

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    if args.control_stdin:
        threading.Thread(
            target=watch_control,
            args=(sys.stdin.buffer, stop, commit),
            name="llmflow-ship-control",
            daemon=True,
        ).start()
    try:
        result = ship(
            args.path,
            targets,
            state=args.state,
            follow=not args.once,
            stop=stop,
            commit=commit,
            batch_lines=args.batch_lines,
            batch_seconds=args.batch_seconds,
            commit_seconds=args.commit_seconds,
            timeout=args.timeout,
        )
    except (ValueError, TypeError) as exc:
        print(f"llmflow ship: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as exc:
        text = exc.strerror if str(exc.strerror).startswith(("state:", "path:")) else exc
        print(f"llmflow ship: {text}", file=sys.stderr)
        return EXIT_UNREADABLE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    resumed = f", resumed at byte {result.resumed_offset:,}" if result.resumed_offset else ""
    extra = "".join(
        f", {count:,} {label}"
        for count, label in (
            (result.skipped, "skipped (not JSON objects)"),
            (result.rejected, "rejected by an exporter"),
            (result.retries, "retries"),
            (result.resent_starts, "open-span starts resent"),
            (result.rotations, "rotations"),
        )
        if count
    )
    batches = f"{result.batches:,} batch" + ("" if result.batches == 1 else "es")
    print(
        f"shipped {result.delivered:,} of {result.lines:,} lines in {batches} "
        f"to {', '.join(targets)}{resumed}{extra}; "
        f"checkpoint: line {result.line:,}, byte {result.offset:,}"
    )
    if not result.complete:
        print(
            f"llmflow ship: not everything was delivered ({result.last_error or 'timed out'}); "
            "the checkpoint stays at the last delivered batch",
            file=sys.stderr,
        )
        return EXIT_VIOLATIONS
    return EXIT_OK
