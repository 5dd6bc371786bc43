"""`edgekd data prepare|info|synth`: turn recordings into a WindowSet file, describe one, or make a synthetic one."""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.cli.args import non_negative_int, positive_float, positive_int, table_file
from edgekd.cli.output import print_json, print_table
from edgekd.errors import EdgekdError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare, inspect or synthesise WindowSet files (.npz)",
                       description="Turn recordings into 8 s / 25 Hz windows (prepare), describe a WindowSet "
                                   "file (info), check that labels line up with the signal (check), join data sets "
                                   "(merge), or generate the synthetic PPG + ACC corpus (synth).")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    from edgekd.data import LOADERS

    pr = dsub.add_parser("prepare", help="load a dataset's recordings and write a WindowSet .npz",
                         description="Read one dataset's recordings, preprocess them (band-pass 0.5-4 Hz, 25 Hz, "
                                     "8 s windows / 2 s stride, z-scored PPG) and write FILE.npz + FILE.json.",
                         epilog="Loader options (--option KEY=VALUE): ieee-spc2015, bidmc, ppg-dalia, galaxyppg: "
                                "none; wildppg: location=wrist|head|sternum|ankle; csv: ppg_column, fs, "
                                "acc_columns=x,y,z, acc_scale, hr_column or labels_file [labels_column], "
                                "time_column.")
    pr.add_argument("--dataset", required=True, choices=sorted(LOADERS), help="which source layout to read")
    pr.add_argument("--root", required=True, type=Path, help="dataset folder (csv: a file or folder)")
    pr.add_argument("--out", required=True, type=Path, help="output WindowSet file (.npz)")
    pr.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="loader option (repeatable); see below")
    pr.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    pr.set_defaults(func=run_prepare)

    inf = dsub.add_parser("info", help="describe a WindowSet file", description="Counts, HR histogram, subjects "
                          "and provenance (source files, preprocessing, dropped windows) of a WindowSet .npz.")
    inf.add_argument("file", type=Path, help="WindowSet .npz")
    inf.add_argument("--json", action="store_true", help="print JSON instead of tables")
    inf.set_defaults(func=run_info)

    mg = dsub.add_parser("merge", help="join WindowSets of several data sets into one",
                         description="Join WindowSet files of different data sets into one: each window keeps "
                                     "its data set (for --fold lodo:DATASET and per-data-set reports), subject and "
                                     "recording ids become DATASET/ID, a PPG-only set gets all-zero ACC channels "
                                     "when another set has ACC, and the provenance of every input is kept.")
    mg.add_argument("files", nargs="+", type=Path, metavar="FILE.npz", help="WindowSet files (two or more)")
    mg.add_argument("--out", required=True, type=Path, help="output WindowSet file (.npz)")
    mg.add_argument("--names", metavar="A,B,...",
                    help="data-set name of each input, in order (default: the loader's, e.g. two csv imports "
                         "need distinct names)")
    mg.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    mg.set_defaults(func=run_merge)

    ck = dsub.add_parser("check", help="do the labels line up with the signal? (counts and label alignment)",
                         description="For each data set: what it holds (windows, subjects, recordings, dropped "
                                     "windows, HR range, activities) and how often its labels are close to each "
                                     "window's spectral peak, against the same labels moved later in their recording "
                                     "and another subject's median HR (with ACC: on the quietest windows; the "
                                     "constants are edgekd/label_check.py's). A SOURCE is a WindowSet .npz, or "
                                     "NAME=FOLDER: raw recordings read by the loader NAME (its preparation is timed).")
    ck.add_argument("sources", nargs="+", metavar="SOURCE",
                    help="FILE.npz or NAME=FOLDER (e.g. ieee-spc2015=../shared/data/ieee_spc2015)")
    ck.add_argument("--table", type=table_file, metavar="NAME.md",
                    help="write a study record NAME.json and its table NAME.md (`edgekd report` regenerates it)")
    ck.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ck.set_defaults(func=run_check)

    sy = dsub.add_parser("synth", help="write the deterministic synthetic PPG + ACC corpus",
                         description="Generate N subjects x M minutes of synthetic wrist PPG + 3-axis ACC (the "
                                     "embedded default corpus) and write it as a WindowSet .npz.")
    sy.add_argument("--subjects", type=positive_int, default=12, help="number of subjects (default 12)")
    sy.add_argument("--minutes", type=positive_float, default=6.0, help="minutes per subject (default 6)")
    sy.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    sy.add_argument("--out", required=True, type=Path, help="output WindowSet file (.npz)")
    sy.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    sy.set_defaults(func=run_synth)


