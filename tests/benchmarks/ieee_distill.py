"""IEEE SPC 2015 distillation study (issue 3): 12-block teacher, 1/2/4-block students, every strategy.

2-fold subject split, several student seeds, one teacher per fold (seed 0). Resumable: complete runs in
OUT are reused. Prints the MAE table (mean +- std over seeds and folds) and writes OUT/summary.json.

    .venv/bin/python tests/benchmarks/ieee_distill.py --out runs/ieee_kd [--epochs 12] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edgekd.atomic import write_json
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.runs import RunConfig
from edgekd.train import train_or_reuse

STRATEGIES = ("scratch", "hard", "soft", "dkd", "feature", "ppg-distill")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/work/shared/data/ieee_spc2015")
    ap.add_argument("--out", default="runs/ieee_kd")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--teacher-epochs", type=int, default=15)
    ap.add_argument("--teacher-blocks", type=int, default=12)
    ap.add_argument("--students", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ws = load_dataset("ieee-spc2015", args.data)
    out = Path(args.out)
    base = dict(batch_size=args.batch_size, lr=args.lr, patience=args.epochs, device="cpu")
    t0 = time.perf_counter()

    def run(cfg: RunConfig, folder: Path) -> dict:
        m = train_or_reuse(ws, cfg, folder)
        print(f"[{time.perf_counter() - t0:6.0f}s] {folder.relative_to(out)}: MAE {m['mae_argmax']:.2f} / "
              f"{m['mae_expectation']:.2f}", flush=True)
        return m

    results: dict[str, list[dict]] = {}
    folds = ("1/2", "2/2")
    for fold in folds:
        tcfg = RunConfig(blocks=args.teacher_blocks, epochs=args.teacher_epochs, fold=fold, seed=0, **base)
        results.setdefault(f"teacher {args.teacher_blocks}b", []).append(run(tcfg, out / f"fold{fold[0]}" / "teacher"))
    for seed in args.seeds:  # seeds outermost: an interrupted study still has whole seeds over both folds
        for fold in folds:
            fdir = out / f"fold{fold[0]}"
            teacher = fdir / "teacher"
            for blocks in args.students:
                for strat in STRATEGIES:
                    cfg = RunConfig(blocks=blocks, epochs=args.epochs, fold=fold, seed=seed, strategy=strat,
                                    teachers=[] if strat == "scratch" else [str(teacher)], **base)
                    m = run(cfg, fdir / f"s{seed}" / f"{blocks}b-{strat}")
                    results.setdefault(f"{blocks}b {strat}", []).append(m)
    rows = []
    for key, ms in results.items():
        a = np.array([m["mae_argmax"] for m in ms])
        e = np.array([m["mae_expectation"] for m in ms])
        rows.append({"model": key, "runs": len(ms), "mae_argmax": f"{a.mean():.2f} +- {a.std():.2f}",
                     "mae_expectation": f"{e.mean():.2f} +- {e.std():.2f}"})
    print_table(rows, title=f"IEEE SPC 2015, 2-fold, seeds {args.seeds} (total {time.perf_counter() - t0:.0f} s)")
    write_json(out / "summary.json", {"args": vars(args), "rows": rows,
                                      "runs": {k: [{"fold": m["fold"], "seed": m["seed"], "mae_argmax": m["mae_argmax"],
                                                    "mae_expectation": m["mae_expectation"]} for m in ms]
                                               for k, ms in results.items()}})
    print(json.dumps({"total_s": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
