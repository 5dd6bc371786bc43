"""Throughput of `edgekd sweep` (one run at a time, and grouped: same-shape runs as one network) vs the same
runs trained one at a time with a WildPPG-style loop.

Both sides train the same grid (teacher, scratch and soft-KD students, every fold) on the same windows for
the same epochs, in this process, on the same device. Model-windows/s = (training windows x epochs,
summed over runs) / wall-clock seconds, end to end (teacher passes, validation and test included).

WildPPG-style loop: a CPU TensorDataset + DataLoader (batch 128, shuffled), fp32, Adam, cross-entropy, nn.Dropout; a
KD student runs its teacher forward on every batch (no cached outputs); validation every epoch.

    .venv/bin/python tests/benchmarks/sweep_throughput.py [--data FILE] [--epochs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from edgekd.bpm import bpm_to_class
from edgekd.checkpoint import load_model
from edgekd.data import load_windows
from edgekd.losses import DEFAULTS, soft_kd
from edgekd.model import DROPOUT, ResNet1D
from edgekd.runs import resolve_fold
from edgekd.splits import validation_split
from edgekd.sweep import RUNS_DIR, PlannedRun, SweepConfig, plan, read_results, run_sweep
from edgekd.windowset import identity_hash
from edgekd.windowset import WindowSet

BATCH = 128


def naive_run(ws: WindowSet, run: PlannedRun, teachers: dict[str, torch.nn.Module], device: torch.device) -> int:
    """Train one run the WildPPG way; returns training windows x epochs."""
    cfg = run.config
    fold = resolve_fold(ws, cfg.fold, cfg.split_seed)
    train_idx, val_idx = validation_split(ws, fold.train, cfg.val_fraction, seed=cfg.split_seed)
    x = torch.from_numpy(ws.x[:, :cfg.in_channels])
    y = bpm_to_class(torch.from_numpy(ws.hr))
    loader = DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=BATCH, shuffle=True, drop_last=False)
    torch.manual_seed(cfg.seed)
    model = ResNet1D(cfg.blocks, cfg.in_channels)
    for block in model.layers:  # WildPPG's nn.Dropout (edgekd draws its masks faster, edgekd.dropout)
        block.dropout = torch.nn.Dropout(DROPOUT)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    teacher = teachers.get(run.teacher) if run.teacher else None
    seen = 0
    for _ in range(cfg.epochs):
        model.train()
        for xb, yb in loader:
            if len(xb) < 2:
                continue
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(xb)
                loss = loss + soft_kd(logits, t_logits, DEFAULTS["T"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(xb)
        model.eval()
        with torch.no_grad():
            for start in range(0, len(val_idx), BATCH):
                model(x[val_idx[start:start + BATCH]].to(device))
    with torch.no_grad():
        for start in range(0, len(fold.test), BATCH):
            model(x[fold.test[start:start + BATCH]].to(device))
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="WindowSet .npz (default: the embedded synthetic corpus)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2, help="seeds per grid point (more seeds: larger groups)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ws = load_windows(args.data).ppg_only()
    sweep = SweepConfig(teachers=[4], students=[1, 2], strategies=["scratch", "soft"], folds=2,
                        seeds=list(range(args.seeds)),
                        train={"epochs": args.epochs, "patience": args.epochs, "batch_size": BATCH})
    measured = {}
    for grouping in ("off", "on"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run_sweep(sweep, ws, Path(tmp), progress=False, grouping=grouping)
            rows = read_results(Path(tmp))
            measured[grouping] = (sum(r["train_windows"] * r["epochs_run"] for r in rows), time.perf_counter() - t0)
    groups = max((r.get("grouped_with") or 1) for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_sweep(sweep, ws, out, progress=False, grouping="off")  # the teachers the naive loop reuses
        rows = read_results(out)

        runs = plan(sweep, (out / RUNS_DIR).resolve(), identity_hash(ws))
        teachers: dict[str, torch.nn.Module] = {}
        t0 = time.perf_counter()
        naive_mw = 0
        for run in runs:  # teachers come first in the plan; the naive loop reuses the sweep's teacher weights
            naive_mw += naive_run(ws, run, teachers, device)
            if any(r.teacher == run.name for r in runs):
                teachers[run.name] = load_model(out / RUNS_DIR / run.name).to(device).eval()
        naive_s = time.perf_counter() - t0
    print(f"device {device.type}, {torch.get_num_threads()} threads, {len(ws)} windows, {len(rows)} runs, "
          f"{args.epochs} epochs; grouped: up to {groups} runs per network")
    naive = naive_mw / naive_s
    print(f"{'':24}{'model-windows':>14} {'seconds':>8} {'per s':>9} {'vs loop':>8}")
    for label, (mw, sec) in (("WildPPG-style loop", (naive_mw, naive_s)), ("edgekd sweep, one by one", measured["off"]),
                             ("edgekd sweep, grouped", measured["on"])):
        print(f"{label:24}{mw:>14,} {sec:>8.1f} {mw / sec:>9,.0f} {mw / sec / naive:>7.2f}x")


if __name__ == "__main__":
    main()
