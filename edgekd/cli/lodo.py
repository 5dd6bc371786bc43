"""`edgekd lodo`: leave-one-dataset-out over prepared data sets, every decoder choice nested (edgekd/lodo.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NoReturn

from edgekd.arch import FAMILIES
from edgekd.cli.args import int_at_least, non_negative_float, non_negative_int, positive_int, table_file
from edgekd.cli.output import print_json, print_table
from edgekd.executor import BACKENDS, GROUPING
from edgekd.lodo import INNER, LodoPlan
from edgekd.model import MAX_BLOCKS
from edgekd.windowset import WindowSet

STUDY_FILE = "lodo.json"  # OUT/lodo.json, its tables OUT/lodo.md
DEFAULT_OUT = Path("runs/lodo")
RUN_ONLY = ("threads", "backend", "grouped", "quiet", "json")  # how a study runs, not what it is: beside --plan
NOT_SETTINGS = ("command", "func", "parser", "flag_defaults", "data", "plan", "json", "quiet", "argv", "backend",
                "grouped")  # not recorded as the study's settings
PLAN_PATHS = ("out", "table", "init_from")  # paths in a plan are relative to the plan file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lodo", help="leave-one-dataset-out study with the decoder chosen nested",
                       description="Holds out each data set in turn: the students train on the others (--fold "
                                   "lodo:SET) and are scored on it with the decoder (fusion weights, the "
                                   "clear/unclear switch and its motion gate) chosen without the held-out set "
                                   "(--inner). Needs at least three data sets (one merged .npz, one .npz per set, or "
                                   "a --plan naming raw folders). Writes OUT/runs/, the study record "
                                   "OUT/lodo.json and its tables OUT/lodo.md (`edgekd report`). Runs are reused "
                                   "only when their config and data match, so an interrupted study resumes.")
    p.add_argument("data", nargs="*", type=Path, metavar="DATA",
                   help="WindowSet .npz file(s) holding >= 3 data sets (or give them in a --plan)")
    p.add_argument("--plan", type=Path, metavar="PLAN.toml",
                   help="run the study a plan file describes (models/sweeps/lodo-*.toml): its [data] table maps a "
                        "label to each source (a .npz, or a raw folder read by the loader the label names), its "
                        "other keys are this command's flags with underscores (blocks = [4], label_sigma = 3.0, "
                        "augment = true); out, table and init_from are relative to the plan. The record's command "
                        "is then `edgekd lodo --plan PLAN.toml`; a plan without out writes runs/lodo/PLAN (the "
                        "plan's name) in the current folder. Beside it only --threads, --backend, --grouped, "
                        "--quiet and --json")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"runs and results go here (default {DEFAULT_OUT})")
    add_study_args(p)
    # Flags keep no default in the parsed namespace (argparse.SUPPRESS), so `run` sees which ones were typed,
    # even at their default value, and refuses them beside a plan; `_with_defaults` fills in the rest.
    defaults = {a.dest: a.default for a in p._actions if a.option_strings and a.dest not in ("help", "plan")}
    for a in p._actions:
        if a.dest in defaults:
            a.default = argparse.SUPPRESS
    p.set_defaults(func=run, parser=p, flag_defaults=defaults)


def add_study_args(p: argparse.ArgumentParser) -> None:
    """The study's flags (a plan file's keys are their names)."""
    plan = LodoPlan()  # every default is the plan's (and through it RunConfig's)
    p.add_argument("--family", choices=FAMILIES, default=plan.family,
                   help=f"student family (default {plan.family}; teachers: resnet)")
    p.add_argument("--blocks", type=int, nargs="+", default=list(plan.blocks), choices=range(1, MAX_BLOCKS + 1),
                   metavar="N", help=f"student sizes: ResNet blocks, TCN or spectral depth (default "
                                     f"{' '.join(map(str, plan.blocks))})")
    p.add_argument("--widths", type=positive_int, nargs="+", default=list(plan.widths),
                   help=f"TCN / spectral channels, each with every --blocks (default {' '.join(map(str, plan.widths))})")
    p.add_argument("--synthetic", type=non_negative_int, default=0, metavar="SUBJECTS",
                   help="add this many subjects of the embedded synthetic corpus (6 min each) to the training data "
                        "of every model; never held out, never scored (default 0)")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=list(plan.seeds),
                   help="seeds of the outer students (inner models and the teacher keep seed 0, so the decoder "
                        "choice and the teacher are shared by every seed)")
    p.add_argument("--seeds-for", type=int, nargs="+", metavar="BLOCKS",
                   help="sizes that get every --seeds (default all); the others get the first seed only")
    p.add_argument("--strategies", nargs="+", default=list(plan.strategies),
                   help="outer students' strategies: scratch, or a distillation strategy such as dkd (trains a "
                        "teacher per fold on the same sets)")
    p.add_argument("--epochs", type=positive_int, default=plan.epochs, help=f"default {plan.epochs}")
    p.add_argument("--label-sigma", type=non_negative_float, default=plan.label_sigma,
                   help=f"default {plan.label_sigma:g}")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="local",
                   help="where the models train (edgekd.executor, as `edgekd sweep`): local, or ray (a task per "
                        "model or group on a Ray cluster, no shared disk needed); default local")
    p.add_argument("--grouped", choices=GROUPING, default="auto",
                   help="train same-shape models as one network: auto (on CUDA only, the default), on, off")
    p.add_argument("--augment", action="store_true", help="train every model with edgekd.augment")
    p.add_argument("--init-from", help="pretrained run of the same size that starts every model")
    p.add_argument("--teacher-blocks", type=int_at_least(1), default=plan.teacher_blocks,
                   help=f"teacher size for a distillation strategy (default {plan.teacher_blocks})")
    p.add_argument("--int8", type=int, nargs="+", default=[], metavar="BLOCKS",
                   help="also export the first-seed students of these sizes with --int8 (calibrated on the fold's "
                        "training sets) and score the TFLM interpreter's outputs on the held-out set")
    p.add_argument("--inner", choices=INNER, default=plan.inner,
                   help="how each fold chooses its decoder without its held-out set: 'datasets' (models trained on "
                        "one remaining set, scored on another) or 'subjects' (K subject folds over the fold's whole "
                        "training data, scored on their held-out subjects of each remaining set; nested "
                        "cross-validation; the default). A held-out set without accelerometer is a PPG-only device: "
                        "its fold scores the inner windows with their ACC zeroed")
    p.add_argument("--inner-folds", type=int_at_least(2), default=plan.inner_folds, metavar="K",
                   help=f"subject folds per held-out set with --inner subjects (default {plan.inner_folds})")
    p.add_argument("--within-folds", type=non_negative_int, default=plan.within_folds, metavar="K",
                   help="also train every student on K subject folds over all the sets together and score each set "
                        "on the out-of-fold outputs with the decoder the family ships: the within-distribution "
                        "number (new people, seen devices and motions) beside each held-out one (default 0: none)")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="also write the tables here (the README links models/results/) and the study record they "
                        "render from beside them (NAME.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from edgekd.errors import EdgekdError

    if args.plan:
        planned, sources = read_plan(args)
        try:  # a bad setting is refused before the data sets are read
            lodo_plan(planned)
        except EdgekdError as exc:
            raise EdgekdError(f"{args.plan}: {exc}") from None
        return study(load_sources(args.plan, sources), planned, ["edgekd", "lodo", "--plan", str(args.plan)],
                     spell_flags=False)
    if not args.data:
        raise EdgekdError("lodo: give the data (.npz files holding >= 3 data sets) or --plan PLAN.toml")
    _with_defaults(args)
    lodo_plan(args)
    return study(one_merged(args.data, {str(path): WindowSet.load(path) for path in args.data}), args,
                 ["edgekd", "lodo", *map(str, args.data)])


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with every flag that was not given at its default."""
    for dest, default in args.flag_defaults.items():
        if not hasattr(args, dest):
            setattr(args, dest, default)
    return args


