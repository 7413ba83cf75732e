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
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ._input import EXIT_OK, EXIT_UNREADABLE

__all__ = ["COMMANDS", "main"]

_INTERRUPTED: Final = 130

COMMANDS: Final = (
    ("demo", "run the demo workflow and write its ATOF log"),
    ("validate", "check an ATOF log (exit 1 on violations)"),
    ("show", "print a log as a call tree with latency, tokens, cost and errors"),
    ("stats", "calls, errors, latency percentiles, tokens, cost per model/name/tool"),
    ("tail", "print calls as they end; -f follows a growing log"),
    ("convert", "convert a log to ATIF, OTLP, Parquet or JSONL"),
    ("report", "write one self-contained HTML report"),
    ("ship", "deliver a JSONL log to exporters from another process (follows it)"),
    ("schemas", "write the JSON Schemas of schemas/"),
)
"""``(name, help)`` of each command, in ``--help`` order; one line adds a command.

The module ``llmflow.cli.<name>`` defines ``register(parser)``, which adds the
command's arguments, and ``run(args) -> int``. It is imported only when its
command runs, so each command pays for its own imports only.
"""


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """The subcommands: the chosen one's module adds its arguments just before they are parsed."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        chosen = self.choices.get(values[0]) if isinstance(self.choices, dict) else None
        if isinstance(chosen, argparse.ArgumentParser) and chosen.get_default("run") is None:
            module = importlib.import_module(f"{__name__}.{values[0]}")
            module.register(chosen)
            chosen.set_defaults(run=module.run)
        super().__call__(parser, namespace, values, option_string)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llmflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(
        action=_Commands, dest="command", required=True, metavar="COMMAND"
    )
    for name, help_text in COMMANDS:
        commands.add_parser(name, help=help_text)
    return parser


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
        code: int = args.run(args)
        return code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return _INTERRUPTED
    except BrokenPipeError:
        # The reader went away: point stdout at /dev/null so the final flush at
        # exit does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
