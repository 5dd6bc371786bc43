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
``"loso:SUBJECT"`` = leave that subject out; ``"holdout"`` or ``"holdout:0.2"`` = one subject-independent
split with that test fraction. ``split_seed`` shuffles subjects for K-fold and holdout and picks the
validation subjects; ``seed`` drives initialisation, batch order, dropout and augmentation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.bpm import N_CLASSES
from edgekd.checkpoint import CONFIG, WEIGHTS
from edgekd.errors import EdgekdError
from edgekd.splits import Fold, holdout, kfold, parse_fold
from edgekd.windowset import WindowSet

METRICS = "metrics.json"
LOG = "log.jsonl"


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
    """

    blocks: int = 2
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
    label_sigma: float = 0.0
    init_from: str | None = None
    patience: int = 10
    select_on: str = "val_loss"
    device: str = "auto"

    def strategy_weights(self) -> dict[str, float]:
        """The strategy as {name: weight}; a bare name has weight 1."""
        if isinstance(self.strategy, str):
            return {self.strategy: 1.0}
        return {str(k): float(v) for k, v in self.strategy.items()}

    def strategy_label(self) -> str:
        """Short human name, e.g. ``dkd`` or ``dkd+feature``."""
        return "+".join(self.strategy_weights())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Inverse of ``to_dict``; extra keys of a run's config.json ("model", "data", ...) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def resolve_fold(ws: WindowSet, spec: str, split_seed: int = 0) -> Fold:
    """The train/test windows of a fold spec (see module docstring). Raises EdgekdError on an empty side."""
    spec = spec.strip()
    if spec.startswith("loso:"):
        subject = spec[len("loso:"):]
        if subject not in set(ws.subject.tolist()):
            raise EdgekdError(f"fold {spec}: subject '{subject}' is not in the data "
                              f"(subjects: {', '.join(ws.subjects()[:10])}{' ...' if len(ws.subjects()) > 10 else ''})")
        is_test = ws.subject == subject
        fold = Fold(train=(~is_test).nonzero()[0], test=is_test.nonzero()[0], test_subjects=(subject,))
    elif spec.startswith("holdout"):
        frac = float(spec.split(":", 1)[1]) if ":" in spec else 0.2
        fold = holdout(ws, frac, seed=split_seed)
    else:
        k, n = parse_fold(spec)
        fold = kfold(ws, n, seed=split_seed)[k]
    if len(fold.train) == 0 or len(fold.test) == 0:
        raise EdgekdError(f"fold {spec}: empty {'training' if len(fold.train) == 0 else 'test'} side "
                          f"({len(fold.train)} train / {len(fold.test)} test windows)")
    return fold


def model_entry(cfg: RunConfig) -> dict[str, int]:
    """The "model" entry of config.json that edgekd.checkpoint reads."""
    return {"blocks": cfg.blocks, "in_channels": cfg.in_channels, "n_classes": N_CLASSES}


def is_complete(run_dir: str | Path) -> bool:
    """True when the run finished (metrics.json is written last)."""
    return (Path(run_dir) / METRICS).exists()


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        raise EdgekdError(f"{run_dir}: not a complete run (no {METRICS})")
    return _read_json(path)


def read_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        raise EdgekdError(f"{run_dir}: not a run folder (no {CONFIG})")
    return RunConfig.from_dict(_read_json(path))


def weights_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / WEIGHTS


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise EdgekdError(f"{path}: not valid JSON ({exc})") from None
