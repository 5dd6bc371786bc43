"""Grouped training: runs of one shape (same student, input channels, epochs, batch size, optimiser settings and
training-set size; any strategy, teacher, fold or seed) trained together as one network, each with its own
loss, early stopping and run folder (DESIGN.md "Performance design": the paper's grid is hundreds of small
students, and one small student leaves a GPU idle).

The members' weights are stacked (``torch.func.stack_module_state``) and one forward runs them all
(``torch.func.vmap`` over ``functional_call``; a convolution under vmap is one grouped convolution), each on its
own batch. Each member is the run it would be alone, up to float rounding:
- its initial weights, batch order and augmentation come from its seed, as in edgekd.train;
- its dropout masks are drawn outside vmap from a copy of the random stream its own run would draw them from
  (edgekd.dropout), in the same order;
- the loss is the sum of the members' losses, so each member's gradient is its own loss's gradient; Adam and
  weight decay act element by element, so one optimiser over the stacked weights takes each member's own steps,
  and all members share the cosine schedule (same epochs and steps);
- BatchNorm statistics are per member (stacked buffers, updated in place through vmap).
Validation, best checkpoint and early stopping are per member (edgekd.train.Selection); a member that stops
keeps being computed (its result is its best epoch, saved when it was reached) until every member has stopped.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm import tqdm

from edgekd.dropout import draw, recording, supplied
from edgekd.errors import EdgekdError
from edgekd.losses import StudentOut
from edgekd.runs import RunConfig, model_entry
from edgekd.teacher import TeacherOutputs
from edgekd.train import Selection, _batch_inputs, _batch_loss, _finalize, _Fit, _prepare, _validate, training_split
from edgekd.windowset import WindowSet


def group_key(ws: WindowSet, cfg: RunConfig) -> str:
    """Runs with equal keys can train as one group: what must be shared for one forward and one schedule."""
    n_train = len(training_split(ws, cfg)[2])  # synthetic training subjects included
    # the device as configured: a driver without the workers' GPUs must still be able to group their runs
    return json.dumps({"model": model_entry(cfg), "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
                       "weight_decay": cfg.weight_decay, "device": cfg.device, "train_windows": n_train,
                       "synthetic": cfg.synthetic},  # members share one tensor of the windows
                      sort_keys=True)


class _Features(nn.Module):
    """forward = the student's forward_features, so functional_call returns logits, stages and pooled."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        return self.net.forward_features(x)


@dataclass
class _Member:
    fit: _Fit
    fold: Any
    out_dir: Path
    best: Selection
    dropout_gen: torch.Generator
    error: EdgekdError | None = None
    stopped: bool = False

    @property
    def active(self) -> bool:
        return self.error is None and not self.stopped


def _stream_after_init(device: torch.device) -> torch.Generator:
    """A generator in the state of the default one now: where the run's dropout would draw from next."""
    gen = torch.Generator(device=device)
    gen.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
    return gen


