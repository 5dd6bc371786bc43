"""Train one student (an edgekd.arch family) on one fold and write its run folder (layout: :mod:`edgekd.runs`).

Design (DESIGN.md "Performance design"): the whole WindowSet is one tensor on the training device and
batches are indexed from it (no DataLoader); teacher outputs come precomputed from :mod:`edgekd.teacher`.
Adam + cosine schedule (per step), label cross-entropy plus the strategy's terms (:mod:`edgekd.losses`),
optional augmentation (:mod:`edgekd.augment`), best checkpoint and early stopping by validation loss (or
validation MAE, ``RunConfig.select_on``) on a validation split of the *training* subjects, bf16 autocast on CUDA. On CPU a seed gives identical weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edgekd import __version__
from edgekd.atomic import ensure_dir, write_json, write_text
from edgekd.augment import augment
from edgekd.bpm import bpm_to_class, decode_argmax
from edgekd.checkpoint import load_model, model_folder, model_spec, save_weights
from edgekd.data.synthetic import DATASET as SYNTHETIC, training_subjects
from edgekd.errors import EdgekdError
from edgekd.evaluate import MAE_KEYS, mae_report, predict_logits
from edgekd.layout import CONFIG, LOG, METRICS, WEIGHTS, read_json_object, sha256_file
from edgekd.losses import DistillLoss, StudentOut, resolve_params
from edgekd import arch
from edgekd.runs import RunConfig, model_entry, resolve_fold
from edgekd.splits import Fold, validation_split
from edgekd.teacher import TeacherOutputs, load_teachers
from edgekd.windowset import WindowSet, concat, identity_hash, windows_hash


def resolve_device(device: str) -> torch.device:
    """'auto' = CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise EdgekdError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EdgekdError(f"device '{device}' requested but CUDA is not available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise EdgekdError(f"device '{device}' requested but Apple MPS is not available")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise EdgekdError(f"device '{device}' is not supported; use auto, cpu, cuda, cuda:N or mps")
    return dev


def build_loss(cfg: RunConfig, teacher_blocks: int | None) -> DistillLoss:
    """The strategy's loss module for ``cfg`` (validates strategy names and parameters)."""
    return DistillLoss(cfg.strategy_weights(), resolve_params(cfg.params, cfg.epochs),
                       arch.stage_widths(model_entry(cfg)), teacher_blocks, label_sigma=cfg.label_sigma)


def teacher_requirements(cfg: RunConfig, teacher_blocks: int) -> tuple[int | None, bool]:
    """(stage_index, pooled): what ``teacher_outputs`` must compute for ``cfg``'s strategy.

    Sweeps call this to compute one TeacherOutputs per teacher and pass it to ``train_run``.
    """
    loss = build_loss(cfg, teacher_blocks)
    return loss.teacher_stage, loss.needs_pooled


def resolved_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with strategy defaults filled in and the device resolved: what config.json records (and reads back:
    a ResNet's config has no width, so a teacher made from a spectral student's settings still matches its run)."""
    stored = RunConfig.from_dict(cfg.to_dict())
    return replace(stored, params=resolve_params(cfg.params, cfg.epochs), device=resolve_device(cfg.device).type)


def teacher_weights(teachers: list[str]) -> list[str]:
    """The sha256 of each teacher's weights file: what a distilled run learned from, recorded in its config."""
    return [sha256_file(Path(t) if str(t).endswith(".safetensors") else model_folder(t) / WEIGHTS) for t in teachers]


@dataclass
class _Fit:
    """Everything one run's epochs share: the data on the device, the model, its loss, optimiser and schedule."""

    cfg: RunConfig
    device: torch.device
    loss_fn: DistillLoss
    teacher: TeacherOutputs | None
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    gen: torch.Generator
    x: torch.Tensor  # all windows, the student's channels
    hr: torch.Tensor
    y: torch.Tensor
    train: torch.Tensor  # indices
    val: torch.Tensor


def train_run(ws: WindowSet, cfg: RunConfig, out_dir: str | Path, teacher: TeacherOutputs | None = None,
              progress: bool = True, teacher_cache: str | Path | None = None) -> dict[str, Any]:
    """Train ``cfg`` on ``ws`` and write ``out_dir`` (config.json, model.safetensors, log.jsonl, metrics.json).

    ``teacher``: precomputed outputs over all of ``ws`` (row i = window i); when None and the strategy
    needs one, they are computed from ``cfg.teachers`` (cached in memory, and in ``teacher_cache`` on disk).
    Returns the metrics written to metrics.json. Raises EdgekdError on bad input or a NaN loss; then no
    metrics.json is written and model.safetensors holds the last good (best-so-far) weights, if any.
    Three steps: prepare (check everything, write config.json), fit (epochs, best checkpoint, early stop),
    finalize (score the best weights on the fold's test subjects, write metrics.json last).
    """
    out_dir = Path(out_dir)
    fit, fold = _prepare(ws, cfg, out_dir, teacher, teacher_cache)
    best = Selection(cfg, out_dir)
    step_time, seen = 0.0, 0
    t_start = time.perf_counter()
    # disable=None: bars only on a terminal, so CI logs stay readable.
    bar = tqdm(range(cfg.epochs), desc=f"{cfg.blocks}b {cfg.strategy_label()}",
               disable=None if progress else True,
               leave=False, dynamic_ncols=True)
    for epoch in bar:
        t0 = time.perf_counter()
        train_loss, parts, n_seen = _fit_epoch(fit, epoch)
        step_time += time.perf_counter() - t0
        seen += n_seen
        if not math.isfinite(train_loss):
            bar.close()
            raise best.diverged(train_loss, epoch)
        val_loss, val_mae = _validate(fit)
        stop = best.update(fit, epoch, train_loss, parts, val_loss, val_mae)
        bar.set_postfix(loss=f"{train_loss:.3f}", val_mae=f"{val_mae:.2f}")
        if stop:
            break
    bar.close()
    fit.model.load_state_dict(best.state)
    return _finalize(fit, ws, fold, out_dir, best, {
        "epochs_run": best.epochs_run, "train_time_s": time.perf_counter() - t_start,
        "windows_per_s": seen / step_time if step_time > 0 else None})


class Selection:
    """One run's best checkpoint (by ``select_on``), early stopping and log.jsonl, epoch by epoch: the
    weights file always holds the best epoch so far."""

    def __init__(self, cfg: RunConfig, out_dir: Path):
        self.cfg, self.out_dir = cfg, out_dir
        self.score, self.val_loss, self.epoch, self.epochs_run = math.inf, math.inf, -1, 0
        self.state: dict[str, torch.Tensor] | None = None
        self.log: list[str] = []

    def update(self, fit: "_Fit", epoch: int, train_loss: float, parts: dict[str, float], val_loss: float,
               val_mae: float) -> bool:
        """Record an epoch of ``fit.model`` (saving it when it is the best so far); True when training stops."""
        self.epochs_run = epoch + 1
        score = val_loss if self.cfg.select_on == "val_loss" else val_mae
        improved = score < self.score
        if improved:
            self.score, self.val_loss, self.epoch = score, val_loss, epoch
            self.state = {k: v.detach().clone() for k, v in fit.model.state_dict().items()}
            save_weights(fit.model, self.out_dir / WEIGHTS)
        self.log.append(json.dumps({"epoch": epoch + 1, "train_loss": train_loss, **parts,
                                    "val_loss": val_loss, "val_mae_argmax": val_mae,
                                    "lr": fit.sched.get_last_lr()[0], "best": improved}))
        write_text(self.out_dir / LOG, "\n".join(self.log) + "\n")
        return epoch - self.epoch >= self.cfg.patience

    def diverged(self, train_loss: float, epoch: int) -> EdgekdError:
        kept = f"; {self.out_dir / WEIGHTS} keeps the weights of epoch {self.epoch + 1}" if self.state else ""
        return EdgekdError(f"{self.out_dir}: loss became {train_loss} in epoch {epoch + 1} (try a lower --lr){kept}")


def _prepare(ws: WindowSet, cfg: RunConfig, out_dir: Path, teacher: TeacherOutputs | None,
             teacher_cache: str | Path | None) -> tuple[_Fit, Fold]:
    """Check the config, data and teacher (nothing is written before they pass), write config.json, and
    build the model, loss, optimiser and device tensors."""
    cfg.validate()
    device = resolve_device(cfg.device)
    if cfg.in_channels > ws.n_channels:
        raise EdgekdError(f"the student reads {cfg.in_channels} channels but the data have {ws.n_channels} "
                          f"({', '.join(ws.channels)})")
    for t in cfg.teachers:  # the distillation terms read a ResNet1D teacher's stages
        if arch.family(model_spec(t)) != "resnet":
            raise EdgekdError(f"{t}: a teacher must be a ResNet1D, not a {arch.describe(model_spec(t))}")
    teacher_blocks = teacher.blocks if teacher is not None else (
        model_spec(cfg.teachers[0])["blocks"] if cfg.teachers else None)
    torch.manual_seed(cfg.seed)  # the strategy's adapters (feature, ppg-distill) start from the seed too
    loss_fn = build_loss(cfg, teacher_blocks)
    data = {"dataset": ws.provenance.get("dataset"), "hash": identity_hash(ws), "windows_hash": windows_hash(ws),
            "windows": len(ws), "channels": list(ws.channels)}  # the data as given: what reuse and checks compare
    if cfg.synthetic and teacher is not None:
        raise EdgekdError("precomputed teacher outputs cover the data alone, not the synthetic training subjects: "
                          "let train_run compute them from cfg.teachers")
    given = ws
    ws, fold, train_idx, val_idx = training_split(given, cfg)
    refuse_synthetic_leaks(cfg, given.dataset[fold.test].tolist())
    if loss_fn.needs_teacher:
        if teacher is None:
            _check_teacher_folds(cfg, given)
            teacher = load_teachers(cfg.teachers, ws, device, stage_index=loss_fn.teacher_stage,
                                    pooled=loss_fn.needs_pooled, cache_dir=teacher_cache)
        _check_teacher(teacher, loss_fn, len(ws))
        teacher = teacher.to(device)
    if len(train_idx) < 2 or len(val_idx) == 0:
        raise EdgekdError(f"fold {cfg.fold}: too few training windows for a validation split "
                          f"({len(train_idx)} train / {len(val_idx)} validation)")
    init_state = _init_state(cfg)

    ensure_dir(out_dir)
    # A rerun is incomplete until it finishes (metrics.json last); the old weights go too, so an
    # interrupted rerun can never pair the new config with the previous run's model.
    for stale in (METRICS, LOG, WEIGHTS):
        (out_dir / stale).unlink(missing_ok=True)
    write_json(out_dir / CONFIG, {
        **resolved_config(cfg).to_dict(), "model": model_entry(cfg),
        "data": data,
        "teacher": None if not loss_fn.needs_teacher else {
            "blocks": teacher.blocks, "in_channels": teacher.in_channels, "members": teacher.members,
            "stage_index": teacher.stage_index, **({"weights": teacher_weights(cfg.teachers)} if cfg.teachers else {})},
        # what the run started from: a retrained init_from means another run (edgekd.executor.reusable)
        **({"init_weights": teacher_weights([cfg.init_from])[0]} if cfg.init_from else {}),
        "edgekd_version": __version__,
    })

    torch.manual_seed(cfg.seed)  # the model's initialisation does not depend on the strategy
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    model = arch.build(model_entry(cfg))
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    loss_fn = loss_fn.to(device)
    hr_all = torch.from_numpy(ws.hr).to(device)
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, len(train_idx) // cfg.batch_size + (len(train_idx) % cfg.batch_size >= 2))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    return _Fit(cfg, device, loss_fn, teacher, model, opt, sched, gen,
                x=torch.from_numpy(ws.x[:, :cfg.in_channels]).to(device), hr=hr_all, y=bpm_to_class(hr_all),
                train=torch.from_numpy(train_idx).to(device), val=torch.from_numpy(val_idx).to(device)), fold