def one_merged(source: object, sets: dict[str, WindowSet]) -> dict[str, WindowSet]:
    """``sets``, or when it is one merged file (``source``), its data sets each as if from its own file."""
    import numpy as np

    from edgekd.errors import EdgekdError

    if len(sets) > 1:
        return sets
    ((_, full),) = sets.items()
    if len(full.datasets()) < 2:
        raise EdgekdError(f"{source}: holds one data set ({full.datasets()[0]}); lodo needs at least three")
    return {name: full.subset(np.flatnonzero(full.dataset == name)) for name in dict.fromkeys(full.dataset.tolist())}


def study(sets: dict[str, WindowSet], args: argparse.Namespace, command: list[str], spell_flags: bool = True) -> int:
    """Run the study on ``sets`` (merged, plus the synthetic subjects) and write its record and tables. The
    record's command is ``command`` followed by every setting as a flag (``spell_flags``), or ``command`` alone
    (a plan's)."""
    import torch

    from edgekd.cli.report import check_destination, publish
    from edgekd.data.synthetic import TRAINING_MINUTES, TRAINING_SEED, generate
    from edgekd.lodo import run_lodo
    from edgekd.study_report import table_path
    from edgekd.windowset import merge

    torch.set_num_threads(args.threads)
    for path in (args.out / STUDY_FILE, args.table and args.table.with_suffix(".json")):
        if path:  # before hours of training, not after
            check_destination(path, "lodo")
    always: tuple[str, ...] = ()
    if args.synthetic:
        synthetic = generate(args.synthetic, TRAINING_MINUTES, TRAINING_SEED)
        always = tuple(synthetic.datasets())
        sets = {**sets, "synthetic": synthetic}
    full = merge(sets)
    plan = lodo_plan(args)
    settings = {k: v for k, v in vars(args).items() if k not in NOT_SETTINGS}
    record = run_lodo(full, plan, args.out, always, progress=not args.quiet, backend=args.backend,
                      grouping=args.grouped)
    command = command + _flags(settings) if spell_flags else command
    record = json.loads(json.dumps({**record, "command": " ".join(command),
                                    "settings": settings}, default=str))  # what a reader of the file sees
    for path in (args.out / STUDY_FILE, args.table and args.table.with_suffix(".json")):
        if path:
            publish(record, path)
    if args.json:
        print_json(record["summary"])
    else:
        print_table(record["summary"], title=f"leave-one-dataset-out, fused MAE (nested decoder), BPM; "
                                             f"tables in {table_path(args.out / STUDY_FILE)}")
    return 0


