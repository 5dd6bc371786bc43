"""`edgekd scaling`: fit MAE = a exp(-b x) + c per teacher and strategy (x = student blocks); plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.cli.args import positive_float, table_file
from edgekd.cli.output import print_json, print_table
from edgekd.cli.report import check_table, publish_table
from edgekd.scaling import block_axis_rows, fit_groups, public_rows
from edgekd.sweep import MAE_METRICS, read_results


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scaling", help="fit the MAE scaling law over student size; heat map of teacher x student",
                       description="Fits MAE = a*exp(-b*x) + c (x = student blocks) per teacher and strategy over "
                                   "every run (folds and seeds are points), with R^2 and standard errors; "
                                   "--predict X gives the predicted MAE of an X-block student with a 95% "
                                   "prediction interval. With --out, writes scaling.png (curves over the points), "
                                   "heatmap.png (the paper's Figure 1) and scaling.json; with --table, a study "
                                   "record that `edgekd report` renders.")
    p.add_argument("results", metavar="RESULTS", help="results.csv / results.json, or a sweep folder")
    p.add_argument("--predict", type=positive_float, metavar="X", help="student size (blocks) to predict the MAE of")
    p.add_argument("--metric", default="mae_argmax", choices=MAE_METRICS,
                   help="MAE decoding (default mae_argmax, WildPPG's; mae_causal / mae_fused: "
                        "the firmware's tracker without / with spectral fusion)")
    p.add_argument("--heatmap-strategy", default=None, metavar="NAME",
                   help="strategy shown in the heat map (default: soft if present, else the first KD one)")
    p.add_argument("--out", metavar="DIR", help="write scaling.json, scaling.png and heatmap.png here")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="write the fits as a study record NAME.json with its table NAME.md and plots NAME.png "
                        "(curves) and NAME-heatmap.png (`edgekd report NAME.json` regenerates them)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_table(args, "scaling")
    rows = block_axis_rows(read_results(args.results))  # TCN students have no block axis: rank compares them
    fits = fit_groups(rows, args.metric, args.predict)
    kd = sorted({r["strategy"] for r in rows if r.get("teacher") is not None})
    strategy = args.heatmap_strategy or ("soft" if "soft" in kd else (kd[0] if kd else None))
    if args.out:
        from edgekd.atomic import write_json
        from edgekd.plots import plot_heatmap, plot_scaling

        out = Path(args.out)
        write_json(out / "scaling.json", public_rows(fits))
        plot_scaling(rows, fits, args.metric, out / "scaling.png")
        if strategy:
            plot_heatmap(rows, args.metric, strategy, out / "heatmap.png")
    if args.table:
        keep = ("teacher", "student", "strategy", "fold", "seed", "role", args.metric)
        publish_table(args, "scaling", metric=args.metric, heatmap_strategy=strategy, fits=public_rows(fits),
                      points=[{k: r.get(k) for k in keep} for r in rows])
    if args.json:
        print_json(public_rows(fits))
        return 0
    columns = ["teacher", "strategy", "points", "a", "a_se", "b", "b_se", "c", "c_se", "r2"]
    headers = ["teacher", "strategy", "runs", "a", "±a", "b", "±b", "c", "±c", "R²"]
    if args.predict is not None:
        columns += ["predicted_mae", "pi_low", "pi_high"]
        headers += [f"MAE@{args.predict:g}", "95% low", "95% high"]
    print_table(public_rows(fits), columns, headers, title="MAE = a*exp(-b*x) + c, x = student blocks")
    for f in fits:
        if "error" in f:
            print(f"teacher {f['teacher']} {f['strategy']}: not fitted: {f['error']}")
    return 0
