"""`edgekd train`, `edgekd distill`, `edgekd evaluate`: one model, a teacher -> student comparison, and MAE."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from edgekd.cli.args import (add_decoder_args, decoder_config, int_at_least, non_negative_float, non_negative_int,
                             positive_int, table_file, tracker_config)
from edgekd.cli.output import print_json, print_table
from edgekd.cli.report import check_table, publish_table
from edgekd.data import load_windows
from edgekd.data.synthetic import DATASET as SYNTHETIC, TRAINING_MINUTES, training_problem
from edgekd.distill import RECIPE, DistillPlan
from edgekd.errors import EdgekdError
from edgekd import spectral_net, tcn
from edgekd.arch import FAMILIES
from edgekd.model import MAX_BLOCKS, MAX_IN_CHANNELS
from edgekd.runs import SELECT_ON, RunConfig
from edgekd.runtimes import SCORED, artifact_logits
from edgekd.windowset import WindowSet

RUN = RunConfig()  # the defaults every training flag shows
# `edgekd distill` without --data (synthetic corpus, 2-core CPU) is the demo: a few minutes, and it distils.
DEMO_TEACHER_BLOCKS = DistillPlan.teacher_blocks
DEMO_EPOCHS = 20
DEMO_STRATEGY = "dkd"
DEMO_OUT = "runs/distill"
CHANNELS_HELP = ("input channels read from the data: 1 = PPG, 4 = PPG + 3-axis ACC (default: every channel the "
                 "data have, up to 4; on wrist data with motion the accelerometer is what tells cadence from pulse)")
BLOCK_CHOICES = range(1, MAX_BLOCKS + 1)
batch_size = int_at_least(2)  # BatchNorm needs two windows per batch


def register(sub: argparse._SubParsersAction) -> None:
    _register_train(sub)
    _register_distill(sub)
    _register_evaluate(sub)


def _common(p: argparse.ArgumentParser, student: RunConfig = RUN, epochs: int | None = RUN.epochs,
            synthetic: int | None = RUN.synthetic) -> None:
    """Training flags shared by train and distill; every default is RunConfig's (one source of defaults,
    also used by sweep plans and the Python API), except distill's: its student is the recipe's
    (``student``), and its ``epochs`` and ``synthetic`` are None, decided by whether --data is given."""
    p.add_argument("--data", metavar="FILE", help="WindowSet .npz (default: the embedded synthetic corpus)")
    p.add_argument("--family", choices=FAMILIES, default=student.family,
                   help=f"student family: resnet (WildPPG's ResNet1D), tcn (MCU-lean strided separable CNN, "
                        f"edgekd/tcn.py) or spectral (convolutions along the frequency axis of the window's spectra, "
                        f"edgekd/spectral_net.py); the depth is the blocks (default {student.family}; teachers are "
                        f"always resnet)")
    p.add_argument("--width", type=int, metavar="C",
                   help=f"tcn channels, {tcn.WIDTHS[0]}..{tcn.WIDTHS[1]}; spectral channels, "
                        f"{spectral_net.WIDTHS[0]}..{spectral_net.WIDTHS[1]} (default " +
                        (f"{RUN.width})" if student is RUN else
                         f"{student.width} for a {student.family} student, else {RUN.width})"))
    p.set_defaults(recipe=student)
    p.add_argument("--synthetic", type=non_negative_int, default=synthetic, metavar="SUBJECTS",
                   help=f"add this many subjects of the embedded synthetic corpus ({TRAINING_MINUTES:g} min each) to "
                        "the training side; "
                        "the fold's test subjects stay the data's own. It helped most on data sets never seen "
                        "(default "
                        + (f"{synthetic})" if synthetic is not None else
                           f"{RECIPE.synthetic}; 0 on data that are the synthetic corpus, as the demo's)"))
    p.add_argument("--fold", default=RUN.fold,
                   help="K/N (fold K of an N-fold subject split), loso:SUBJECT, lodo:DATASET (leave a data set out), "
                        f"all (train on everything), or holdout[:FRACTION] (default {RUN.fold})")
    p.add_argument("--split-seed", type=non_negative_int, default=RUN.split_seed,
                   help=f"seed of the subject shuffle (default {RUN.split_seed})")
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help=f"maximum epochs (default {epochs})" if epochs else
                   f"maximum epochs (default {RUN.epochs}; {DEMO_EPOCHS} on the synthetic demo without --data)")
    p.add_argument("--batch-size", type=batch_size, default=RUN.batch_size,
                   help=f"default {RUN.batch_size} (at least 2)")
    p.add_argument("--lr", type=non_negative_float, default=RUN.lr,
                   help=f"Adam learning rate, cosine-decayed (default {RUN.lr:g})")
    p.add_argument("--weight-decay", type=non_negative_float, default=RUN.weight_decay,
                   help=f"default {RUN.weight_decay:g}")
    p.add_argument("--patience", type=positive_int, default=RUN.patience,
                   help=f"early-stopping patience in epochs (default {RUN.patience})")
    p.add_argument("--seed", type=non_negative_int, default=RUN.seed, help=f"training seed (default {RUN.seed})")
    p.add_argument("--select-on", choices=SELECT_ON, default=RUN.select_on,
                   help=f"validation number that picks the best epoch and stops early (default {RUN.select_on})")
    p.add_argument("--augment", action="store_true", help="light augmentation (see edgekd/augment.py)")
    p.add_argument("--label-sigma", type=non_negative_float, default=RUN.label_sigma, metavar="BPM",
                   help=f"Gaussian label smoothing over neighbouring BPM classes, e.g. 3 (default {RUN.label_sigma:g}; "
                        "0 = one-hot, WildPPG's recipe)")
    p.add_argument("--init-from", metavar="RUN",
                   help="start from this run's weights (same blocks and channels): pretrain, then fine-tune")
    p.add_argument("--device", default=RUN.device, help=f"auto (CUDA if available), cpu, cuda, cuda:N (default {RUN.device})")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _register_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one student (ResNet1D, TCN or spectral CNN) on one fold and write a "
                                     "run folder",
                       description="Train a ResNet1D (or --family tcn|spectral) of --blocks blocks on one "
                                   "subject-independent fold; writes config.json, model.safetensors, log.jsonl, metrics.json to --out.")
    p.add_argument("--blocks", type=int, required=True, choices=BLOCK_CHOICES, metavar="N",
                   help="blocks 1..12 (ResNet residual blocks, or TCN depth)")
    p.add_argument("--in-channels", type=int, choices=(1, 2, 3, 4), help=CHANNELS_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    _common(p)
    p.set_defaults(func=run_train)


def _register_distill(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="the recommended student for your data, or teacher -> student distillation "
                                       "next to a student from scratch",
                       description="The student defaults to the recipe that held up best on data sets it never "
                                   f"saw: a {RECIPE.blocks} x {RECIPE.width} {RECIPE.family} CNN "
                                   "(models/results/lodo-spectral-4x7-subjects.md). With --data and no teacher "
                                   "setting, it trains that recipe alone into OUT/student: from scratch, with "
                                   f"{RECIPE.synthetic} synthetic subjects added to the training side, {RUN.epochs} "
                                   "epochs (distillation did not beat it there). With a distillation --strategy or "
                                   "any teacher setting it trains (or reuses) a teacher (OUT/teacher), the student "
                                   "from scratch (OUT/scratch) and the distilled student (OUT/student) on one fold, "
                                   "every one of them with the synthetic subjects. Prints their MAE, parameters and "
                                   "MACs. With no arguments (the demo): the synthetic corpus, an "
                                   f"{DEMO_TEACHER_BLOCKS}-block ResNet teacher, the scratch and the {DEMO_STRATEGY} "
                                   f"student, {DEMO_EPOCHS} epochs (a few minutes on a 2-core CPU).")
    t = p.add_mutually_exclusive_group()
    t.add_argument("--teacher", nargs="+", metavar="RUN", help="teacher run/artifact folder(s); several = ensemble")
    t.add_argument("--teacher-blocks", type=int, choices=BLOCK_CHOICES, metavar="N",
                   help=f"train a teacher of N blocks (default {DEMO_TEACHER_BLOCKS})")
    p.add_argument("--teacher-in-channels", type=int, choices=(1, 2, 3, 4),
                   help="channels the trained teacher reads (default: the student's); 4 with a 1-channel student "
                        "= cross-modal (PPG + ACC teacher, PPG student)")
    p.add_argument("--teacher-epochs", type=positive_int, help="teacher epochs (default: --epochs)")
    p.add_argument("--student-blocks", type=int, default=RECIPE.blocks, choices=BLOCK_CHOICES, metavar="N",
                   help=f"default {RECIPE.blocks}")
    p.add_argument("--in-channels", type=int, choices=(1, 2, 3, 4), help=CHANNELS_HELP)
    p.add_argument("--strategy",
                   help="scratch (the student alone), hard, soft, dkd, feature, ppg-distill, or a composition like "
                        f"dkd+feature or dkd=1,feature=0.5 (default: scratch with --data and no teacher setting "
                        f"(--teacher*, --intermediate-blocks, --no-scratch, --param), else {DEMO_STRATEGY})")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="strategy parameter, e.g. T=4, alpha=1, beta=8, warmup=20, tau=0.1 (repeatable)")
    p.add_argument("--intermediate-blocks", type=int, choices=BLOCK_CHOICES, metavar="N",
                   help="progressive distillation: teacher -> N-block intermediate -> student")
    p.add_argument("--no-scratch", action="store_true", help="skip the from-scratch baseline student")
    p.add_argument("--out", default=DEMO_OUT, metavar="DIR", help=f"output folder (default {DEMO_OUT})")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="also write the result as a study record NAME.json with its table NAME.md (`edgekd report "
                        "NAME.json` regenerates the table)")
    _common(p, student=RECIPE, epochs=None, synthetic=None)
    p.set_defaults(func=run_distill)


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="MAE of a run or artifact folder on a WindowSet",
                       description="MAE (argmax and expectation decoding) overall, per subject and per recording, "
                                   "and of the causal tracker without ('tracked') and with spectral fusion "
                                   "('fused'), for a run or artifact folder (config.json + model.safetensors). "
                                   "Evaluates every window of --data: pass data the model was not trained on.")
    p.add_argument("model", metavar="RUN_OR_ARTIFACT", help="run or artifact folder")
    p.add_argument("--data", metavar="FILE", help="WindowSet .npz (default: the embedded synthetic corpus)")
    p.add_argument("--runtime", default="torch", choices=SCORED,
                   help="torch (default), or an exported runtime of an artifact folder: onnx, onnx-int8, litert "
                        "(INT8 flatbuffer), tflm (the TFLM host interpreter, the device's kernels)")
    p.add_argument("--device", default="cpu", help="PyTorch device (default cpu)")
    add_decoder_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run_evaluate)


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _config(args: argparse.Namespace, **kw: Any):

    width = args.width if args.width is not None else (
        args.recipe.width if args.family == args.recipe.family else RUN.width)
    return RunConfig(family=args.family, width=width, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                     weight_decay=args.weight_decay,
                     seed=args.seed, fold=args.fold, split_seed=args.split_seed, augment=args.augment,
                     label_sigma=args.label_sigma, init_from=args.init_from, synthetic=args.synthetic,
                     patience=args.patience, select_on=args.select_on, device=args.device, **kw)


def _check_synthetic(args: argparse.Namespace, ws: WindowSet) -> None:
    """Refuse --synthetic on data it cannot join before anything trains, naming the file."""
    if args.synthetic and (why := training_problem(ws)):
        raise EdgekdError(f"{args.data or 'the synthetic demo corpus'}: {why} (--synthetic 0 trains without them)")


def _strategy(text: str) -> str | dict[str, float]:
    from edgekd.losses import parse_strategy

    try:
        return parse_strategy(text)
    except EdgekdError as exc:
        raise EdgekdError(f"--strategy {exc}") from None


def _params(items: list[str]) -> dict[str, Any]:
    from edgekd.losses import parse_params

    try:
        return parse_params(items)
    except EdgekdError as exc:
        raise EdgekdError(f"--param {exc}") from None


def run_train(args: argparse.Namespace) -> int:
    from edgekd.train import train_run

    _threads(args)
    ws = load_windows(args.data)
    _check_synthetic(args, ws)
    cfg = _config(args, blocks=args.blocks, in_channels=args.in_channels or min(ws.n_channels, MAX_IN_CHANNELS))
    metrics = train_run(ws, cfg, Path(args.out), progress=not args.quiet)
    if args.json:
        print_json(metrics)
    else:
        print_table([{k: metrics.get(k) for k in ("blocks", "in_channels", "fold", "mae_argmax", "mae_expectation",
                                              "mae_causal", "mae_fused", "params", "macs", "best_epoch", "epochs_run",
                                              "train_time_s", "windows_per_s")}],
                    title=f"run written to {args.out}")
    return 0


def run_distill(args: argparse.Namespace) -> int:
    from edgekd.distill import distill

    _threads(args)
    t0 = time.perf_counter()
    ws = load_windows(args.data)
    demo = args.data is None
    if args.epochs is None:
        args.epochs = DEMO_EPOCHS if demo else RUN.epochs
    if args.synthetic is None:  # none where the data are the synthetic corpus already (the demo, `data synth`)
        args.synthetic = 0 if SYNTHETIC in ws.datasets() else RECIPE.synthetic
    # Any teacher setting asks for distillation: the recipe alone (scratch) is the default only without one.
    teacher_flags = [flag for flag, value in (
        ("--teacher", args.teacher), ("--teacher-blocks", args.teacher_blocks),
        ("--teacher-in-channels", args.teacher_in_channels), ("--teacher-epochs", args.teacher_epochs),
        ("--intermediate-blocks", args.intermediate_blocks), ("--no-scratch", args.no_scratch),
        ("--param", args.param)) if value]
    if args.strategy is None:
        args.strategy = DEMO_STRATEGY if demo or teacher_flags else "scratch"
    if args.strategy == "scratch" and teacher_flags:
        raise EdgekdError(f"--strategy scratch trains the student alone: {', '.join(teacher_flags)} would be ignored")
    _check_synthetic(args, ws)
    channels = args.in_channels or min(ws.n_channels, MAX_IN_CHANNELS)
    student = _config(args, blocks=args.student_blocks, in_channels=channels,
                      strategy=_strategy(args.strategy), params=_params(args.param))
    plan = DistillPlan(student=student, teachers=args.teacher or [], teacher_blocks=args.teacher_blocks or
                       DEMO_TEACHER_BLOCKS,
                       teacher_in_channels=args.teacher_in_channels or channels, teacher_epochs=args.teacher_epochs,
                       intermediate_blocks=args.intermediate_blocks, scratch=not args.no_scratch)
    check_table(args, "distill")
    rows = distill(ws, plan, args.out, progress=not args.quiet)
    if args.table:
        publish_table(args, "distill", data=str(args.data) if args.data else "the embedded synthetic corpus",
                      fold=args.fold, seed=args.seed, epochs=args.epochs,
                      teacher_epochs=args.teacher_epochs or args.epochs, synthetic=args.synthetic, rows=rows)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["model", "blocks", "in_channels", "mae_argmax", "mae_expectation", "mae_causal", "mae_fused",
                           "params", "macs", "train_s", "run"],
                    ["model", "blocks", "ch", "MAE argmax", "MAE expect.", "MAE tracked", "MAE fused", "params", "MACs",
                     "train s", "run"],
                    title=f"fold {args.fold} test subjects, MAE in BPM ({time.perf_counter() - t0:.0f} s)")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from edgekd.checkpoint import load_model, model_spec, shipped_decoder, shipped_tracker
    from edgekd.evaluate import GROUPS, MAE_KEYS, evaluate_model, mae_report
    from edgekd.train import synthetic_leak

    ws = load_windows(args.data)
    if why := synthetic_leak(args.model, ws.datasets()):
        raise EdgekdError(f"{args.data or 'the synthetic default corpus'}: {why}; pass --data with windows it never "
                          "saw")
    fusion = decoder_config(args, shipped_decoder(args.model))
    tracker = tracker_config(args, shipped_tracker(args.model))
    if args.runtime == "torch":
        report = evaluate_model(load_model(args.model), ws, args.device, fusion, tracker)
    else:
        spec = model_spec(args.model)
        if spec["in_channels"] > ws.n_channels:
            raise EdgekdError(f"{args.model}: expects {spec['in_channels']} channels, the data have {ws.n_channels}")
        ws = ws.first_channels(spec["in_channels"])  # what the device feeds the decoder too (no ACC: no motion)
        report = mae_report(artifact_logits(Path(args.model), args.runtime, ws.x), ws, fusion, tracker=tracker)
    report = {"model": args.model, "runtime": args.runtime, **report}
    if args.json:
        print_json(report)
        return 0
    columns = ["windows", *MAE_KEYS]
    headers = ["windows", "argmax", "expect.", "tracked", "fused", "fused@90%", "fused@80%"]
    print_table([report], ["model", "runtime", *columns], ["model", "runtime", *headers],
                title="overall (MAE in BPM; fused@N% = the N % most confident windows)")
    for key, label in GROUPS:
        if key in report and (key != "per_dataset" or len(report[key]) > 1):
            print()
            print_table([{label: g, **v} for g, v in report[key].items()], [label, *columns], [label, *headers],
                        title=f"per {label}")
    return 0