def training_split(ws: WindowSet, cfg: RunConfig) -> tuple[WindowSet, Fold, np.ndarray, np.ndarray]:
    """The windows a run trains on: ``ws`` with ``cfg.synthetic`` synthetic subjects appended, the fold (resolved
    on ``ws`` alone, so its test side is the data's own and keeps its indices) with the synthetic windows on its
    training side, and that side's train / validation indices (validation subjects drawn from all of it, the
    synthetic ones included, as the generalisation study trained)."""
    fold = resolve_fold(ws, cfg.fold, cfg.split_seed)
    if cfg.synthetic:
        extra = training_subjects(cfg.synthetic, ws)
        fold = replace(fold, train=np.concatenate([fold.train, np.arange(len(ws), len(ws) + len(extra))]))
        ws = concat([ws, extra], provenance=ws.provenance)
    train_idx, val_idx = validation_split(ws, fold.train, cfg.val_fraction, seed=cfg.split_seed)
    return ws, fold, train_idx, val_idx


def synthetic_leak(model: str | Path, scored: Iterable[str]) -> str | None:
    """Why the model in ``model`` (a run or artifact folder) may have seen windows it would be scored on: it trained
    with synthetic subjects and ``scored`` (the data sets of those windows) includes the synthetic corpus, whose
    subjects are the same generated ones (the embedded default corpus is their first 12). None when it cannot."""
    cfg_path = model_folder(model) / CONFIG
    if SYNTHETIC not in set(scored) or not cfg_path.is_file():
        return None
    n = read_json_object(cfg_path).get("synthetic") or 0
    return (f"{model}: trained with {n} synthetic subjects, and the windows it would be scored on include the "
            f"synthetic corpus (data set '{SYNTHETIC}'), which may be the same generated subjects") if n else None


