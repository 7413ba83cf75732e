"""``llmflow schemas [--check] [DIR]``: write or check the JSON Schemas of ``schemas/``."""

from __future__ import annotations

from pathlib import Path

import orjson

__all__ = ["run_schemas"]


def run_schemas(directory: Path, check: bool) -> int:
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
