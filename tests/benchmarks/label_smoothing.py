"""Gaussian label smoothing (RunConfig.label_sigma) vs one-hot labels, leave-one-subject-out on IEEE SPC 2015.

Each held-out recording trains one model per sigma (same seed, 4 channels = PPG + ACC by default) and is
decoded per window (argmax) and with the causal tracker firmware runs (export/tracker). MAE in BPM is over
all held-out windows. Not a test: it trains 2 x 13 models (about 15 minutes on one CPU thread).

    .venv/bin/python tests/benchmarks/label_smoothing.py --ieee ../shared/data/ieee_spc2015 \\
        [--blocks 2] [--epochs 12] [--in-channels 4] [--sigmas 0 3] [--init-from PRETRAINED_RUN]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.runs import RunConfig
from edgekd.train import train_run

DECODERS = ("argmax", "causal")  # metrics.json reports mae_argmax and mae_causal


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--in-channels", type=int, default=4)
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 3.0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-from", help="pretrained run (e.g. on the synthetic corpus) every fold fine-tunes")
    args = p.parse_args()
    torch.set_num_threads(1)
    ws = load_dataset("ieee-spc2015", args.ieee)
    err = {(s, d): [0.0, 0] for s in args.sigmas for d in DECODERS}
    with tempfile.TemporaryDirectory() as tmp:
        for subject in ws.subjects():
            line = [subject]
            for sigma in args.sigmas:
                cfg = RunConfig(blocks=args.blocks, epochs=args.epochs, in_channels=args.in_channels,
                                fold=f"loso:{subject}", seed=args.seed, device="cpu", label_sigma=sigma,
                                select_on="val_mae", init_from=args.init_from)
                # The run's test side is the held-out subject: its metrics are the fold's MAEs.
                m = train_run(ws, cfg, Path(tmp) / f"{subject}-{sigma}", progress=False)
                for d in DECODERS:
                    err[(sigma, d)][0] += m[f"mae_{d}"] * m["windows"]
                    err[(sigma, d)][1] += m["windows"]
                    line.append(f"sigma {sigma:g} {d} {m[f'mae_{d}']:.2f}")
            print(", ".join(line), flush=True)
    print_table([{"label_sigma": s, "decoder": d, "mae_bpm": v[0] / v[1], "windows": v[1]}
                 for (s, d), v in err.items()],
                title=f"LOSO IEEE SPC 2015, {args.blocks} blocks, {args.in_channels} ch, {args.epochs} epochs"
                      + (f", init from {args.init_from}" if args.init_from else ""))


if __name__ == "__main__":
    main()