def refuse_synthetic_leaks(cfg: RunConfig, tested: Iterable[str]) -> None:
    """Refuse a teacher or the ``init_from`` of ``cfg`` that may have seen windows its student is tested on
    (``synthetic_leak``; ``tested``: the data sets of the fold's test side)."""
    for model, role in [*((t, "teacher") for t in cfg.teachers), *([(cfg.init_from, "init_from")] if cfg.init_from
                                                                   else [])]:
        if why := synthetic_leak(model, tested):
            raise EdgekdError(f"{why} ({role})")


def _fit_epoch(fit: _Fit, epoch: int) -> tuple[float, dict[str, float], int]:
    """One pass over the training windows in a seeded random order: (mean loss, mean of each loss term,
    windows seen). One device sync per epoch."""
    cfg, device, loss_fn = fit.cfg, fit.device, fit.loss_fn
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    fit.model.train()
    loss_fn.train()
    perm = fit.train[torch.randperm(len(fit.train), generator=fit.gen, device=device)]
    total = torch.zeros((), device=device)
    parts_sum: dict[str, torch.Tensor] = {}
    n_batches = seen = 0
    for start in range(0, len(perm), cfg.batch_size):
        idx = perm[start:start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on one window
            continue
        xb, hrb = _batch_inputs(fit, idx)
        with torch.autocast(**autocast):
            out = StudentOut(*fit.model.forward_features(xb))
        loss, parts = _batch_loss(fit, out, idx, hrb, epoch)
        fit.opt.zero_grad(set_to_none=True)
        loss.backward()
        fit.opt.step()
        fit.sched.step()
        total += loss.detach()
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0) + v
        n_batches += 1
        seen += len(idx)
    return (float(total) / max(1, n_batches), {k: float(v) / max(1, n_batches) for k, v in parts_sum.items()},
            seen)


