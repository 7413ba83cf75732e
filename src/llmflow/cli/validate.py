"""``llmflow validate PATH``: check an ATOF log; exit 1 on violations, 2 if unreadable.

Uses the pydantic models (the full ATOF 0.1 schema), not the fast reader: a
line the other commands would skip with a warning is a violation here.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

from ._input import EXIT_OK, EXIT_UNREADABLE, EXIT_VIOLATIONS, check_readable

__all__ = ["register", "run", "run_validate"]


def run_validate(path: str | Path) -> int:
    """Validate one log (a path, a ``.gz`` file or ``-``); returns the exit code."""
    from llmflow.atof import validate_stream

    name = "<stdin>" if str(path) == "-" else str(path)
    error = check_readable([str(path)], "validate")
    if error is not None:
        print(error, file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        violations = validate_stream(path)
    except OSError as exc:  # a missing or unreadable file is a usage error, not a trace
        print(f"{name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    except (EOFError, zlib.error) as exc:
        print(f"{name}: compressed data ends early or is corrupt ({exc})", file=sys.stderr)
        return EXIT_UNREADABLE
    for violation in violations:
        print(f"{name}:{violation}")
    print(f"{name}: {'valid' if not violations else f'{len(violations)} violation(s)'}")
    return EXIT_VIOLATIONS if violations else EXIT_OK


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow validate`` to its parser."""
    parser.add_argument("path", help="ATOF JSONL file, .gz, or - for stdin")


def run(args: argparse.Namespace) -> int:
    """Run ``validate``; returns the exit code."""
    return run_validate(args.path)
