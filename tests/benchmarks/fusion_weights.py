"""Spectral fusion weight, chosen without looking at the held-out subject (nested leave-one-subject-out).

For every model of a leave-one-subject-out folder (what tests/benchmarks/loso_recipe.py writes: OUT/SUBJECT/MODEL),
the causal tracker's MAE on that subject's windows is computed for each fusion weight. The nested number picks,
for each held-out subject, the weight with the lowest error over the OTHER subjects (each of them held out of
its own model), so no subject's labels choose its own weight. Also prints the no-learning rows: the spectral
evidence alone through the same tracker (`edgekd baseline --method hmm`) and the peak tracker.

    .venv/bin/python tests/benchmarks/fusion_weights.py --ieee ../shared/data/ieee_spc2015 --loso runs/loso-recipe
"""

from __future__ import annotations

import argparse
import re
from statistics import mean, stdev
from pathlib import Path

import numpy as np
import torch

from edgekd.baseline import run_baseline
from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.evaluate import predict_logits
from edgekd.fusion import fuse, plain, spectral_evidence, spectral_track
from edgekd.runs import is_complete
from edgekd.tracking import decode_recordings

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--loso", required=True, help="leave-one-subject-out folder: LOSO/SUBJECT/MODEL runs")
    args = p.parse_args()
    torch.set_num_threads(1)
    ws = load_dataset("ieee-spc2015", args.ieee)
    evidence = spectral_evidence(ws)
    root = Path(args.loso)
    subjects = sorted(d.name for d in root.iterdir() if d.is_dir())
    names = sorted({m.name for s in subjects for m in (root / s).iterdir() if is_complete(m)})
    n = len(ws)
    rows = [{"model": "spectral peak tracker (no learning)", "folds": len(subjects),
             "mae_nested": run_baseline(ws)[1]["mae"]},
            {"model": "spectral evidence + causal tracker (no learning)", "folds": len(subjects),
             "mae_nested": float(np.abs(spectral_track(ws) - ws.hr).mean())}]
    for name in names:
        if not all(is_complete(root / s / name) for s in subjects):
            print(f"skipping {name}: not complete for every subject")
            continue
        err = np.zeros((len(subjects), len(WEIGHTS)))  # summed absolute error per held-out subject and weight
        for i, subject in enumerate(subjects):
            idx = np.flatnonzero(ws.subject == subject)
            model = load_model(root / subject / name)
            logits = predict_logits(model, ws.x[idx, :model.in_channels])
            for j, w in enumerate(WEIGHTS):
                fused = fuse(logits, evidence[idx], plain(1.0, w))  # a = 1, the weight swept
                err[i, j] = np.abs(decode_recordings(fused, ws.recording[idx], "causal") - ws.hr[idx]).sum()
        chosen = [int(np.argmin(err.sum(axis=0) - err[i])) for i in range(len(subjects))]
        row = {"model": name, "folds": len(subjects)}
        row.update({f"w={w:g}": err[:, j].sum() / n for j, w in enumerate(WEIGHTS)})
        row["mae_nested"] = sum(err[i, c] for i, c in enumerate(chosen)) / n
        row["weights_chosen"] = " ".join(f"{WEIGHTS[c]:g}" for c in chosen)
        rows.append(row)
    cols = ["model", "folds"] + [f"w={w:g}" for w in WEIGHTS] + ["mae_nested", "weights_chosen"]
    print_table(rows, cols, title=f"causal tracker MAE (BPM) over {n} held-out windows by fusion weight "
                                  f"(w=0: the model alone); nested = weight chosen on the other subjects")
    # Seeds: runs named MODEL-sS (loso_recipe.py --seeds) are grouped with MODEL (seed 0).
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if "w=0" in r:
            groups.setdefault(re.sub(r"-s\d+$", "", r["model"]), []).append(r)
    summary = []
    for name, rs in groups.items():
        if len(rs) > 1:
            row = {"model": name, "seeds": len(rs)}
            for key, label in (("w=0", "causal"), ("w=4", "fused_w4"), ("mae_nested", "fused_nested")):
                vals = [r[key] for r in rs]
                row[label] = f"{mean(vals):.2f} +- {stdev(vals):.2f}"
            summary.append(row)
    if summary:
        print()
        print_table(summary, title="mean +- std over seeds (MAE in BPM)")


if __name__ == "__main__":
    main()
