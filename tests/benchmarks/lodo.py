"""Leave-one-dataset-out over IEEE SPC 2015, wrist-exercise and BIDMC, with every decoder choice nested.

For each held-out data set D: the student trains on the other two (``--fold lodo:D`` on the merged set) and
is scored on D. Decoder settings (model weight a, fusion weight w: emission = a * logit + w * log(floor +
evidence), optionally gated per window by the model's own confidence: a_i = a * c_i, c_i = its softmax mass
within 3 BPM of its argmax) are chosen WITHOUT D: inner models trained on one of the two remaining data sets alone are scored
on the other, and the (a, w) with the lowest mean MAE over those two inner directions is applied to the
outer model on D. (a, w) = (0, 1) is the spectral HMM baseline itself, so selection can fall back to it.
With ``--strategy dkd --teacher-blocks 8`` the outer model is a student distilled from a teacher trained on
the same two data sets (the inner models that choose the decoder stay from scratch).
Runs are reused when a complete run of the same resolved config and data exists (folder = config hash).

    .venv/bin/python tests/benchmarks/lodo.py --shared ../shared/data --out runs/lodo [--blocks 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from edgekd.bpm import decode_argmax
from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.evaluate import covered_mae, predict_logits
from edgekd.fusion import FusionConfig, spectral_evidence
from edgekd.runs import RunConfig, is_complete, read_config
from edgekd.sweep import run_name
from edgekd.teacher import data_hash
from edgekd.tracking import CONFIDENCE_HALFWIDTH, track_with_confidence
from edgekd.train import resolved_config, train_run
from edgekd.windowset import WindowSet, merge

SETS = {"ieee-spc2015": "ieee_spc2015", "wrist-exercise": "wrist_exercise", "bidmc": "bidmc"}
MODEL_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0)
FUSION_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)
GATES = (False, True)


def train_cached(ws: WindowSet, cfg: RunConfig, root: Path) -> Path:
    folder = root / run_name(cfg, None, data_hash(ws))
    if not (is_complete(folder) and read_config(folder) == resolved_config(cfg)):
        train_run(ws, cfg, folder, progress=False)
    return folder


def model_confidence(logits: np.ndarray) -> np.ndarray:
    """Softmax mass within CONFIDENCE_HALFWIDTH classes of each window's argmax, [N] in 0..1."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = logits.argmax(1)
    near = np.abs(np.arange(logits.shape[1])[None, :] - top[:, None]) <= CONFIDENCE_HALFWIDTH
    return (p * near).sum(1).astype(np.float32)


