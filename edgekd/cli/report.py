"""`edgekd report`: a study's results tables regenerated from its JSON record (models/results/NAME.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a study's Markdown tables from its JSON record",
                       description="Renders each study record (models/results/NAME.json, written by a study "
                                   "such as `edgekd lodo --table`) to NAME.md beside it, without the runs that "
                                   "produced it. With --check, writes nothing and exits 1 when a table on disk "
                                   "differs from what its record renders (a hand-edited or stale table).")
    p.add_argument("records", nargs="+", type=Path, metavar="RECORD", help="study record .json file(s)")
    p.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekd.atomic import write_text
    from edgekd.study_report import render, table_path

    rows = []
    for record in args.records:
        text, table = render(record), table_path(record)
        if args.check:
            state = "same" if table.is_file() and table.read_bytes() == text.encode() else "differs"
        else:
            write_text(table, text)
            state = "written"
        rows.append({"record": str(record), "table": str(table), "state": state})
    if args.json:
        print_json(rows)
    else:
        print_table(rows, title="study tables")
    return 1 if any(r["state"] == "differs" for r in rows) else 0
