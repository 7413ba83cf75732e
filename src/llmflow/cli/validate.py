"""``llmflow validate PATH``: check an ATOF file; exit 1 on violations, 2 if unreadable."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["run_validate"]


def run_validate(path: Path) -> int:
    from llmflow.atof import validate_stream

    try:
        violations = validate_stream(path)
    except OSError as exc:  # a missing or unreadable file is a usage error, not a trace
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for violation in violations:
        print(f"{path}:{violation}")
    print(f"{path}: {'valid' if not violations else f'{len(violations)} violation(s)'}")
    return 1 if violations else 0
