"""Plain-text formatting shared by the commands: durations, tokens, cost, tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["cost", "duration", "table", "tokens"]


def duration(us: int | float | None) -> str:
    """µs as ``412 µs``, ``3.1 ms`` or ``1.20 s``; ``-`` when unknown."""
    if us is None:
        return "-"
    if us < 1_000:
        return f"{us:.0f} µs"
    if us < 1_000_000:
        return f"{us / 1_000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"


def tokens(value: int | None) -> str:
    """A token count with thousands separators; ``-`` when unknown."""
    return "-" if value is None else f"{value:,}"


def cost(usd: float | None) -> str:
    """US dollars, with two significant digits for cheap calls; ``-`` when unknown.

    ``$0.000023`` rather than ``$0.0000``: one small-model call costs a
    fraction of a cent, and a cost that prints as zero reads as "free".
    """
    if usd is None:
        return "-"
    if usd == 0:
        return "$0"
    if usd < 0.01:
        return f"${usd:.{min(10, 1 - math.floor(math.log10(usd)))}f}"
    return f"${usd:.4f}" if usd < 10 else f"${usd:,.2f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Align columns: the first left-aligned, the others right-aligned."""
    widths = [len(h) for h in header]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), *(line(row) for row in rows)])
