"""INT8 vs FP32 over a whole leave-one-subject-out protocol: one `edgekd export --int8` per fold.

For each held-out subject of a LOSO folder (OUT/SUBJECT/MODEL, from tests/benchmarks/loso_recipe.py), the
fold's model is exported (calibration = that fold's training subjects, as `edgekd export --data` does) and the
held-out windows are run through PyTorch FP32 and the TFLM host interpreter (INT8, what the firmware runs).
MAE over all held-out windows for argmax, the causal tracker and the spectral-fused tracker, plus flash and
arena sizes. Resumable: existing artifacts in ARTIFACTS are reused.

    .venv/bin/python tests/benchmarks/int8_loso.py --ieee ../shared/data/ieee_spc2015 --loso runs/loso-recipe \\
        --model student-2b-scratch --artifacts runs/int8-loso
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.evaluate import mae_report, predict_logits
from edgekd.fusion import FusionConfig
from export.artifact import export_artifact
from export.infer import predict_logits as runtime_logits

METRICS = ("mae_argmax", "mae_causal", "mae_fused")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--loso", required=True, help="leave-one-subject-out folder: LOSO/SUBJECT/MODEL runs")
    p.add_argument("--model", required=True, help="model folder name inside each subject, e.g. student-2b-scratch")
    p.add_argument("--artifacts", required=True, help="where the per-fold artifacts go")
    args = p.parse_args()
    torch.set_num_threads(1)
    ws = load_dataset("ieee-spc2015", args.ieee)
    root, arts = Path(args.loso), Path(args.artifacts)
    arts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = ws.save(Path(tmp) / "ieee.npz")
        sums = {f"{m}_{r}": 0.0 for m in METRICS for r in ("fp32", "int8")}
        rows = []
        for subject in ws.subjects():
            run, art = root / subject / args.model, arts / subject / args.model
            t0 = time.perf_counter()
            if not (art / "card.json").exists():
                export_artifact(run, art, int8=True, data=data, progress=False)
            held = ws.subset(np.flatnonzero(ws.subject == subject))
            model = load_model(run)
            x = held.x[:, :model.in_channels]
            fp32 = mae_report(predict_logits(model, x), held, FusionConfig())  # the ResNets' shipped decoder
            int8 = mae_report(runtime_logits(art, "tflm", x), held, FusionConfig())
            card = json.loads((art / "card.json").read_text())
            row = {"subject": subject, "windows": len(held), "flash_bytes": card["files"]["model_int8.tflite"]["bytes"],
                   "arena_bytes": card["tflm"]["arena_bytes"]}
            for m in METRICS:
                row[f"{m}_fp32"], row[f"{m}_int8"] = fp32[m], int8[m]
                sums[f"{m}_fp32"] += fp32[m] * len(held)
                sums[f"{m}_int8"] += int8[m] * len(held)
            rows.append(row)
            print(f"{subject}: {time.perf_counter() - t0:.0f} s", flush=True)
    n = len(ws)
    rows.append({"subject": "ALL", "windows": n, **{k: v / n for k, v in sums.items()}})
    cols = ["subject", "windows", "flash_bytes", "arena_bytes"] + [f"{m}_{r}" for m in METRICS for r in ("fp32", "int8")]
    print_table(rows, cols, title=f"{args.model}: FP32 (PyTorch) vs INT8 (TFLM), MAE in BPM on each held-out subject")


if __name__ == "__main__":
    main()