def decode(logits: np.ndarray, evidence: np.ndarray, ws: WindowSet, a: float, w: float, gate: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """(absolute error, confidence) per window of the causal tracker on a_i * logits + w * log(floor + ev)."""
    scale = np.float32(a) * (model_confidence(logits)[:, None] if gate else np.float32(1))
    z = scale * logits + np.float32(w) * np.log(np.float32(FusionConfig.floor) + evidence)
    bpm, conf = track_with_confidence(z.astype(np.float32), ws.recording)
    return np.abs(bpm - ws.hr), conf


def grid_mae(logits: np.ndarray, evidence: np.ndarray, ws: WindowSet, gates: tuple[bool, ...] = GATES
             ) -> dict[tuple[float, float, bool], float]:
    return {(a, w, g): float(decode(logits, evidence, ws, a, w, g)[0].mean())
            for a, w, g in itertools.product(MODEL_WEIGHTS, FUSION_WEIGHTS, gates) if a > 0 or not g}


def int8_logits(run_dir: Path, full: WindowSet, held: str, out: Path) -> np.ndarray:
    """Dequantised TFLM outputs on the held-out set of the fold's student, exported with --int8 and calibrated
    on (a sample of) its own training windows, the way a user ships it."""
    from export.artifact import export_artifact
    from export.infer import predict_logits as runtime_logits

    data = out / "data"
    calib, evaluate = data / f"train-{held}.npz", data / f"held-{held}.npz"
    train, test = full.subset(np.flatnonzero(full.dataset != held)), full.subset(np.flatnonzero(full.dataset == held))
    train.save(calib)
    test.save(evaluate)
    art = out / "artifacts" / run_dir.name
    if not (art / "card.json").is_file():
        export_artifact(run_dir, art, int8=True, calib=calib, evaluate=evaluate, progress=False, force=True)
    return runtime_logits(art, "tflm", test.x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared/data", help="folder with ieee_spc2015, wrist_exercise, bidmc")
    p.add_argument("--out", default="runs/lodo", help="runs and results go here")
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--label-sigma", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--init-from", help="pretrained run of the same size that starts every model")
    p.add_argument("--strategy", default="scratch", help="outer student's strategy, e.g. dkd (needs a teacher)")
    p.add_argument("--teacher-blocks", type=int, default=8, help="teacher size for a distillation strategy")
    p.add_argument("--int8", action="store_true",
                   help="also export each fold's student with --int8 (calibrated on its training sets) and score "
                        "the TFLM interpreter's outputs on the held-out set")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    sets = {name: load_dataset(name, Path(args.shared) / folder) for name, folder in SETS.items()}
    full = merge(sets)
    evidence = spectral_evidence(full)
    base = dict(blocks=args.blocks, in_channels=4, epochs=args.epochs, label_sigma=args.label_sigma,
                select_on="val_mae", device="cpu", init_from=args.init_from)

    logits_of: dict[tuple[str, str], np.ndarray] = {}  # (trained on, scored on) -> logits
    for name in SETS:  # inner models: one data set alone
        idx = np.flatnonzero(full.dataset == name)
        model = load_model(train_cached(full.subset(idx), RunConfig(**base, fold="all"), out / "runs"))
        for other in SETS:
            if other != name:
                j = full.dataset == other
                logits_of[(name, other)] = predict_logits(model, full.x[j])
    rows, results = [], []
    for held in SETS:
        train_sets = [n for n in SETS if n != held]
        fold = f"lodo:{held}"
        if args.strategy == "scratch":
            cfg = RunConfig(**base, fold=fold)
        else:  # the teacher sees the same two training data sets, never the held-out one
            teacher = train_cached(full, RunConfig(**{**base, "blocks": args.teacher_blocks, "init_from": None},
                                                   fold=fold), out / "runs")
            cfg = RunConfig(**base, fold=fold, strategy=args.strategy, teachers=[str(teacher)])
        run_dir = train_cached(full, cfg, out / "runs")
        model = load_model(run_dir)
        idx = full.dataset == held
        ws, ev = full.subset(np.flatnonzero(idx)), evidence[idx]
        logits = predict_logits(model, ws.x)
        # nested choice: the two inner directions between the training data sets
        inner = [grid_mae(logits_of[(src, dst)], evidence[full.dataset == dst], full.subset(
            np.flatnonzero(full.dataset == dst))) for src, dst in itertools.permutations(train_sets)]
        chosen = min(inner[0], key=lambda k: np.mean([g[k] for g in inner]))
        ungated = min((k for k in inner[0] if not k[2]), key=lambda k: np.mean([g[k] for g in inner]))
        hmm_err, hmm_conf = decode(logits, ev, ws, 0.0, 1.0)
        row = {"held_out": held, "windows": len(ws), "hmm": float(hmm_err.mean()),
               "argmax": float(np.abs(decode_argmax(logits) - ws.hr).mean()),
               "causal": float(decode(logits, ev, ws, 1.0, 0.0)[0].mean()),
               "fused_w4": float(decode(logits, ev, ws, 1.0, 4.0)[0].mean())}
        err, conf = decode(logits, ev, ws, *chosen)
        row.update({"ungated": float(decode(logits, ev, ws, *ungated)[0].mean()),
                    "nested_a": chosen[0], "nested_w": chosen[1], "gate": chosen[2], "nested": float(err.mean()),
                    "nested_cov90": covered_mae(err, conf, 0.9), "nested_cov80": covered_mae(err, conf, 0.8),
                    "hmm_cov80": covered_mae(hmm_err, hmm_conf, 0.8)})
        if args.int8:
            q = int8_logits(run_dir, full, held, out)
            q_err, q_conf = decode(q, ev, ws, *chosen)
            row.update({"int8_argmax_agreement": float((q.argmax(1) == logits.argmax(1)).mean()),
                        "int8_fused_w4": float(decode(q, ev, ws, 1.0, 4.0)[0].mean()),
                        "int8_nested": float(q_err.mean())})
        rows.append(row)
        results.append({**row, "grid_on_held_out": {f"{a},{w},{g}": v for (a, w, g), v in
                                                     grid_mae(logits, ev, ws).items()}})
    print_table(rows, title=f"leave-one-dataset-out, {args.blocks}-block student (PPG + ACC), MAE in BPM")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("hmm", "causal", "fused_w4", "ungated", "nested")}
    print(f"mean over held-out data sets: {json.dumps({k: round(v, 2) for k, v in mean.items()})}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "lodo.json").write_text(json.dumps({"settings": vars(args), "rows": results, "mean": mean}, indent=2))
    (out / "lodo.md").write_text(markdown(rows, mean, args))


def markdown(rows: list[dict], mean: dict[str, float], args: argparse.Namespace) -> str:
    """The README's LODO table, regenerated by this script (MAE in BPM on each held-out data set)."""
    cols = [("hmm", "spectral HMM (no model)"), ("argmax", "argmax"), ("causal", "causal"),
            ("fused_w4", "fused a=1 w=4 (default)"), ("ungated", "fused, nested (a, w)"),
            ("nested", "fused, nested (a, w, gate)"), ("nested_cov80", "same @80 % coverage"),
            ("hmm_cov80", "HMM @80 %")]
    if "int8_nested" in rows[0]:
        cols += [("int8_fused_w4", "INT8 TFLM fused a=1 w=4"), ("int8_nested", "INT8 TFLM fused, nested"),
                 ("int8_argmax_agreement", "INT8 = FP32 argmax")]
    init = f", initialised from `{args.init_from}`" if args.init_from else ""
    init += (f", {args.strategy} from a {args.teacher_blocks}-block teacher" if args.strategy != "scratch"
             else ", no teacher")
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
                     for k, v in vars(args).items() if v is not None and v is not False)
    lines = [f"Leave-one-dataset-out, {args.blocks}-block student (PPG + ACC, {args.epochs} epochs, label sigma "
             f"{args.label_sigma:g}{init}), MAE in BPM on each held-out data set. Regenerate: "
             f"`.venv/bin/python tests/benchmarks/lodo.py {flags}`.", "",
             "| held out | windows | " + " | ".join(c[1] for c in cols) + " | nested choice (a, w, gate) |",
             "|---|---:|" + "---:|" * len(cols) + "---|"]
    for r in rows:
        lines.append(f"| {r['held_out']} | {r['windows']} | " + " | ".join(f"{r[k]:.2f}" for k, _ in cols)
                     + f" | {r['nested_a']:g}, {r['nested_w']:g}, {'on' if r['gate'] else 'off'} |")
    lines.append("| mean | | " + " | ".join(f"{mean[k]:.2f}" if k in mean else "" for k, _ in cols) + " | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
