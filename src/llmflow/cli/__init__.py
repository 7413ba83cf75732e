"""The ``llmflow`` command line: ``demo``, ``validate``, ``show`` and ``schemas``.

``python -m llmflow demo [PATH]`` runs the instrumented demo workflow and writes
its ATOF log; ``python -m llmflow validate PATH`` checks an ATOF file and exits
non-zero on violations; ``python -m llmflow show PATH`` prints it as a call
tree; ``python -m llmflow schemas [--check] [DIR]`` writes (or checks) the JSON
Schemas of ``schemas/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .schemas import run_schemas
from .validate import run_validate

__all__ = ["main"]


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
        return run_schemas(args.directory, args.check)
    if args.command == "validate":
        return run_validate(args.path)
    if args.command == "show":
        from .show import render_tree

        print(render_tree(args.path))
        return 0
    from .demo import run_demo

    return run_demo(Path(args.path))
