"""Run configuration and run folders: the contract between training, sweeps, export and reports.

A run is one training of one model on one fold. Its folder holds:

- ``config.json``: the fully resolved :class:`RunConfig` (``to_dict()``) plus ``"model"``
  ({"blocks", "in_channels", "n_classes"}, what :func:`edgekd.checkpoint.load_model` reads) and
  ``"data"`` (data set name and content hash). Written first.
- ``model.safetensors``: the best weights so far (by validation loss), rewritten atomically on each
  improvement, so a killed or failed run always leaves the last good checkpoint.
- ``log.jsonl``: one JSON object per finished epoch (rewritten atomically each epoch).
- ``metrics.json``: written last. **A run is complete if and only if metrics.json exists.**

Fold specs (``RunConfig.fold``): ``"K/N"`` = fold K (1-based) of an N-fold subject split;
``"loso:SUBJECT"`` = leave that subject out; ``"lodo:DATASET"`` = leave that data set out (a merged
WindowSet, ``edgekd data merge``); ``"all"`` = train on every window, no test side (early stopping still
uses a subject holdout inside the training data); ``"holdout"`` or ``"holdout:0.2"`` = one
subject-independent split with that test fraction. ``split_seed`` shuffles subjects for K-fold and holdout and picks the
validation subjects; ``seed`` drives initialisation, batch order, dropout and augmentation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.bpm import N_CLASSES
from edgekd.errors import EdgekdError
from edgekd.layout import CONFIG, METRICS, WEIGHTS, read_json_object
from edgekd.losses import STRATEGIES, resolve_params
from edgekd.arch import FAMILIES, FAMILY, has_width, in_channels_problem
from edgekd.model import MAX_IN_CHANNELS
from edgekd.splits import Fold, holdout, kfold, parse_fold
from edgekd.windowset import WindowSet

SELECT_ON = ("val_loss", "val_mae")
MAX_SYNTHETIC_SUBJECTS = 1000  # 6 min each: already 20x the 60 the generalisation study used
DEFAULT_HOLDOUT = 0.2


@dataclass
class RunConfig:
    """Everything that determines one training run. JSON round-trip: ``from_dict(cfg.to_dict()) == cfg``.

    ``strategy`` is a name (``"scratch"``, ``"hard"``, ``"soft"``, ``"dkd"``, ``"feature"``,
    ``"ppg-distill"``) or a weighted composition such as ``{"dkd": 1.0, "feature": 1.0}``.
    ``params`` overrides strategy hyper-parameters (``T``, ``alpha``, ``beta``, ``warmup``,
    ``student_stage``, ``teacher_stage``, ``tau``, ``patch_seconds``, ...; defaults in
    :mod:`edgekd.losses`). ``teachers`` are run/artifact folders; several = an ensemble (averaged logits).
    The student sees ``ws.x[:, :in_channels]``; each teacher sees its own ``in_channels`` (cross-modal:
    teacher 4 = PPG + ACC, student 1 = PPG). ``select_on``: the validation number that picks the best
    epoch and drives early stopping: ``"val_loss"`` (label cross-entropy, WildPPG's rule) or
    ``"val_mae"`` (argmax MAE in BPM, the reported metric). ``label_sigma`` > 0 replaces one-hot labels by
    a Gaussian of that many BPM. ``init_from``: a run/artifact folder (or its .safetensors) of the same
    architecture whose weights start this run: pretrain on one WindowSet, fine-tune on another.
    ``family``: "resnet" (WildPPG's ResNet1D, ``blocks`` residual blocks), "tcn" (edgekd.tcn, ``blocks``
    separable blocks of ``width`` channels) or "spectral" (edgekd.spectral_net, ``blocks`` convolutions of
    ``width`` channels along the frequency axis).
    """

    blocks: int = 2
    family: str = "resnet"
    width: int = 16  # TCN / spectral channels (a ResNet's widths follow from its blocks)
    in_channels: int = 1
    strategy: str | dict[str, float] = "scratch"
    params: dict[str, Any] = field(default_factory=dict)
    teachers: list[str] = field(default_factory=list)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    fold: str = "1/2"
    split_seed: int = 0
    val_fraction: float = 0.15
    augment: bool = False
    label_sigma: float = 3.0  # Gaussian label smoothing (BPM); 0 = WildPPG's one-hot labels
    init_from: str | None = None
    patience: int = 10
    select_on: str = "val_mae"  # the number users judge a model by
    device: str = "auto"
    synthetic: int = 0  # subjects of the embedded synthetic corpus added to the training side (never tested on)

    def validate(self) -> None:
        """Refuse nonsense before anything trains: every field in range, strategy and parameters known,
        fold spec well-formed (whether its subjects exist is checked against the data by ``resolve_fold``)."""
        def integer(name: str, lo: int, hi: float = math.inf) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                rng = f">= {lo}" if hi == math.inf else f"{lo}..{int(hi)}"
                raise EdgekdError(f"{name} must be an integer {rng}, got {v!r}")

        def number(name: str, lo: float, strict: bool, hi: float = math.inf) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
                and (v > lo if strict else v >= lo) and v < hi
            if not ok:
                raise EdgekdError(f"{name} must be a finite number {'>' if strict else '>='} {lo:g}"
                                  f"{'' if hi == math.inf else f' and < {hi:g}'}, got {v!r}")

        if self.family not in FAMILIES:
            raise EdgekdError(f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        fam = FAMILY[self.family]
        integer("blocks", 1, fam.max_depth)
        if fam.widths:  # a ResNet's widths follow from its blocks (its width field is never read)
            integer("width", *fam.widths)
        integer("in_channels", 1, MAX_IN_CHANNELS)
        if why := in_channels_problem(self.family, self.in_channels):
            raise EdgekdError(why)
        integer("epochs", 1)
        integer("batch_size", 2)  # BatchNorm cannot train on one window
        integer("patience", 1)
        integer("seed", 0)
        integer("split_seed", 0)
        integer("synthetic", 0, MAX_SYNTHETIC_SUBJECTS)
        number("lr", 0.0, False)  # 0 = evaluate a fine-tuning start as is
        number("weight_decay", 0.0, False)
        number("label_sigma", 0.0, False)
        number("val_fraction", 0.0, True, 1.0)
        if self.select_on not in SELECT_ON:
            raise EdgekdError(f"select_on must be one of {', '.join(SELECT_ON)}, got {self.select_on!r}")
        if not isinstance(self.strategy, (str, dict)):
            raise EdgekdError(f"strategy must be a name or a {{name: weight}} table, got {self.strategy!r}")
        for name, w in (self.strategy.items() if isinstance(self.strategy, dict) else [(self.strategy, 1.0)]):
            if name not in STRATEGIES:
                raise EdgekdError(f"unknown strategy '{name}'; known: {', '.join(STRATEGIES)}")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
                raise EdgekdError(f"strategy weight of '{name}' must be a positive number, got {w!r}")
        if not isinstance(self.params, dict):
            raise EdgekdError(f"params must be a table of strategy parameters, got {self.params!r}")
        resolve_params(self.params, self.epochs, list(self.strategy_weights()))
        if not isinstance(self.teachers, list) or not all(isinstance(t, str) for t in self.teachers):
            raise EdgekdError(f"teachers must be a list of folders, got {self.teachers!r}")
        if not isinstance(self.fold, str):
            raise EdgekdError(f"fold must be a string such as 1/2, loso:S01 or holdout:0.2, got {self.fold!r}")
        parse_fold_spec(self.fold)

    def strategy_weights(self) -> dict[str, float]:
        """The strategy as {name: weight}; a bare name has weight 1."""
        if isinstance(self.strategy, str):
            return {self.strategy: 1.0}
        return {str(k): float(v) for k, v in self.strategy.items()}

    def strategy_label(self) -> str:
        """Short human name, e.g. ``dkd``, ``dkd+feature``, or with a weight other than 1 ``dkd+feature=0.5``
        (two compositions that train differently never share a label)."""
        return "+".join(k if w == 1 else f"{k}={w:g}" for k, w in self.strategy_weights().items())

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.family == "resnet":  # not part of a ResNet run: its config, and so its run name, stay as before
            del d["family"], d["width"]
        if not self.synthetic:  # likewise for runs without synthetic training subjects
            del d["synthetic"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``; extra keys of a run's config.json ("model", "data", ...) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_fold_spec(spec: str) -> tuple[str, object]:
    """("loso", subject) | ("lodo", dataset) | ("all", None) | ("holdout", fraction) | ("kfold", (k, n));
    EdgekdError for a malformed spec."""
    spec = spec.strip()
    if spec == "all":
        return "all", None
    if spec.startswith("lodo:"):
        if not spec[len("lodo:"):]:
            raise EdgekdError("fold lodo:DATASET needs a data set name")
        return "lodo", spec[len("lodo:"):]
    if spec.startswith("loso:"):
        subject = spec[len("loso:"):]
        if not subject:
            raise EdgekdError("fold loso:SUBJECT needs a subject id")
        return "loso", subject
    if spec.startswith("holdout"):
        rest = spec[len("holdout"):]
        if rest and not rest.startswith(":"):
            raise EdgekdError(f"fold {spec}: expected holdout or holdout:FRACTION")
        try:
            frac = float(rest[1:]) if rest else DEFAULT_HOLDOUT
        except ValueError:
            frac = math.nan
        if not 0 < frac < 1:
            raise EdgekdError(f"fold {spec}: the held-out fraction must be a number between 0 and 1 "
                              f"(e.g. holdout:0.2)")
        return "holdout", frac
    return "kfold", parse_fold(spec)


FOLD_GENERATORS = ("loso", "lodo", "holdout[:FRACTION]")  # what a plan's ``folds`` may say besides K


def fold_specs(folds: int | str, ws: WindowSet | None = None) -> list[str]:
    """The fold specs a plan's ``folds`` generates: an integer K >= 2, the K subject folds 1/K .. K/K; "loso",
    one loso:SUBJECT per subject of ``ws``; "lodo", one lodo:DATASET per data set of ``ws`` (at least two);
    "holdout" or "holdout:F", that one split. EdgekdError for anything else, or for loso / lodo without data."""
    wrong = (f"folds must be an integer K >= 2 (K subject folds) or one of {', '.join(FOLD_GENERATORS)}, "
             f"got {folds!r}")
    if isinstance(folds, bool) or not isinstance(folds, (int, str)):
        raise EdgekdError(wrong)
    if isinstance(folds, int):
        if folds < 2:
            raise EdgekdError(wrong)
        return [f"{k}/{folds}" for k in range(1, folds + 1)]
    if folds.startswith("holdout"):
        parse_fold_spec(folds)  # the fraction, checked
        return [folds]
    if folds not in ("loso", "lodo"):
        raise EdgekdError(wrong)
    what = "subjects" if folds == "loso" else "data sets"
    if ws is None:
        raise EdgekdError(f"folds = {folds!r} needs the data to list its {what}")
    names = ws.subjects() if folds == "loso" else ws.datasets()
    if len(names) < 2:
        raise EdgekdError(f"folds = {folds!r} needs at least two {what}; the data have {', '.join(names)}")
    return [f"{folds}:{name}" for name in names]


def resolve_fold(ws: WindowSet, spec: str, split_seed: int = 0) -> Fold:
    """The train/test windows of a fold spec (see module docstring). Raises EdgekdError on an empty side."""
    kind, value = parse_fold_spec(spec)
    if kind == "all":  # train on everything; early stopping still uses a subject holdout inside it
        return Fold(train=np.arange(len(ws)), test=np.arange(0), test_subjects=())
    if kind == "lodo":
        if value not in ws.datasets():
            raise EdgekdError(f"fold {spec}: data set '{value}' is not in the data (data sets: "
                              f"{', '.join(ws.datasets())}; merge several with `edgekd data merge`)")
        is_test = ws.dataset == value
        fold = Fold(train=(~is_test).nonzero()[0], test=is_test.nonzero()[0],
                    test_subjects=tuple(sorted(set(ws.subject[is_test].tolist()))))
    elif kind == "loso":
        subject = str(value)
        if subject not in set(ws.subject.tolist()):
            raise EdgekdError(f"fold {spec}: subject '{subject}' is not in the data "
                              f"(subjects: {', '.join(ws.subjects()[:10])}{' ...' if len(ws.subjects()) > 10 else ''})")
        is_test = ws.subject == subject
        fold = Fold(train=(~is_test).nonzero()[0], test=is_test.nonzero()[0], test_subjects=(subject,))
    elif kind == "holdout":
        fold = holdout(ws, float(value), seed=split_seed)  # type: ignore[arg-type]
    else:
        k, n = value  # type: ignore[misc]
        fold = kfold(ws, n, seed=split_seed)[k]
    if len(fold.train) == 0 or len(fold.test) == 0:
        raise EdgekdError(f"fold {spec}: empty {'training' if len(fold.train) == 0 else 'test'} side "
                          f"({len(fold.train)} train / {len(fold.test)} test windows)")
    return fold


def model_entry(cfg: RunConfig) -> dict[str, Any]:
    """The "model" entry of config.json that edgekd.checkpoint reads (an edgekd.arch spec)."""
    entry: dict[str, Any] = {"blocks": cfg.blocks, "in_channels": cfg.in_channels, "n_classes": N_CLASSES}
    return {"family": cfg.family, "width": cfg.width, **entry} if has_width(cfg.family) else entry


def is_complete(run_dir: str | Path) -> bool:
    """True when the run finished (metrics.json is written last)."""
    return (Path(run_dir) / METRICS).exists()


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise EdgekdError(f"{run_dir}: not a complete run (no {METRICS})")
    return read_json_object(path)


def read_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise EdgekdError(f"{run_dir}: not a run folder (no {CONFIG})")
    try:
        return RunConfig.from_dict(read_json_object(path))
    except TypeError as exc:
        raise EdgekdError(f"{path}: not a run config ({exc})") from None


def weights_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / WEIGHTS


