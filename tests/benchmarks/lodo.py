"""Leave-one-dataset-out over IEEE SPC 2015, wrist-exercise and BIDMC, with every decoder choice nested.

For each held-out data set D: the student trains on the other two (``--fold lodo:D`` on the merged set) and
is scored on D. Decoder settings (edgekd.fusion.FusionConfig: model weight a, spectrum weight w, and the
clear/unclear switch q, u: windows whose spectrum has quality >= q use w * log(floor + evidence) alone, the
others a * logit + u * log(floor + evidence)) are chosen WITHOUT D: inner models trained on one of the two
remaining data sets alone are scored on the other, and the setting with the lowest mean of MAE / HMM MAE
over those two inner directions (the target is relative to the spectral baseline on each data set, and an
absolute mean would be decided by the hardest set alone) is applied to the outer model on D.
(a, w) = (0, 1) is the spectral HMM baseline itself, so selection can fall back to it; (1, 0), the causal tracker on
the model alone, is a candidate too (where no training set's spectrum is informative, the spectrum only hurts).
With ``--strategies scratch dkd --teacher-blocks 8`` each fold also gets a student distilled from a teacher trained on
the same two data sets (the inner models that choose the decoder stay from scratch).
Runs are reused when a complete run of the same resolved config and data exists (folder = config hash).

    .venv/bin/python tests/benchmarks/lodo.py --out runs/lodo [--blocks 1 2 4] [--seeds 0 1 2] [--strategies scratch dkd]
    .venv/bin/python tests/benchmarks/lodo.py --family tcn --widths 16 32 --blocks 6     # the MCU-lean students
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from edgekd.arch import FAMILIES, describe, has_width
from edgekd.bpm import N_CLASSES, decode_argmax
from edgekd.checkpoint import load_model
from edgekd.cli.output import print_table
from edgekd.data import load_dataset
from edgekd.data.synthetic import generate
from edgekd.evaluate import covered_mae, predict_logits
from edgekd.fusion import MODEL_ONLY, SPECTRUM_ONLY, FusionConfig, fuse, plain, spectral_evidence
from edgekd.runs import RunConfig
from edgekd.sweep import run_name
from edgekd.windowset import identity_hash
from edgekd.tracking import track_with_confidence
from edgekd.train import train_or_reuse
from edgekd.windowset import WindowSet, merge

SETS = {"ieee-spc2015": "ieee_spc2015", "wrist-exercise": "wrist_exercise", "bidmc": "bidmc"}
MODEL_WEIGHTS = (0.1, 0.25, 0.5, 1.0)
FUSION_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)
CLEAR_QUALITIES = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
UNCLEAR_WEIGHTS = (0.0, 0.25, 0.5)
HMM = SPECTRUM_ONLY
PREVIOUS = plain(1.0, 4.0)  # the default before the switch (from leave-one-subject-out on IEEE SPC)
DEFAULT = FusionConfig()  # the shipped default: this script's rule over all six directions (not nested)
# the model alone, every plain fusion (a, w), and the switch with w = 1 (a clear window is then exactly the
# baseline's)
DECODERS = ((HMM, MODEL_ONLY) + tuple(plain(a, w) for a in MODEL_WEIGHTS for w in FUSION_WEIGHTS)
            + tuple(FusionConfig(weight=1.0, model_weight=a, clear_quality=q, unclear_weight=u)
                    for a in MODEL_WEIGHTS for q in CLEAR_QUALITIES for u in UNCLEAR_WEIGHTS))


def train_cached(ws: WindowSet, cfg: RunConfig, root: Path) -> Path:
    folder = root / run_name(cfg, None, identity_hash(ws))
    train_or_reuse(ws, cfg, folder)
    return folder


def decode(logits: np.ndarray, evidence: np.ndarray, ws: WindowSet, cfg: FusionConfig
           ) -> tuple[np.ndarray, np.ndarray]:
    """(absolute error, confidence) per window of the causal tracker on the fused logits (what firmware runs)."""
    bpm, conf = track_with_confidence(fuse(logits, evidence, cfg), ws.recording)
    return np.abs(bpm - ws.hr), conf


def grid_mae(logits: np.ndarray, evidence: np.ndarray, ws: WindowSet) -> dict[FusionConfig, float]:
    return {cfg: float(decode(logits, evidence, ws, cfg)[0].mean()) for cfg in DECODERS}


def nested_choice(inner: list[dict[FusionConfig, float]], switch: bool) -> FusionConfig:
    """The decoder with the lowest mean MAE / HMM MAE over the inner directions (plain fusions only unless
    ``switch``)."""
    return min((c for c in DECODERS if switch or c.clear_quality == 0),
               key=lambda c: np.mean([g[c] / g[HMM] for g in inner]))


def label(cfg: FusionConfig) -> str:
    if cfg == HMM:
        return "HMM"
    if cfg == MODEL_ONLY:
        return "model only"
    plain = f"a={cfg.model_weight:g} w={cfg.weight:g}"
    return plain + (f" q={cfg.clear_quality:g} u={cfg.unclear_weight:g}" if cfg.clear_quality else "")


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
    p.add_argument("--blocks", type=int, nargs="+", default=[2], help="student sizes (ResNet blocks, TCN or spectral depth)")
    p.add_argument("--family", choices=FAMILIES, default="resnet", help="student family (teachers: resnet)")
    p.add_argument("--widths", type=int, nargs="+", default=[16],
                   help="TCN / spectral channels (each with every --blocks)")
    p.add_argument("--synthetic", type=int, default=0, metavar="SUBJECTS",
                   help="add this many subjects of the embedded synthetic corpus (edgekd.data.synthetic, 6 min each) "
                        "to the training data of every model; never held out, never scored")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seeds of the outer students (inner models and the teacher keep seed 0, so the decoder "
                        "choice and the teacher are shared by every seed)")
    p.add_argument("--seeds-for", type=int, nargs="+", metavar="BLOCKS",
                   help="sizes that get every --seeds (default all); the others get the first seed only")
    p.add_argument("--strategies", nargs="+", default=["scratch"],
                   help="outer students' strategies: scratch, or a distillation strategy such as dkd (needs a teacher)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--label-sigma", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--augment", action="store_true", help="train every model with edgekd.augment")
    p.add_argument("--init-from", help="pretrained run of the same size that starts every model")
    p.add_argument("--teacher-blocks", type=int, default=8, help="teacher size for a distillation strategy")
    p.add_argument("--int8", type=int, nargs="+", default=[], metavar="BLOCKS",
                   help="also export the first-seed students of these sizes with --int8 (calibrated on the fold's "
                        "training sets) and score the TFLM interpreter's outputs on the held-out set")
    p.add_argument("--table", type=Path, help="also write the Markdown table here (the README links models/results/)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    sets = {name: load_dataset(name, Path(args.shared) / folder) for name, folder in SETS.items()}
    if args.synthetic:
        synthetic = generate(subjects=args.synthetic, minutes=6.0, seed=0)
        sets[synthetic.datasets()[0]] = synthetic
    always = [name for name in sets if name not in SETS]  # in every model's training data, never held out
    full = merge(sets)
    evidence = spectral_evidence(full)
    rows, results, shipped = [], [], {}
    # (student, strategy) -> held-out set -> per seed, every decoder's MAE on that set: the hindsight sensitivity
    hindsight: dict[tuple[str, str], dict[str, list[dict[FusionConfig, float]]]] = {}
    widths = args.widths if has_width(args.family) else args.widths[:1]  # a ResNet's widths follow from its blocks
    for blocks, width in itertools.product(args.blocks, widths):
        base = dict(blocks=blocks, in_channels=4, epochs=args.epochs, label_sigma=args.label_sigma,
                    select_on="val_mae", device="cpu", init_from=args.init_from, augment=args.augment,
                    family=args.family, width=width)
        student = describe({"family": args.family, "blocks": blocks, "width": width})
        logits_of: dict[tuple[str, str], np.ndarray] = {}  # (trained on, scored on) -> logits
        for name in SETS:  # inner models: one data set alone (and the synthetic corpus, when added)
            idx = np.flatnonzero(np.isin(full.dataset, [name, *always]))
            model = load_model(train_cached(full.subset(idx), RunConfig(**base, fold="all"), out / "runs"))
            for other in SETS:
                if other != name:
                    logits_of[(name, other)] = predict_logits(model, full.x[full.dataset == other])
        # What to ship for data nobody has seen yet: the same rule over all six directions. Not a result on
        # any held-out set (every set is a target of two directions); the LODO rows above are the claim.
        grids = {(src, dst): grid_mae(logits, evidence[full.dataset == dst], full.subset(
            np.flatnonzero(full.dataset == dst))) for (src, dst), logits in logits_of.items()}
        shipped[student] = label(nested_choice(list(grids.values()), switch=True))
        seeds = args.seeds if args.seeds_for is None or blocks in args.seeds_for else args.seeds[:1]
        for held in SETS:
            train_sets = [n for n in SETS if n != held]
            idx = full.dataset == held
            ws, ev = full.subset(np.flatnonzero(idx)), evidence[idx]
            # nested choice: the two inner directions between the training data sets
            inner = [grids[pair] for pair in itertools.permutations(train_sets)]
            plain, chosen = nested_choice(inner, switch=False), nested_choice(inner, switch=True)
            hmm_err, hmm_conf = decode(np.zeros((len(ws), N_CLASSES), np.float32), ev, ws, HMM)
            for strategy, seed in itertools.product(args.strategies, seeds):
                fold = f"lodo:{held}"
                if strategy == "scratch":
                    cfg = RunConfig(**base, fold=fold, seed=seed)
                else:  # the teacher sees the same two training data sets, never the held-out one
                    teacher = train_cached(full, RunConfig(**{**base, "family": "resnet", "blocks": args.teacher_blocks,
                                                              "init_from": None}, fold=fold), out / "runs")
                    cfg = RunConfig(**base, fold=fold, seed=seed, strategy=strategy, teachers=[str(teacher)])
                run_dir = train_cached(full, cfg, out / "runs")
                logits = predict_logits(load_model(run_dir), ws.x)
                err, conf = decode(logits, ev, ws, chosen)
                row = {"student": student, "blocks": blocks, "strategy": strategy, "seed": seed, "held_out": held, "windows": len(ws),
                       "hmm": float(hmm_err.mean()), "argmax": float(np.abs(decode_argmax(logits) - ws.hr).mean()),
                       "causal": float(decode(logits, ev, ws, MODEL_ONLY)[0].mean()),
                       "fused_previous": float(decode(logits, ev, ws, PREVIOUS)[0].mean()),
                       "fused_default": float(decode(logits, ev, ws, DEFAULT)[0].mean()),
                       "nested_plain": float(decode(logits, ev, ws, plain)[0].mean()), "nested": float(err.mean()),
                       "nested_cov90": covered_mae(err, conf, 0.9), "nested_cov80": covered_mae(err, conf, 0.8),
                       "hmm_cov80": covered_mae(hmm_err, hmm_conf, 0.8), "choice_plain": label(plain),
                       "choice": label(chosen)}
                if blocks in args.int8 and seed == seeds[0]:
                    q = int8_logits(run_dir, full, held, out)
                    row.update({"int8_argmax_agreement": float((q.argmax(1) == logits.argmax(1)).mean()),
                                "int8_fused_previous": float(decode(q, ev, ws, PREVIOUS)[0].mean()),
                                "int8_nested": float(decode(q, ev, ws, chosen)[0].mean())})
                rows.append(row)
                hindsight.setdefault((student, strategy), {}).setdefault(held, []).append(grid_mae(logits, ev, ws))
                results.append({**row, "run": str(run_dir), "chosen": asdict(chosen), "chosen_plain": asdict(plain)})
    summary = summarise(rows)
    sensitivity = {f"{k[0]} {k[1]}": in_hindsight(v) for k, v in hindsight.items()}
    print_table(rows, ["student", "strategy", "seed", "held_out", "hmm", "argmax", "causal", "fused_previous",
                       "nested_plain", "nested", "fused_default", "choice"], title="leave-one-dataset-out, MAE in BPM")
    print()
    print_table(summary, title="mean over seeds (fused, nested decoder)")
    out.mkdir(parents=True, exist_ok=True)
    print(f"decoder chosen on all six directions, per size: {shipped}")
    (out / "lodo.json").write_text(json.dumps({"settings": vars(args), "rows": results, "summary": summary,
                                               "shipped_decoder": shipped, "hindsight": sensitivity},
                                              indent=2, default=str))
    table = markdown(rows, summary, args, shipped, sensitivity)
    for path in (out / "lodo.md", args.table):
        if path:
            path.write_text(table)


def in_hindsight(per_set: dict[str, list[dict[FusionConfig, float]]]) -> dict:
    """A sensitivity, not a result: the decoder with the lowest mean MAE / HMM MAE on the held-out sets
    themselves (seed means), its MAE per set, and how many candidates are no worse than the HMM on every set."""
    mean_of = {c: {h: float(np.mean([g[c] for g in grids])) for h, grids in per_set.items()} for c in DECODERS}
    ratio = {c: np.mean([m[h] / mean_of[HMM][h] for h in m]) for c, m in mean_of.items()}
    best = min(DECODERS, key=lambda c: ratio[c])
    never_worse = [c for c in DECODERS if all(mean_of[c][h] <= mean_of[HMM][h] for h in per_set)]
    return {"decoder": label(best), "mae": mean_of[best], "mean": float(np.mean(list(mean_of[best].values()))),
            "never_worse_than_hmm": len(never_worse), "candidates": len(DECODERS)}


def summarise(rows: list[dict]) -> list[dict]:
    """Per (blocks, strategy): the nested fused MAE on each held-out set (mean over seeds), their mean, the
    mean relative to the HMM, and on how many sets it is no worse than the HMM."""
    out = []
    for key in dict.fromkeys((r["student"], r["strategy"]) for r in rows):
        mine = [r for r in rows if (r["student"], r["strategy"]) == key]
        row: dict = {"student": key[0], "blocks": mine[0]["blocks"], "strategy": key[1],
                     "seeds": len({r["seed"] for r in mine})}
        per = {h: float(np.mean([r["nested"] for r in mine if r["held_out"] == h])) for h in SETS}
        hmm = {h: next(r["hmm"] for r in mine if r["held_out"] == h) for h in SETS}
        row.update({h: per[h] for h in SETS})
        row["mean"] = float(np.mean(list(per.values())))
        row["hmm_mean"] = float(np.mean(list(hmm.values())))
        row["sets_no_worse_than_hmm"] = sum(per[h] <= hmm[h] for h in SETS)
        out.append(row)
    return out


def markdown(rows: list[dict], summary: list[dict], args: argparse.Namespace, shipped: dict[str, str],
             sensitivity: dict[str, dict]) -> str:
    """The README's LODO tables, regenerated by this script (MAE in BPM on each held-out data set)."""
    def flag(k: str, v: object) -> str:
        name = "--" + k.replace("_", "-")
        return name if v is True else f"{name} {' '.join(map(str, v)) if isinstance(v, list) else v}"

    flags = " ".join(flag(k, v) for k, v in vars(args).items() if v not in (None, False, []))
    init = f", initialised from `{args.init_from}`" if args.init_from else ""
    lines = [f"Leave-one-dataset-out (PPG + ACC students, {args.epochs} epochs, label sigma {args.label_sigma:g}"
             f"{', --augment' if args.augment else ''}{init}; distilled students from a {args.teacher_blocks}-block "
             f"teacher trained on the same two sets). MAE in BPM on each held-out data set; the decoder is chosen "
             f"per fold without the held-out set. Regenerate: `.venv/bin/python tests/benchmarks/lodo.py "
             f"{flags}`.", "",
             "| students | seeds | " + " | ".join(f"{h} (HMM {next(r['hmm'] for r in rows if r['held_out'] == h):.2f})"
                                                for h in SETS) + " | mean (HMM " + f"{summary[0]['hmm_mean']:.2f}) | "
             "held-out sets no worse than HMM |", "|---|---:|" + "---:|" * (len(SETS) + 2)]
    for s in summary:
        lines.append(f"| {s['student']} {s['strategy']} | {s['seeds']} | "
                     + " | ".join(f"{s[h]:.2f}" for h in SETS) + f" | {s['mean']:.2f} | {s['sets_no_worse_than_hmm']} of 3 |")
    cols = [("hmm", "spectral HMM (no model)"), ("argmax", "argmax"), ("causal", "causal"),
            ("fused_previous", f"fused {label(PREVIOUS)} (previous default)"), ("nested_plain", "fused, nested (a, w)"),
            ("nested", "fused, nested (a, w, q, u)"), ("nested_cov80", "same @80 % coverage"),
            ("hmm_cov80", "HMM @80 %"), ("fused_default", f"shipped default {label(DEFAULT)} (not nested)")]
    if any("int8_nested" in r for r in rows):
        cols += [("int8_fused_previous", "INT8 TFLM fused, previous default"),
                 ("int8_nested", "INT8 TFLM fused, nested"), ("int8_argmax_agreement", "INT8 = FP32 argmax")]
    lines += ["", "Per held-out set, first seed of each student:", "",
              "| students | held out | windows | " + " | ".join(c[1] for c in cols) + " | nested choice |",
              "|---|---|---:|" + "---:|" * len(cols) + "---|"]
    first = {(r["student"], r["strategy"]): r["seed"] for r in reversed(rows)}
    for r in rows:
        if r["seed"] != first[(r["student"], r["strategy"])]:
            continue
        lines.append(f"| {r['student']} {r['strategy']} | {r['held_out']} | {r['windows']} | "
                     + " | ".join(f"{r[k]:.2f}" if k in r else "" for k, _ in cols) + f" | {r['choice']} |")
    lines += ["", "Decoder the same rule picks over all six directions (what to ship for unseen data; not a "
                  "held-out result): " + "; ".join(f"{b}: {c}" for b, c in shipped.items()) + "."]
    lines += ["", "In hindsight (a sensitivity, not a result: chosen on the held-out sets it is scored on): the best "
                  "single decoder per student, mean over seeds; and how many of the candidate decoders are no worse "
                  "than the HMM on all three sets:", ""]
    lines += [f"- {k}: {v['decoder']}, " + " / ".join(f"{v['mae'][h]:.2f}" for h in SETS)
              + f" (mean {v['mean']:.2f}); {v['never_worse_than_hmm']} of {v['candidates']} candidates never worse "
                f"than the HMM" for k, v in sensitivity.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
