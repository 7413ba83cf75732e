"""``llmflow schemas [--check] [DIR]``: write or check the JSON Schemas of ``schemas/``."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

__all__ = ["register", "run", "run_schemas"]


def register(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmflow schemas`` to its parser."""
    parser.add_argument("directory", nargs="?", type=Path, default=Path("schemas"))
    parser.add_argument("--check", action="store_true", help="fail if files differ")


def run(args: argparse.Namespace) -> int:
    """Run ``schemas``; returns the exit code."""
    return run_schemas(args.directory, args.check)


def run_schemas(directory: Path, check: bool) -> int:
    """Write the JSON Schemas into ``directory`` (``check``: only compare); 1 if any is stale."""
    from llmflow.atof import json_schemas

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