def lodo_plan(args: argparse.Namespace) -> LodoPlan:
    """The study's students and protocol from the parsed flags (checked before any data is read)."""
    from edgekd.lodo import LodoPlan

    return LodoPlan(family=args.family, blocks=tuple(args.blocks), widths=tuple(args.widths), seeds=tuple(args.seeds),
                    seeds_for=tuple(args.seeds_for) if args.seeds_for else None, strategies=tuple(args.strategies),
                    epochs=args.epochs, label_sigma=args.label_sigma, augment=args.augment, init_from=args.init_from,
                    teacher_blocks=args.teacher_blocks, int8=tuple(args.int8), inner=args.inner,
                    inner_folds=args.inner_folds, within_folds=args.within_folds)


def _flags(settings: dict) -> list[str]:
    out = []
    for k, v in settings.items():
        if v in (None, False, []):
            continue
        out.append("--" + k.replace("_", "-"))
        if v is not True:
            out.extend(map(str, v) if isinstance(v, list) else [str(v)])
    return out


def read_plan(args: argparse.Namespace) -> tuple[argparse.Namespace, dict[str, Path]]:
    """The settings and data sets of ``args.plan``: a TOML whose ``[data]`` table maps a label to each source (a
    WindowSet .npz, whose windows keep their data sets; or a raw folder, read by the loader the label names) and
    whose other keys are this command's flags (underscores for dashes), checked by the same parser; paths
    relative to the plan file."""
    import os

    from edgekd.errors import EdgekdError
    from edgekd.tomlfile import read_toml

    path: Path = args.plan
    parser: argparse.ArgumentParser = args.parser
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "plan")}
    given = [a.option_strings[0] for d, a in actions.items() if d not in RUN_ONLY and hasattr(args, d)]
    if args.data or given:
        raise EdgekdError(f"{path}: a plan is the whole study; give {', '.join(given or ['DATA'])} in the plan, "
                          f"not beside --plan")
    doc = read_toml(path, "study plan", ["data", *(d for d in actions if d not in RUN_ONLY)])
    data = doc.pop("data", None)
    if not isinstance(data, dict) or not data or not all(isinstance(v, str) for v in data.values()):
        raise EdgekdError(f"{path}: needs a [data] table: data set name = \"source\" (a .npz, or a raw folder "
                          f"the loader of that name reads)")
    argv = [] if "out" in doc else [f"--out={DEFAULT_OUT / path.stem}"]  # plans do not share one record
    for key, value in doc.items():
        action, flag = actions[key], actions[key].option_strings[0]
        switch, many = action.nargs == 0, action.nargs in ("+", "*")
        if switch != isinstance(value, bool) or (isinstance(value, list) and not many) or isinstance(value, dict):
            kind = "true or false" if switch else "a list" if many else "one value"
            raise EdgekdError(f"{path}: {key} must be {kind}, got {value!r}")
        if key in PLAN_PATHS and isinstance(value, str):
            value = os.path.relpath(path.parent / value)
        if switch:
            argv += [flag] if value else []
        elif many:
            values = value if isinstance(value, list) else [value]
            if not values and args.flag_defaults[key]:  # a list the study cannot do without (blocks, seeds)
                raise EdgekdError(f"{path}: {key} needs at least one value")
            argv += [flag, *map(str, values)] if values else []
        else:
            argv.append(f"{flag}={value}")  # one token: a value may start with '-'

    def refuse(message: str) -> NoReturn:  # a bad value names the plan, not a flag the user never typed
        raise EdgekdError(f"{path}: {message}")

    error, parser.error = parser.error, refuse  # type: ignore[method-assign]
    try:
        planned = parser.parse_args(argv)
    finally:
        parser.error = error  # type: ignore[method-assign]
    assert not planned.data  # every token above belongs to a flag
    for key in RUN_ONLY:
        setattr(planned, key, getattr(args, key, args.flag_defaults[key]))
    return _with_defaults(planned), {name: path.parent / source for name, source in data.items()}


def load_sources(plan: Path, sources: dict[str, Path]) -> dict[str, WindowSet]:
    """The data sets of a plan's ``[data]`` table: label -> a .npz (its windows keep their own data-set names; one
    merged file is split into them) or a raw folder (read by the loader the label names)."""
    from edgekd.data import load_dataset
    from edgekd.errors import EdgekdError

    sets = {}
    for name, src in sources.items():
        try:
            sets[name] = WindowSet.load(src) if src.suffix == ".npz" else load_dataset(name, src)
        except EdgekdError as exc:
            raise EdgekdError(f"{plan}: [data] {name}: {exc}") from None
    return one_merged(plan, sets)
