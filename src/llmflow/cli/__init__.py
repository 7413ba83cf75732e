"""The ``llmflow`` command line (also ``python -m llmflow``).

Commands, one module each: ``demo`` (run the instrumented demo and write its
log), ``validate`` (check a log; exit 1 on violations), ``show`` (call tree),
``stats`` (aggregates per model, name, provider, tool), ``tail`` (follow a
growing log), ``convert`` (to ATIF, OTLP JSON, Parquet or JSONL), ``report``
(one self-contained HTML file), ``ship`` (deliver a log to exporters,
following it) and ``schemas`` (write or check the JSON
Schemas of ``schemas/``). Exit codes: 0 ok, 1 violations found, 2 bad usage or
unreadable input, 130 interrupted (see ``docs/cli.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import convert, report, ship, show, stats, tail
from ._input import EXIT_OK, EXIT_UNREADABLE
from .schemas import run_schemas
from .validate import run_validate

__all__ = ["main"]

_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run the demo workflow and write its ATOF log")
    demo.add_argument("path", nargs="?", default="llmflow-demo.atof.jsonl")
    validate = commands.add_parser("validate", help="check an ATOF log (exit 1 on violations)")
    validate.add_argument("path", help="ATOF JSONL file, .gz, or - for stdin")
    show.register(commands)
    stats.register(commands)
    tail.register(commands)
    convert.register(commands)
    report.register(commands)
    ship.register(commands)
    schemas = commands.add_parser("schemas", help="write the JSON Schemas of schemas/")
    schemas.add_argument("directory", nargs="?", type=Path, default=Path("schemas"))
    schemas.add_argument("--check", action="store_true", help="fail if files differ")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "schemas":
        return run_schemas(args.directory, args.check)
    if args.command == "validate":
        return run_validate(args.path)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(Path(args.path))
    code: int = args.run(args)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m llmflow`` and the ``llmflow`` script; returns the exit code.

    Usage errors exit 2 (argparse's own code). Ctrl-C exits 130 without a
    traceback; a closed pipe (``llmflow show x | head``) ends quietly.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_UNREADABLE
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return _INTERRUPTED
    except BrokenPipeError:
        # The reader went away: point stdout at /dev/null so the final flush at
        # exit does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
