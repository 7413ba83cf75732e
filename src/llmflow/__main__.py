"""The ``llmflow`` command line: ``demo``, ``validate``, ``show`` and ``schemas``.

``python -m llmflow demo [PATH]`` runs the instrumented demo workflow and writes
its ATOF log; ``python -m llmflow validate PATH`` checks an ATOF file and exits
non-zero on violations; ``python -m llmflow show PATH`` prints it as a call
tree; ``python -m llmflow schemas [--check] [DIR]`` writes (or checks) the JSON
Schemas of ``schemas/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

__all__ = ["main"]


def _schemas(directory: Path, check: bool) -> int:
    from .atof import json_schemas

    stale = []
    for filename, schema in json_schemas().items():
        target = directory / filename
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        if check:
            if not target.exists() or target.read_bytes() != text:
                stale.append(filename)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text)
            print(f"wrote {target}")
    if stale:
        print(f"stale schemas (run `python -m llmflow schemas`): {', '.join(stale)}")
        return 1
    return 0


def _validate(path: Path) -> int:
    from .atof import validate_stream

    try:
        violations = validate_stream(path)
    except OSError as exc:  # a missing or unreadable file is a usage error, not a trace
        print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    for violation in violations:
        print(f"{path}:{violation}")
    print(f"{path}: {'valid' if not violations else f'{len(violations)} violation(s)'}")
    return 1 if violations else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m llmflow`` and the ``llmflow`` script."""
    parser = argparse.ArgumentParser(prog="llmflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the demo workflow and write its ATOF log")
    demo.add_argument("path", nargs="?", default="llmflow-demo.atof.jsonl")
    validate = commands.add_parser("validate", help="check an ATOF JSONL file")
    validate.add_argument("path", type=Path)
    show = commands.add_parser("show", help="print an ATOF JSONL file as a call tree")
    show.add_argument("path", type=Path)
    schemas = commands.add_parser("schemas", help="write the JSON Schemas of schemas/")
    schemas.add_argument("directory", nargs="?", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if files differ")
    args = parser.parse_args(argv)
    if args.command == "schemas":
        return _schemas(args.directory, args.check)
    if args.command == "validate":
        return _validate(args.path)
    if args.command == "show":
        from .report import render_tree

        print(render_tree(args.path))
        return 0
    from .demo import run_demo

    return run_demo(Path(args.path))


if __name__ == "__main__":
    sys.exit(main())