def train_group(ws: WindowSet, cfgs: list[RunConfig], out_dirs: list[Path],
                teachers: list[TeacherOutputs | None] | None = None, progress: bool = True,
                teacher_cache: str | Path | None = None) -> list[dict[str, Any] | EdgekdError]:
    """Train ``cfgs`` together into ``out_dirs`` (the run folders edgekd.train.train_run would write); per run its
    metrics, or the EdgekdError that stopped it (a diverged member does not stop the others)."""
    if len(cfgs) != len(out_dirs) or not cfgs:
        raise EdgekdError("train_group: one output folder per run, and at least one run")
    keys = {group_key(ws, c) for c in cfgs}
    if len(keys) > 1:
        raise EdgekdError(f"train_group: these runs differ in shape and cannot train as one group: {sorted(keys)}")
    teachers = teachers or [None] * len(cfgs)
    members = []
    for cfg, out_dir, teacher in zip(cfgs, out_dirs, teachers):
        fit, fold = _prepare(ws, cfg, Path(out_dir), teacher, teacher_cache)  # seeds, then builds the model
        if members:  # the same windows on the device once, not once per member
            fit.x, fit.hr, fit.y = members[0].fit.x, members[0].fit.hr, members[0].fit.y
        members.append(_Member(fit, fold, Path(out_dir), Selection(cfg, Path(out_dir)),
                               _stream_after_init(fit.device)))
    first = members[0].fit
    cfg, device = first.cfg, first.device
    params, buffers = stack_module_state([_Features(m.fit.model) for m in members])
    skeleton = _Features(copy.deepcopy(first.model)).to("meta").train()
    probe = copy.deepcopy(first.model).train()  # finds the dropout masks' shapes for a batch size
    masks_for: dict[int, list[tuple[torch.Size, float]]] = {}
    opt = torch.optim.Adam([*params.values(), *(p for m in members for p in m.fit.loss_fn.parameters())],
                           lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=first.sched.T_max)
    for m in members:
        m.fit.sched = sched  # the log's lr column reads the shared schedule

    def forward(p, b, x, masks):
        with supplied(masks):
            return functional_call(skeleton, (p, b), (x,))

    grouped = vmap(forward)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    step_time, seen = 0.0, 0
    t_start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=f"group of {len(members)}", disable=None if progress else True, leave=False,
               dynamic_ncols=True)
    for epoch in bar:
        t0 = time.perf_counter()
        for m in members:
            m.fit.loss_fn.train()
        perms = [m.fit.train[torch.randperm(len(m.fit.train), generator=m.fit.gen, device=device)] for m in members]
        totals = torch.zeros(len(members), device=device)
        parts_sum: list[dict[str, torch.Tensor]] = [{} for _ in members]
        n_batches = 0
        for start in range(0, len(perms[0]), cfg.batch_size):
            idx = [perm[start:start + cfg.batch_size] for perm in perms]
            if len(idx[0]) < 2:  # as edgekd.train: BatchNorm cannot train on one window
                continue
            xs, hrs = zip(*(_batch_inputs(m.fit, i) for m, i in zip(members, idx)))
            shapes = masks_for.get(len(idx[0]))
            if shapes is None:
                shapes = masks_for[len(idx[0])] = []
                with torch.no_grad(), recording(shapes):
                    probe(xs[0])
            masks = [torch.stack([draw(shape, p, device, xs[0].dtype, m.dropout_gen) for m in members])
                     for shape, p in shapes] if shapes else []
            with torch.autocast(**autocast):
                logits, feats, pooled = grouped(params, buffers, torch.stack(xs), masks)
            loss = torch.zeros((), device=device)
            for k, (m, i, hrb) in enumerate(zip(members, idx, hrs)):
                term, parts = _batch_loss(m.fit, StudentOut(logits[k], [f[k] for f in feats], pooled[k]), i, hrb,
                                          epoch)
                loss = loss + term
                totals[k] += term.detach()
                for name, v in parts.items():
                    parts_sum[k][name] = parts_sum[k].get(name, 0) + v
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            n_batches += 1
            seen += len(idx[0])
        step_time += time.perf_counter() - t0
        for k, m in enumerate(members):
            if not m.active:
                continue
            train_loss = float(totals[k]) / max(1, n_batches)
            if not math.isfinite(train_loss):
                m.error = m.best.diverged(train_loss, epoch)
                continue
            stacked = {**params, **buffers}  # also the non-persistent buffers (a spectral front end's tables)
            m.fit.model.load_state_dict({name: stacked[f"net.{name}"][k] for name in m.fit.model.state_dict()})
            val_loss, val_mae = _validate(m.fit)
            m.stopped = m.best.update(m.fit, epoch, train_loss,
                                      {n: float(v) / max(1, n_batches) for n, v in parts_sum[k].items()},
                                      val_loss, val_mae)
        bar.set_postfix(active=sum(m.active for m in members))
        if not any(m.active for m in members):
            break
    bar.close()
    out: list[dict[str, Any] | EdgekdError] = []
    for m in members:
        if m.error is not None:
            out.append(m.error)
            continue
        m.fit.model.load_state_dict(m.best.state)
        out.append(_finalize(m.fit, ws, m.fold, m.out_dir, m.best, {
            "epochs_run": m.best.epochs_run, "train_time_s": time.perf_counter() - t_start,
            "windows_per_s": seen / step_time if step_time > 0 else None, "grouped_with": len(members)}))
    return out
