"""Accuracy levers on real wrist data (issue 7), measured lever by lever with leave-one-subject-out on IEEE SPC.

For each held-out recording (fold ``loso:SUBJECT``), with the project's own training loop (edgekd.train):

  baseline      classical spectral tracker with ACC suppression (edgekd.baseline, no learning)
  ppg           PPG-only ResNet, per-window argmax (the paper's recipe)
  ppg+viterbi   same logits, offline Viterbi (edgekd.tracking)
  ppg+causal    same logits, causal forward-filter tracker (the one firmware runs, export/tracker)
  acc           PPG + 3-axis ACC input (4 channels), argmax / +causal / +viterbi
  acc+aug       4 channels trained with augmentation (RunConfig.augment), argmax / +causal / +viterbi
  personalise   the acc+aug model with its last layer(s) fine-tuned on the first CALIB minutes of the
                held-out recording; MAE before/after on the rest of that recording

MAE is over all held-out windows (sum of absolute errors / windows). Results are appended per fold to a
JSON file, so an interrupted run resumes. Optional cross-dataset: IEEE -> BIDMC and BIDMC -> IEEE (PPG only).

    .venv/bin/python tests/benchmarks/accuracy_levers.py --ieee ../shared/data/ieee_spc2015 --blocks 2 \
        --epochs 12 --out levers.json [--folds 01 05 ...] [--bidmc ../shared/data/bidmc]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekd.atomic import write_json
from edgekd.baseline import estimate
from edgekd.bpm import class_to_bpm
from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.evaluate import predict_logits
from edgekd.personalize import calibration_split, personalize
from edgekd.runs import RunConfig
from edgekd.tracking import TrackerConfig, decode_recordings
from edgekd.train import train_run
from edgekd.windowset import WindowSet

MODELS = {"ppg": dict(in_channels=1), "acc": dict(in_channels=4), "acc+aug": dict(in_channels=4, augment=True)}
DECODERS = ("argmax", "causal", "viterbi")


def _err(pred: np.ndarray, ws: WindowSet) -> list[float]:
    """[sum of absolute errors, windows]: additive over folds."""
    return [float(np.abs(np.asarray(pred, dtype=np.float64) - ws.hr).sum()), len(ws)]


def _decode_all(logits: np.ndarray, ws: WindowSet, tracker: TrackerConfig) -> dict[str, list[float]]:
    return {d: _err(decode_recordings(logits, ws.recording, d, tracker), ws) for d in DECODERS}


def run_fold(ws: WindowSet, subject: str, base: RunConfig, tracker: TrackerConfig, calib_min: float,
             work: Path) -> dict:
    test = ws.subset(np.flatnonzero(ws.subject == subject))
    out: dict = {"subject": subject, "windows": len(test), "baseline": _err(estimate(test), test)}
    model = None
    for name, over in MODELS.items():
        cfg = replace(base, fold=f"loso:{subject}", **over)
        run_dir = work / f"{subject}-{name}"
        m = train_run(ws, cfg, run_dir, progress=False)
        model = load_model(run_dir)
        logits = predict_logits(model, test.x[:, :cfg.in_channels])
        for d, e in _decode_all(logits, test, tracker).items():
            out[f"{name}/{d}"] = e
        out[f"{name}/epochs_run"] = m["epochs_run"]
    # Personalisation of the last (acc+aug) model: first calib_min minutes calibrate, the rest evaluates.
    calib, rest = calibration_split(test, calib_min)
    rest_ws = test.subset(rest)
    x_rest = rest_ws.x[:, :model.in_channels]
    out["personal/before"] = _err(class_to_bpm(predict_logits(model, x_rest).argmax(1)), rest_ws)
    out["personal/before+causal"] = _err(decode_recordings(predict_logits(model, x_rest), rest_ws.recording,
                                                           "causal", tracker), rest_ws)
    out["personal/baseline"] = _err(estimate(rest_ws), rest_ws)
    for layers in (1, 2):
        tuned = personalize(model, test.subset(calib), layers=layers, epochs=30, lr=1e-3)
        logits = predict_logits(tuned, x_rest)
        out[f"personal/layers{layers}"] = _err(class_to_bpm(logits.argmax(1)), rest_ws)
        out[f"personal/layers{layers}+causal"] = _err(
            decode_recordings(logits, rest_ws.recording, "causal", tracker), rest_ws)
    return out


def cross_dataset(train_ws: WindowSet, test_ws: WindowSet, base: RunConfig, tracker: TrackerConfig,
                  work: Path, label: str) -> dict:
    """Train on all of ``train_ws`` (PPG only), test on all of ``test_ws``: the test set becomes one held-out
    'subject' of a joined WindowSet, so edgekd.train's own loso fold does the split."""
    from edgekd.windowset import concat
    a, b = train_ws.ppg_only(), test_ws.ppg_only()
    b = WindowSet(x=b.x, hr=b.hr, subject=np.full(len(b), "__test__"), recording=b.recording,
                  channels=b.channels, provenance=b.provenance)
    a = WindowSet(x=a.x, hr=a.hr, subject=a.subject, recording=a.recording, channels=a.channels,
                  provenance=a.provenance)
    joined = concat([a, b])
    cfg = replace(base, fold="loso:__test__", in_channels=1)
    train_run(joined, cfg, work / f"cross-{label}", progress=False)
    logits = predict_logits(load_model(work / f"cross-{label}"), b.x)
    return {"windows": len(b), "baseline": _err(estimate(b), b), **_decode_all(logits, b, tracker)}


