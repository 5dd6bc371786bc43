"""`edgekd sweep`: train a teachers x students x strategies x folds x seeds grid, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgekd.cli.args import positive_int
from edgekd.cli.output import print_json, print_table
from edgekd.data import load_windows
from edgekd.data.synthetic import training_problem
from edgekd.errors import EdgekdError
from edgekd.executor import BACKENDS, GROUPING
from edgekd.sweep import load_sweep_config, run_sweep


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train a grid of teachers x students x strategies x folds (resumable)",
                       description="Trains every run of the grid in CONFIG (see models/sweeps/). Teachers train "
                                   "once per fold and seed and are reused; finished runs (metrics.json present) "
                                   "are skipped, so re-running a killed sweep resumes it. Writes OUT/runs/<run>/, "
                                   "OUT/results.csv and OUT/results.json.")
    p.add_argument("config", metavar="CONFIG.toml", help="sweep grid file")
    p.add_argument("--data", metavar="FILE", help="WindowSet .npz (default: the config's 'data', else the "
                                                  "embedded synthetic corpus)")
    p.add_argument("--out", metavar="DIR", help="sweep folder (default: runs/sweep-<config name>)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="local",
                   help="local: one run at a time in this process; ray: one Ray task per run (optional extra)")
    p.add_argument("--grouped", choices=GROUPING, default="auto",
                   help="train same-shape runs of a stage (same student and schedule; any strategy, teacher, fold "
                        "or seed) as one network, each with its own loss, early stopping and run folder; auto: on "
                        "CUDA only (default: %(default)s)")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N", help="torch CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print a JSON summary instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    sweep = load_sweep_config(args.config)
    ws = load_windows(args.data or sweep.data)
    if sweep.train.get("synthetic") and (why := training_problem(ws)):
        raise EdgekdError(f"{args.data or sweep.data or 'the synthetic default corpus'}: {why}")
    out = Path(args.out or Path("runs") / f"sweep-{Path(args.config).stem}")
    summary = run_sweep(sweep, ws, out, backend=args.backend, progress=not args.json, grouping=args.grouped)
    if args.json:
        print_json(summary)
    else:
        print_table([summary], ["runs", "skipped_complete", "trained", "rows", "results_csv"],
                    ["runs", "already done", "trained now", "table rows", "results"])
    return 0