def parse_options(pairs: list[str], loader: Callable[..., Any], dataset: str) -> dict[str, Any]:
    """KEY=VALUE strings -> keyword arguments, checked against the loader's signature."""
    allowed = [n for n in inspect.signature(loader).parameters if n not in ("root", "progress")]
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise EdgekdError(f"--option '{pair}' must look like KEY=VALUE")
        if key not in allowed:
            raise EdgekdError(f"dataset '{dataset}' has no option '{key}'"
                              + (f"; options: {', '.join(allowed)}" if allowed else " (it takes none)"))
        try:
            out[key] = json.loads(value)  # numbers stay numbers
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], (dict, list)) or out[key] is None:
            out[key] = value
    return out


def _loader(dataset: str) -> Callable[..., Any]:
    from edgekd.data import LOADERS

    module, func = LOADERS[dataset].split(":")
    return getattr(importlib.import_module(module), func)


def _summary_row(ws: Any, out: Path, seconds: float | None = None) -> dict[str, Any]:
    dropped = ws.provenance.get("dropped_windows", {})
    row = {"file": str(out), "dataset": ws.provenance.get("dataset"), "windows": len(ws),
           "subjects": len(ws.subjects()), "recordings": len(set(ws.recording.tolist())),
           "channels": ",".join(ws.channels), "dropped": int(sum(dropped.values()))}
    if seconds is not None:
        row["seconds"] = round(seconds, 2)
    return row