def mae(e: list[float]) -> float:
    return e[0] / e[1]


def summarise(folds: list[dict]) -> list[dict]:
    keys = [k for k in folds[0] if isinstance(folds[0][k], list)]
    rows = []
    for k in keys:
        tot = np.sum([f[k] for f in folds], axis=0)
        per = [mae(f[k]) for f in folds]
        rows.append({"lever": k, "mae_bpm": mae(list(tot)), "worst_fold": max(per), "windows": int(tot[1])})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ieee", required=True, help="IEEE SPC 2015 folder")
    p.add_argument("--bidmc", help="BIDMC folder: also run the cross-dataset pair")
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", nargs="+", help="held-out subjects (default: all)")
    p.add_argument("--calib-min", type=float, default=2.0, help="personalisation minutes (IEEE recordings are ~5 min)")
    p.add_argument("--sigma", type=float, default=3.0, help="tracker HR-change std, BPM per 2 s")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--out", required=True, help="results JSON (resumed if it exists)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    ws = load_dataset("ieee-spc2015", args.ieee)
    base = RunConfig(blocks=args.blocks, epochs=args.epochs, seed=args.seed, device="cpu")
    tracker = TrackerConfig(sigma_bpm=args.sigma, temperature=args.temperature)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {"folds": []}
    results["setup"] = {"blocks": args.blocks, "epochs": args.epochs, "seed": args.seed,
                        "calib_min": args.calib_min, "tracker": vars(tracker), "torch_threads": 1,
                        "run_config": base.to_dict()}
    done = {f["subject"] for f in results["folds"]}
    with tempfile.TemporaryDirectory() as tmp:
        for subject in args.folds or ws.subjects():
            if subject in done:
                continue
            t0 = time.time()
            fold = run_fold(ws, subject, base, tracker, args.calib_min, Path(tmp))
            fold["seconds"] = time.time() - t0
            results["folds"].append(fold)
            write_json(out_path, results)
            print(f"fold {subject}: " + ", ".join(f"{k} {mae(v):.2f}" for k, v in fold.items()
                                                  if isinstance(v, list)), flush=True)
        if args.bidmc and "cross" not in results:
            bidmc = load_dataset("bidmc", args.bidmc)
            results["cross"] = {
                "ieee->bidmc": cross_dataset(ws, bidmc, base, tracker, Path(tmp), "ieee2bidmc"),
                "bidmc->ieee": cross_dataset(bidmc, ws, base, tracker, Path(tmp), "bidmc2ieee"),
            }
            write_json(out_path, results)
    rows = summarise(results["folds"])
    print_table(rows, ["lever", "mae_bpm", "worst_fold", "windows"],
                title=f"LOSO IEEE SPC, {len(results['folds'])} folds, {args.blocks} blocks, {args.epochs} epochs")
    for name, r in results.get("cross", {}).items():
        print(name, {k: round(mae(v), 2) for k, v in r.items() if isinstance(v, list)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
