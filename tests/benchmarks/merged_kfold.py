"""Subject-independent K-fold on the merged set (IEEE SPC + wrist-exercise + BIDMC): the within-distribution
number to set beside leave-one-dataset-out (edgekd lodo). Every subject of every data set is held out once;
training sees the other subjects of all three sets, so the people are new but the device and the motions
are not. Scored per data set with the spectral HMM, the decoder recorded as the shipped default
(edgekd.fusion.FusionConfig()) and the plain fusion a=1, w=4 (the default before the switch).
Runs are reused when a complete run of the same resolved config and data exists (folder = config hash).

    .venv/bin/python tests/benchmarks/merged_kfold.py --out runs/merged-kfold [--folds 5] [--blocks 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.evaluate import predict_logits
from edgekd.fusion import SPECTRUM_ONLY, FusionConfig, fuse, plain, spectral_evidence, window_motion
from edgekd.runs import RunConfig, resolve_fold
from edgekd.sweep import run_name
from edgekd.tracking import track_with_confidence
from edgekd.train import train_or_reuse
from edgekd.windowset import identity_hash, merge

SETS = {"ieee-spc2015": "ieee_spc2015", "wrist-exercise": "wrist_exercise", "bidmc": "bidmc"}
DECODERS = {"hmm": SPECTRUM_ONLY, "previous default a=1 w=4": plain(1.0, 4.0), "shipped default": FusionConfig()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared/data")
    p.add_argument("--out", default="runs/merged-kfold")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--table", type=Path, help="also write the Markdown table here (the README links models/results/)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    full = merge({name: load_dataset(name, Path(args.shared) / folder) for name, folder in SETS.items()})
    evidence, motion = spectral_evidence(full), window_motion(full)
    logits = np.zeros((len(full), 180), np.float32)
    held = np.zeros(len(full), bool)
    for k in range(1, args.folds + 1):
        cfg = RunConfig(blocks=args.blocks, in_channels=4, epochs=args.epochs, fold=f"{k}/{args.folds}",
                        device="cpu")
        folder = out / "runs" / run_name(cfg, None, identity_hash(full))
        train_or_reuse(full, cfg, folder)
        test = resolve_fold(full, cfg.fold, cfg.split_seed).test
        logits[test] = predict_logits(load_model(folder), full.x[test])
        held[test] = True
    assert held.all(), "every window is held out by exactly one fold"
    rows = []
    for name in SETS:
        idx = full.dataset == name
        row = {"data set": name, "windows": int(idx.sum()), "subjects": len(set(full.subject[idx]))}
        for label, cfg in DECODERS.items():
            bpm, _ = track_with_confidence(fuse(logits[idx], evidence[idx], cfg, motion[idx]), full.recording[idx])
            row[label] = float(np.abs(bpm - full.hr[idx]).mean())
        rows.append(row)
    print_table(rows, title=f"{args.folds}-fold subject-independent CV on the merged set, MAE in BPM")
    out.mkdir(parents=True, exist_ok=True)
    (out / "merged_kfold.json").write_text(json.dumps({"settings": vars(args), "rows": rows,
                                                       "shipped": str(FusionConfig())}, indent=2, default=str))
    cols = list(DECODERS)
    lines = [f"{args.folds}-fold subject-independent cross-validation on the merged set ({args.blocks}-block PPG + ACC "
             f"student, {args.epochs} epochs, RunConfig defaults; every subject held out once, the other "
             f"subjects of all three sets in training). MAE in BPM. Shipped default decoder: `{FusionConfig()}`. Regenerate: "
             f"`.venv/bin/python tests/benchmarks/merged_kfold.py --out {args.out} --folds {args.folds} "
             f"--blocks {args.blocks} --epochs {args.epochs}{f' --table {args.table}' if args.table else ''}`.", "",
             "| data set | windows | subjects | " + " | ".join(cols) + " |", "|---|---:|---:|" + "---:|" * len(cols)]
    lines += [f"| {r['data set']} | {r['windows']} | {r['subjects']} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |"
              for r in rows]
    for target in (out / "merged_kfold.md", args.table):
        if target:
            target.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
