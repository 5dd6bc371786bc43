"""`edgekd report`: a study's results tables (and plot) regenerated from its JSON record (models/results/NAME.json);
``publish`` is how every study command writes a record with them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="regenerate a study's Markdown tables from its JSON record",
                       description="Renders each study record (models/results/NAME.json, written by the --table "
                                   "of `edgekd distill`, `lodo`, `rank`, `firmware`, `bench --table3`, `scaling` or "
                                   "`data check`) "
                                   "to NAME.md beside it, with its plots (a rank's NAME.png; a scaling's NAME.png and "
                                   "NAME-heatmap.png), without the runs or artifacts that produced it. With --check, "
                                   "writes nothing and exits 1 when a table on disk differs from what its record "
                                   "renders (a hand-edited or stale table; plots are not compared).")
    p.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                   help="study record .json file(s), or a folder: every study record in it (models/results)")
    p.add_argument("--check", action="store_true",
                   help="compare the tables instead of writing (plots are not compared); exit 1 on a difference")
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
    from edgekd.errors import EdgekdError
    from edgekd.study_report import STUDY_SCHEMA, record_kind

    out = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = [c for c in sorted(path.glob("*.json")) if record_kind(c)]  # unreadable: maybe a record cut short
        if not found:
            raise EdgekdError(f"{path}: no study records (JSON files with schema {STUDY_SCHEMA}) in this folder")
        out += found
    return out


def publish(record: dict[str, Any], path: Path, write_record: bool = True) -> Path:
    """Write ``record`` to ``path`` (.json) and what it renders beside it: the tables (NAME.md) and its plots, if
    its kind has any (``_plots``). Returns the tables' path."""
    from edgekd.atomic import write_json, write_text
    from edgekd.study_report import render_record, table_path

    if write_record:
        check_destination(path, record["study"])
    text = render_record(record, path)  # an incomplete record is refused before anything is written
    _plots(record, path)()  # the plots next: a record they cannot be drawn from leaves no table or record behind
    if write_record:
        write_json(path, record)
    write_text(table_path(path), text)
    return table_path(path)


def check_table(args: argparse.Namespace, study: str) -> None:
    """Before a study's work: refuse a --table whose record would replace a file that is not one of ``study``."""
    if args.table:
        check_destination(args.table.with_suffix(".json"), study)


def publish_table(args: argparse.Namespace, study: str, **fields: Any) -> None:
    """Write a ``study`` record of ``fields`` (and the command as typed) to --table's NAME.json, with what it
    renders beside it."""
    import shlex

    from edgekd.study_report import STUDY_SCHEMA

    publish({"schema": STUDY_SCHEMA, "study": study, "command": shlex.join(["edgekd", *args.argv]), **fields},
            args.table.with_suffix(".json"))


def check_destination(path: Path, study: str) -> None:
    """Refuse to write a ``study`` record over a file that is not one (a study's input, a record of another study,
    anything else); a command calls it before its work, ``publish`` again before writing."""
    from edgekd.errors import EdgekdError
    from edgekd.study_report import record_kind

    if not path.exists():  # a new record: what it writes beside it must be new too
        taken = [p for p in _outputs(path, study) if p.exists()]
        if taken:
            raise EdgekdError(f"{taken[0]}: exists without its record {path.name}; choose another --table name")
        return
    try:
        kind = record_kind(path)
    except EdgekdError:  # not JSON: not a record either
        kind = None
    if kind != study:
        raise EdgekdError(f"{path}: exists and is not a {study} record; choose another --table name")


def _outputs(path: Path, study: str) -> list[Path]:
    """The files a ``study`` record at ``path`` renders beside it."""
    from edgekd.study_report import table_path

    plots = {"rank": [path.with_suffix(".png")],
             "scaling": [path.with_suffix(".png"), path.with_name(f"{path.stem}-heatmap.png")]}
    return [table_path(path), *plots.get(study, [])]


def _plots(record: dict[str, Any], path: Path) -> Callable[[], None]:
    """What draws a record's plots (a rank's Pareto front NAME.png; a scaling's curves NAME.png and heat map
    NAME-heatmap.png; nothing for other kinds), its inputs checked before anything is written."""
    from edgekd import plots
    from edgekd.errors import EdgekdError

    try:
        if record["study"] == "rank":
            col = record["cost_column"]
            points = [{**r, "cost": float(r[col])} for r in record["rows"] if r[col] is not None]
            return lambda: plots.plot_pareto(points, record["metric"], record["cost_label"], path.with_suffix(".png"),
                                             record.get("limit"))
        if record["study"] == "scaling":
            metric, rows, fits, strategy = (record["metric"], record["points"], record["fits"],
                                            record.get("heatmap_strategy"))
            if not all(isinstance(r.get("student"), int) for r in rows):
                raise ValueError("a point without an integer student size")

            def draw() -> None:
                try:
                    plots.plot_scaling(rows, fits, metric, path.with_suffix(".png"))
                    if strategy:
                        plots.plot_heatmap(rows, metric, strategy, path.with_name(f"{path.stem}-heatmap.png"))
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    raise EdgekdError(f"{path}: incomplete scaling record ({type(exc).__name__}: {exc})") from None
            return draw
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgekdError(f"{path}: incomplete {record['study']} record ({type(exc).__name__}: {exc})") from None
    return lambda: None
