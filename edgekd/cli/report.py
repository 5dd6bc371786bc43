"""`edgekd report`: a study's results tables (and plot) regenerated from its JSON record (models/results/NAME.json);
``publish`` is how every study command writes a record with them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekd.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a study's Markdown tables from its JSON record",
                       description="Renders each study record (models/results/NAME.json, written by `edgekd lodo "
                                   "--table`, `edgekd rank --table` or `edgekd firmware --table`) to NAME.md beside "
                                   "it (and a rank record's Pareto plot to NAME.png), without the runs or artifacts "
                                   "that produced it. With --check, writes nothing and exits 1 when a table on disk "
                                   "differs from what its record renders (a hand-edited or stale table).")
    p.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                   help="study record .json file(s), or a folder: every study record in it (models/results)")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekd.study_report import read_record, render_record, table_path

    rows = []
    for path in _records(args.records):
        record = read_record(path)
        text, table = render_record(record, path), table_path(path)
        if args.check:
            state = "same" if table.is_file() and table.read_bytes() == text.encode() else "differs"
        else:
            publish(record, path, write_record=False)
            state = "written"
        rows.append({"record": str(path), "table": str(table), "state": state})
    if args.json:
        print_json(rows)
    else:
        print_table(rows, title="study tables")
    return 1 if any(r["state"] == "differs" for r in rows) else 0


def _records(paths: list[Path]) -> list[Path]:
    """The record files: each path, or for a folder the study records in it (other JSON files are not records)."""
    import json

    from edgekd.errors import EdgekdError
    from edgekd.study_report import STUDY_SCHEMA

    out = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = []
        for candidate in sorted(path.glob("*.json")):
            try:
                doc = json.loads(candidate.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict) and doc.get("schema") == STUDY_SCHEMA:
                found.append(candidate)
        if not found:
            raise EdgekdError(f"{path}: no study records (JSON files with schema {STUDY_SCHEMA}) in this folder")
        out += found
    return out


def publish(record: dict[str, Any], path: Path, write_record: bool = True) -> Path:
    """Write ``record`` to ``path`` (.json) and what it renders beside it: the tables (NAME.md) and, for a rank
    record, its Pareto plot (NAME.png). Returns the tables' path."""
    from edgekd.atomic import write_json, write_text
    from edgekd.study_report import render_record, table_path

    text = render_record(record, path)  # an incomplete record is refused before anything is written
    if write_record:
        write_json(path, record)
    write_text(table_path(path), text)
    if record["study"] == "rank":
        from edgekd.plots import plot_pareto

        col = record["cost_column"]
        plot_pareto([{**r, "cost": r[col]} for r in record["rows"] if r[col] is not None], record["metric"],
                    record["cost_label"], path.with_suffix(".png"), record.get("limit"))
    return table_path(path)