def _batch_inputs(fit: _Fit, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's windows and heart rates, augmented (from the run's own generator) when the run asks."""
    xb, hrb = fit.x[idx], fit.hr[idx]
    if fit.cfg.augment:
        xb, hrb = augment(xb, hrb, fit.gen, label_preserving=fit.loss_fn.needs_teacher)
    return xb, hrb


def _batch_loss(fit: _Fit, out: StudentOut, idx: torch.Tensor, hrb: torch.Tensor,
                epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The run's loss and its terms on a batch: the labels, and the teacher's outputs when the strategy reads them."""
    teacher = fit.teacher.batch(idx) if fit.teacher is not None and fit.loss_fn.needs_teacher else None
    return fit.loss_fn(out, teacher, bpm_to_class(hrb), epoch)


def _validate(fit: _Fit) -> tuple[float, float]:
    """(validation loss, validation argmax MAE) on the validation subjects."""
    val_logits = torch.from_numpy(predict_logits(fit.model, fit.x[fit.val], fit.device))
    return (float(F.cross_entropy(val_logits, fit.y[fit.val].cpu())),
            float((decode_argmax(val_logits) - fit.hr[fit.val].cpu()).abs().mean()))


def _finalize(fit: _Fit, ws: WindowSet, fold: Fold, out_dir: Path, best: Selection,
              timing: dict[str, Any]) -> dict[str, Any]:
    """Score the best weights on the fold's test subjects and write metrics.json, the completion marker."""
    cfg = fit.cfg
    if len(fold.test):
        # scored with the family's shipped decoder on the channels the model reads (as the device decodes them)
        test_ws = ws.subset(fold.test).first_channels(cfg.in_channels)
        report = mae_report(predict_logits(fit.model, fit.x[torch.from_numpy(fold.test).to(fit.device)], fit.device),
                            test_ws, arch.default_decoder(model_entry(cfg)))
    else:  # --fold all: nothing held out, so no test numbers (evaluate on other data)
        report = {"windows": 0, **{k: None for k in MAE_KEYS}}
    metrics = {
        "strategy": cfg.strategy_label(), **model_entry(cfg),
        "params": arch.params(model_entry(cfg)), "macs": arch.macs(model_entry(cfg)),
        "fold": cfg.fold, "seed": cfg.seed, "test_subjects": list(fold.test_subjects),
        **report,
        "best_epoch": best.epoch + 1, "epochs_run": timing["epochs_run"], "select_on": cfg.select_on,
        "val_score_best": best.score, "val_loss_at_best": best.val_loss,
        "train_windows": int(len(fit.train)), "val_windows": int(len(fit.val)),
        "train_time_s": timing["train_time_s"], "windows_per_s": timing["windows_per_s"],
        "device": fit.device.type, **{k: v for k, v in timing.items() if k == "grouped_with"},
        "weights_sha256": sha256_file(out_dir / WEIGHTS),  # ties this completion marker to these weights
    }
    write_json(out_dir / METRICS, metrics)
    return metrics


