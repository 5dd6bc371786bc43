"""The full real-data recipe, leave-one-subject-out on IEEE SPC 2015: pretrained teacher -> distilled students.

Per held-out subject: the teacher (PPG + ACC) starts from a run pretrained on the synthetic corpus and is
fine-tuned on the other subjects; each student starts from its own pretrained run and is trained from
scratch (labels only) or distilled from that fold's teacher. All with Gaussian label smoothing. MAE in BPM
over all held-out windows, per window (argmax) and with the causal tracker. Resumable: complete runs in
OUT are reused, so several processes with different --subjects can share OUT.

    edgekd data synth --subjects 60 --minutes 6 --out runs/syn60.npz
    edgekd train --data runs/syn60.npz --blocks 8 --in-channels 4 --label-sigma 3 --epochs 20 \\
        --fold holdout:0.1 --out runs/pre-b8          # and the same with --blocks 2 -> runs/pre-b2
    .venv/bin/python tests/benchmarks/loso_recipe.py --ieee ../shared/data/ieee_spc2015 \\
        --teacher-init runs/pre-b8 --student-init runs/pre-b2 --out runs/loso-recipe [--subjects 01 02]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from edgekd.checkpoint import model_spec
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.runs import RunConfig, is_complete, read_metrics
from edgekd.train import train_or_reuse


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--teacher-init", required=True, help="pretrained teacher run (4 channels)")
    p.add_argument("--student-init", required=True, help="pretrained student run (4 channels)")
    p.add_argument("--strategies", nargs="+", default=["scratch", "dkd", "soft"])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--label-sigma", type=float, default=3.0)
    p.add_argument("--subjects", nargs="+", help="held-out subjects to run (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0],
                   help="student seeds (the teacher is trained once per fold, seed 0); seed s > 0 runs are named "
                        "student-Nb-STRATEGY-sS")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(1)
    ws = load_dataset("ieee-spc2015", args.ieee)
    out = Path(args.out)
    t_spec, s_spec = model_spec(args.teacher_init), model_spec(args.student_init)
    base = dict(epochs=args.epochs, patience=args.epochs, label_sigma=args.label_sigma, select_on="val_mae",
                device="cpu")
    t0 = time.perf_counter()

    def run(cfg: RunConfig, folder: Path) -> dict:
        m = train_or_reuse(ws, cfg, folder)
        print(f"[{time.perf_counter() - t0:6.0f} s] {folder.name}: {m['mae_argmax']:.2f} / "
              f"{m['mae_causal']:.2f}", flush=True)
        return m

    for subject in args.subjects or ws.subjects():
        fold, sdir = f"loso:{subject}", out / subject
        teacher = sdir / f"teacher-{t_spec['blocks']}b"
        run(RunConfig(blocks=t_spec["blocks"], in_channels=t_spec["in_channels"], fold=fold,
                      init_from=args.teacher_init, **base), teacher)
        for seed in args.seeds:
            for strategy in args.strategies:
                run(RunConfig(blocks=s_spec["blocks"], in_channels=s_spec["in_channels"], fold=fold,
                              strategy=strategy, teachers=[] if strategy == "scratch" else [str(teacher)],
                              init_from=args.student_init, seed=seed, **base),
                    sdir / f"student-{s_spec['blocks']}b-{strategy}{f'-s{seed}' if seed else ''}")
    # Summary over every complete subject in OUT (also those another process ran).
    totals: dict[str, list[float]] = {}
    subjects = sorted(d.name for d in out.iterdir() if d.is_dir())
    for subject in subjects:
        for folder in sorted((out / subject).iterdir()):
            if is_complete(folder):
                m = read_metrics(folder)
                t = totals.setdefault(folder.name, [0.0, 0.0, 0, 0])
                t[0] += m["mae_argmax"] * m["windows"]
                t[1] += m["mae_causal"] * m["windows"]
                t[2] += m["windows"]
                t[3] += 1
    print_table([{"model": k, "folds": v[3], "windows": v[2], "mae_argmax": v[0] / v[2], "mae_causal": v[1] / v[2]}
                 for k, v in totals.items()],
                title=f"LOSO IEEE SPC 2015, {args.epochs} epochs, label sigma {args.label_sigma:g}, pretrained inits")


if __name__ == "__main__":
    main()
