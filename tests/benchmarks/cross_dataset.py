"""Cross-dataset generalisation with the real-data recipe: IEEE SPC 2015 -> BIDMC and BIDMC -> IEEE SPC 2015.

PPG only (BIDMC has no accelerometer). A model pretrained on the synthetic corpus (PPG only, --init-from) is
fine-tuned with Gaussian labels on every window of one dataset and tested on every window of the other (the
test set is one held-out "subject" of a joined WindowSet, so edgekd.train's own loso fold does the split).
MAE per window (argmax), causal tracker, spectral-fused tracker; and the no-learning spectral trackers.

    edgekd data synth --subjects 60 --minutes 6 --out runs/syn60.npz   # then keep its PPG channel only:
    .venv/bin/python -c "from edgekd.windowset import WindowSet as W; W.load('runs/syn60.npz').ppg_only().save('runs/syn60-ppg.npz')"
    edgekd train --data runs/syn60-ppg.npz --blocks 2 --label-sigma 3 --epochs 20 --fold holdout:0.1 --out runs/pre-b2-ppg
    .venv/bin/python tests/benchmarks/cross_dataset.py --ieee ../shared/data/ieee_spc2015 --bidmc ../shared/data/bidmc \\
        --init-from runs/pre-b2-ppg --out runs/cross
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from edgekd.baseline import run_baseline
from edgekd.checkpoint import model_spec
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.fusion import spectral_track
from edgekd.runs import RunConfig
from edgekd.train import train_or_reuse
from edgekd.windowset import WindowSet, concat

TEST = "__test__"


def _joined(train: WindowSet, test: WindowSet) -> WindowSet:
    a, b = train.ppg_only(), test.ppg_only()
    b = WindowSet(x=b.x, hr=b.hr, subject=np.full(len(b), TEST), recording=b.recording, channels=b.channels)
    return concat([a, b])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--bidmc", required=True, help="BIDMC folder")
    p.add_argument("--init-from", required=True, help="pretrained PPG-only run")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    sets = {"ieee": load_dataset("ieee-spc2015", args.ieee), "bidmc": load_dataset("bidmc", args.bidmc)}
    spec = model_spec(args.init_from)
    rows = []
    for src, dst in (("ieee", "bidmc"), ("bidmc", "ieee")):
        folder = Path(args.out) / f"{src}2{dst}-{spec['blocks']}b"
        cfg = RunConfig(blocks=spec["blocks"], in_channels=1, fold=f"loso:{TEST}", epochs=args.epochs,
                        patience=args.epochs, label_sigma=3.0, select_on="val_mae", init_from=args.init_from,
                        device="cpu")
        m = train_or_reuse(_joined(sets[src], sets[dst]), cfg, folder)
        test = sets[dst].ppg_only()
        rows.append({"train -> test": f"{src} -> {dst}", "windows": m["windows"], "mae_argmax": m["mae_argmax"],
                     "mae_causal": m["mae_causal"], "mae_fused": m["mae_fused"],
                     "spectral_peak": run_baseline(test)[1]["mae"],
                     "spectral_hmm": float(np.abs(spectral_track(test) - test.hr).mean())})
    print_table(rows, title=f"cross-dataset, PPG only, {spec['blocks']} blocks pretrained on the synthetic corpus, "
                            f"{args.epochs} epochs, MAE in BPM")


if __name__ == "__main__":
    main()