def _init_state(cfg: RunConfig) -> dict[str, torch.Tensor] | None:
    """The pretrained weights ``cfg.init_from`` names, checked to be this run's architecture."""
    if not cfg.init_from:
        return None
    pre = load_model(cfg.init_from)
    if pre.config() != model_entry(cfg):
        raise EdgekdError(f"{cfg.init_from}: init_from is a {arch.describe(pre.config())} with {pre.in_channels} "
                          f"channel(s), this run trains a {arch.describe(model_entry(cfg))} with {cfg.in_channels}")
    return pre.state_dict()


def _check_teacher_folds(cfg: RunConfig, ws: WindowSet) -> None:
    """A teacher run trained on these windows must have used the same split, or it saw the test subjects."""
    digest: tuple[str, str] | None = None
    for path in cfg.teachers:
        cfg_path = Path(path) / CONFIG
        if not cfg_path.exists():
            continue
        stored = read_json_object(cfg_path)
        if "fold" not in stored or not isinstance(stored.get("data"), dict):
            continue  # an exported artifact: no training split recorded
        digest = digest or (identity_hash(ws), windows_hash(ws))
        same_data = stored["data"].get("hash") == digest[0]
        if not same_data and stored["data"].get("windows_hash") == digest[1]:
            raise EdgekdError(f"{path}: teacher was trained on these windows with other labels or subject ids, so "
                              f"which of the student's test subjects it saw cannot be told; retrain the teacher on "
                              f"these data")
        if same_data and (stored["fold"], stored.get("split_seed", 0)) != (cfg.fold, cfg.split_seed):
            raise EdgekdError(f"{path}: teacher was trained on fold {stored['fold']} (split seed "
                              f"{stored.get('split_seed', 0)}) of these data, the student uses fold {cfg.fold} "
                              f"(split seed {cfg.split_seed}): the teacher has seen the student's test subjects")


def _check_teacher(teacher: TeacherOutputs, loss_fn: DistillLoss, n: int) -> None:
    if teacher.logits.shape[0] != n:
        raise EdgekdError(f"teacher outputs cover {teacher.logits.shape[0]} windows, the data have {n}")
    if loss_fn.teacher_stage is not None and (teacher.stage is None or teacher.stage_index != loss_fn.teacher_stage):
        raise EdgekdError(f"the strategy needs the teacher's block {loss_fn.teacher_stage} features; compute "
                          f"teacher_outputs(..., stage_index={loss_fn.teacher_stage}) (see teacher_requirements)")
    if loss_fn.needs_pooled and teacher.pooled is None:
        raise EdgekdError("the strategy needs the teacher's pooled embedding; "
                          "compute teacher_outputs(..., pooled=True)")
