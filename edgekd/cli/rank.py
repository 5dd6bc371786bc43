"""`edgekd rank`: Pareto front of MAE against a deployment cost; --budget marks what fits."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.budget import DEFAULT_MCU_TARGETS, load_budget
from edgekd.cli.args import table_file
from edgekd.cli.output import print_json, print_table
from edgekd.cli.report import check_table, publish_table
from edgekd.rank import COSTS, LIMIT_COLUMNS, rank, read_sources
from edgekd.sweep import MAE_METRICS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rank", help="Pareto front of student MAE against size, arena or latency",
                       description="Averages each (teacher, student, strategy) over folds and seeds (of a "
                                   "sweep's results) or over held-out data sets and seeds (of `edgekd lodo` records) "
                                   "and ranks them by a deployment cost: weights (INT8 weight bytes, estimated from the "
                                   "architecture), flatbuffer (card.json), flash (the linked image of a firmware "
                                   "record), arena (card.json), mcu-latency (MACs x cycles/MAC / clock), latency "
                                   "(benchmark records) or instructions (firmware records); with --firmware "
                                   "TARGET, measured firmware figures replace the estimates. With --out, writes "
                                   "OUT/rank.json and OUT/pareto_<cost>.png; with --table, a study record that `edgekd "
                                   "report` renders.")
    p.add_argument("results", metavar="RESULTS", nargs="+", type=Path,
                   help="results.csv / results.json or a sweep folder; or leave-one-dataset-out study records "
                        "(models/results/lodo-*.json, whose mae_fused is the decoder chosen nested)")
    p.add_argument("--bench", metavar="DIR", help="folder of artifacts (card.json) and benchmark records")
    p.add_argument("--cost", choices=list(COSTS), default="weights", help="the x axis (default weights)")
    p.add_argument("--budget", metavar="FILE", help="budget TOML: adds 'fits' (and its MCU for mcu-latency)")
    p.add_argument("--mcu", metavar="NAME", help="MCU of edgekd/mcu_targets.toml for mcu-latency")
    p.add_argument("--runtime", default="tflm", help="benchmark runtime for --cost latency (default tflm)")
    p.add_argument("--firmware", metavar="TARGET",
                   help="use the `edgekd firmware --target TARGET` records under --bench: the linked image "
                        "(--cost flash), the target's arena, measured instructions for mcu-latency and --cost "
                        "instructions")
    p.add_argument("--metric", default="mae_argmax", choices=MAE_METRICS,
                   help="MAE decoding to rank by (default mae_argmax, WildPPG's; mae_causal / mae_fused: "
                        "the firmware's tracker without / with spectral fusion)")
    p.add_argument("--out", metavar="DIR", help="write rank.json and pareto_<cost>.png here")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="write the ranking as a study record NAME.json with its table NAME.md and plot NAME.png "
                        "(`edgekd report NAME.json` regenerates both)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_table(args, "rank")  # never over an input record
    budget = load_budget(args.budget) if args.budget else None
    sources, kind = read_sources(args.results)
    rows = rank(sources, args.cost, args.metric, args.bench, budget, args.mcu, args.runtime,
                DEFAULT_MCU_TARGETS, args.firmware)
    col, label = COSTS[args.cost]
    limit = next((budget.limits[k] for k, c in LIMIT_COLUMNS.items() if c == col and k in budget.limits),
                 None) if budget else None
    if args.out:
        from edgekd.atomic import write_json
        from edgekd.plots import plot_pareto

        out = Path(args.out)
        write_json(out / "rank.json", rows)
        plot_pareto([{**r, "cost": r[col]} for r in rows if r[col] is not None], args.metric, label,
                    out / f"pareto_{args.cost}.png", limit)
    if args.table:
        from statistics import mean

        publish_table(args, "rank", sources=[str(p) for p in args.results], source_kind=kind, cost=args.cost,
                      cost_column=col, cost_label=label, metric=args.metric, firmware=args.firmware,
                      budget=budget.name if budget else None, limit=limit, rows=rows,
                      hmm=mean(r["mae_hmm"] for r in sources) if kind == "lodo" else None)
    if args.json:
        print_json(rows)
        return 0
    columns = ["name", args.metric, f"{args.metric}_std", "runs", col, "pareto"] + (["fits", "unchecked"] if budget else [])
    print_table(rows, columns, None, title=f"ranked by {label}" + (f"; budget {budget.name}" if budget else ""))
    return 0
