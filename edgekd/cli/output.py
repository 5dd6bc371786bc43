"""Tables for people, JSON for machines: every command prints through these."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 headers: Sequence[str] | None = None) -> str:
    """Plain-text table with right-aligned numbers; ``columns`` picks and orders the keys."""
    if not rows:
        return "(no rows)"
    columns = list(columns or rows[0].keys())
    headers = list(headers or columns)
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                headers: Sequence[str] | None = None, title: str | None = None) -> None:
    if title:
        print(title)
    print(format_table(rows, columns, headers))


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    sys.stdout.write("\n")