def run_prepare(args: argparse.Namespace) -> int:
    from edgekd.data import load_dataset

    options = parse_options(args.option, _loader(args.dataset), args.dataset)
    t0 = time.perf_counter()
    ws = load_dataset(args.dataset, args.root, progress=not args.json, **options)
    ws.save(args.out)
    row = _summary_row(ws, args.out, time.perf_counter() - t0)
    prov = ws.provenance
    if args.json:
        print_json({**row, "dropped_windows": prov.get("dropped_windows", {}),
                    "skipped_recordings": prov.get("skipped_recordings", {})})
        return 0
    print_table([row], ["file", "dataset", "windows", "subjects", "recordings", "channels", "dropped", "seconds"])
    drops = [{"reason": k, "windows": v} for k, v in prov.get("dropped_windows", {}).items() if v]
    if drops:
        print()
        print_table(drops, title="dropped windows")
    for src, why in prov.get("skipped_recordings", {}).items():
        print(f"skipped {src}: {why}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from edgekd.windowset import WindowSet

    ws = WindowSet.load(args.file)
    summary = ws.summary()
    if args.json:
        print_json({"file": str(args.file), "summary": summary, "provenance": ws.provenance})
        return 0
    print_table([_summary_row(ws, args.file)], ["file", "dataset", "windows", "subjects", "recordings", "channels",
                                                "dropped"])
    print(f"\nHR: mean {summary['hr_mean']:.1f}, std {summary['hr_std']:.1f}, range {summary['hr_min']:.1f}-"
          f"{summary['hr_max']:.1f} BPM" if len(ws) else "\nHR: no windows")
    hist = [{"bpm": k, "windows": v, "bar": "#" * round(40 * v / max(1, max(summary["hr_histogram"].values())))}
            for k, v in summary["hr_histogram"].items() if v]
    print()
    print_table(hist, title="HR histogram")
    print()
    print_table([{"subject": s, "windows": c} for s, c in summary["windows_per_subject"].items()], title="subjects")
    if len(summary["datasets"]) > 1:
        print()
        print_table([{"dataset": d, "windows": c} for d, c in summary["datasets"].items()], title="data sets")
    if summary.get("activities"):
        print()
        print_table([{"activity": a, "windows": c} for a, c in summary["activities"].items()], title="activities")
    prov = ws.provenance
    print("\nprovenance:")
    for key in ("dataset", "root", "options", "preprocessing", "dropped_windows", "skipped_recordings",
                "parameters", "edgekd_version"):
        if prov.get(key) not in (None, {}, []):
            print(f"  {key}: {json.dumps(prov[key])}")
    if prov.get("source_files"):
        print(f"  source_files: {len(prov['source_files'])} (sha256 in {args.file.with_suffix('.json')})")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    import numpy as np

    from edgekd.windowset import WindowSet, merge

    sets = {str(f): WindowSet.load(f) for f in args.files}
    if args.names is not None:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != len(sets) or not all(names):
            raise EdgekdError(f"--names: give one non-empty name per input ({len(sets)}), got {args.names!r}")
        for (label, s), name in zip(sets.items(), names):
            if len(s.datasets()) > 1:
                raise EdgekdError(f"{label}: holds several data sets ({', '.join(s.datasets())}); cannot rename it")
            s.dataset = np.full(len(s), name)
    ws = merge(sets)
    ws.save(args.out)
    rows = [{"dataset": d, "windows": c, "subjects": len(set(ws.subject[ws.dataset == d].tolist()))}
            for d, c in ws.summary()["datasets"].items()]
    if args.json:
        print_json({**_summary_row(ws, args.out), "datasets": rows,
                    "acc_zero_filled": ws.provenance["acc_zero_filled"]})
        return 0
    print_table([_summary_row(ws, args.out)], ["file", "dataset", "windows", "subjects", "recordings", "channels"])
    print()
    print_table(rows, title="per data set")
    for label in ws.provenance["acc_zero_filled"]:
        print(f"{label}: no ACC, zero-filled")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from edgekd.cli.report import check_table, publish_table
    from edgekd.data import LOADERS, load_dataset
    from edgekd.label_check import SHIFTS, TOLERANCE_BPM, check_labels, settings, shift_label
    from edgekd.windowset import WindowSet

    check_table(args, "data")  # never over an input record
    rows = []
    for source in args.sources:
        name, sep, folder = source.partition("=")
        if not sep and not source.endswith(".npz"):
            raise EdgekdError(f"{source}: give a WindowSet .npz or NAME=FOLDER (NAME one of {', '.join(sorted(LOADERS))})")
        if sep and name not in LOADERS:
            raise EdgekdError(f"{source}: unknown loader '{name}' (known: {', '.join(sorted(LOADERS))})")
        if sep and not folder:
            raise EdgekdError(f"{source}: give the folder of the recordings after '='")
        t0 = time.perf_counter()
        ws = load_dataset(name, Path(folder), progress=not args.json) if sep else WindowSet.load(source)
        seconds = round(time.perf_counter() - t0, 2) if sep else None
        rows.append({**check_labels(ws), "source": source, "prepare_s": seconds})
    if args.table:
        publish_table(args, "data", **settings(), rows=rows)
    if args.json:
        print_json(rows)
        return 0
    flat = [{**r, **{f"shifted_{k}": r["shifted"][str(k)] for k in SHIFTS}} for r in rows]
    print_table(flat, ["dataset", "windows", "subjects", "recordings", "checked_windows", "aligned",
                       *(f"shifted_{k}" for k in SHIFTS), "other_subject"],
                ["data set", "windows", "subjects", "recordings", "checked", f"peak within {TOLERANCE_BPM:g} BPM",
                 *map(shift_label, SHIFTS), "other subject"])
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from edgekd.data.synthetic import generate

    if args.subjects < 1 or args.minutes * 60 < 8:
        raise EdgekdError("synth needs --subjects >= 1 and --minutes long enough for one 8 s window")
    t0 = time.perf_counter()
    ws = generate(subjects=args.subjects, minutes=args.minutes, seed=args.seed)
    ws.save(args.out)
    row = _summary_row(ws, args.out, time.perf_counter() - t0)
    if args.json:
        print_json(row)
    else:
        print_table([row], ["file", "dataset", "windows", "subjects", "channels", "seconds"])
    return 0
