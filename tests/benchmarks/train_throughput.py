"""Training windows/s: edgekd's loop (train_run) vs a WildPPG-style loop, same process, same data.

WildPPG-style: a CPU TensorDataset + DataLoader (shuffle, batch 128), fp32, each batch copied to the device,
label cross-entropy, Adam. edgekd: ``train_run`` (data resident on the device, batches indexed from it;
batch 128 on CPU, 1024 + bf16 autocast on CUDA); its windows/s counts training steps only, not validation.
Not a test (speed targets live in benchmarks that print numbers). Run:

    .venv/bin/python tests/benchmarks/train_throughput.py [--threads 1] [--epochs 2] [--blocks 1 4 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from edgekd.bpm import bpm_to_class
from edgekd.cli.output import print_table
from edgekd.data import load_windows
from edgekd.model import ResNet1D
from edgekd.runs import RunConfig, resolve_fold
from edgekd.splits import validation_split
from edgekd.train import train_run


def wildppg_loop(x: torch.Tensor, y: torch.Tensor, blocks: int, device: torch.device, epochs: int) -> float:
    """Windows/s of the naive loop over ``epochs`` epochs (after one warm-up batch)."""
    model = ResNet1D(blocks).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=True)
    xb, yb = next(iter(loader))
    F.cross_entropy(model(xb.to(device)), yb.to(device)).backward()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, seen = time.perf_counter(), 0
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(xb)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="WindowSet .npz (default: the embedded synthetic corpus)")
    ap.add_argument("--blocks", type=int, nargs="+", default=[1, 4, 12])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ws = load_windows(args.data)
    fold = resolve_fold(ws, "holdout")
    train_idx, _ = validation_split(ws, fold.train)
    x = torch.from_numpy(ws.x[train_idx, :1])
    y = bpm_to_class(torch.from_numpy(ws.hr[train_idx]))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for device in devices:
        for blocks in args.blocks:
            naive = wildppg_loop(x, y, blocks, device, args.epochs)
            batch = 1024 if device.type == "cuda" else 128
            cfg = RunConfig(blocks=blocks, epochs=args.epochs, batch_size=batch, fold="holdout", device=device.type,
                            patience=args.epochs)
            with tempfile.TemporaryDirectory() as tmp:
                ours = train_run(ws, cfg, tmp, progress=False)["windows_per_s"]
            rows.append({"device": device.type, "blocks": blocks, "train_windows": len(train_idx),
                         "wildppg_loop_w_s": naive, "edgekd_w_s": ours, "speedup": ours / naive})
    print_table(rows, title=f"training windows/s ({args.threads} CPU thread(s), {args.epochs} epochs)")


if __name__ == "__main__":
    main()
