"""On-device personalisation: fine-tune only the last 1-2 layers on a few minutes of one user's labelled data.

Why only the last layers: a watch can afford the backward pass through the classifier (and the final
normalisation + last residual block), not through the whole network, and a few minutes of data would overfit
anything larger. The rest of the network stays frozen, batch-norm statistics included (the model runs in eval
mode: the calibration set is too small and too homogeneous to re-estimate them, and dropout off keeps the
few updates stable).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from edgekd.bpm import bpm_to_class
from edgekd.errors import EdgekdError
from edgekd.geometry import FS, STRIDE_S, WINDOW
from edgekd.arch import describe
from edgekd.model import ResNet1D
from edgekd.windowset import WindowSet


def trainable_modules(model: ResNet1D, layers: int) -> list[torch.nn.Module]:
    """layers=1: the classifier; layers=2: also the final batch-norm and the last residual block."""
    if not isinstance(model, ResNet1D):
        raise EdgekdError(f"personalize: fine-tunes the last layers of a ResNet1D student, not a "
                          f"{describe(model.config())}")
    if layers == 1:
        return [model.fc]
    if layers == 2:
        return [model.fc, model.final_bn, model.layers[-1]]
    raise EdgekdError(f"personalize: layers must be 1 or 2, got {layers}")


def calibration_split(ws: WindowSet, minutes: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, evaluation) window indices: the first ``minutes`` of each recording, and the rest minus
    the windows that overlap the calibration span (8 s windows 2 s apart share samples with their neighbours)."""
    n_calib = int(round(minutes * 60.0 / STRIDE_S))
    gap = int(np.ceil(WINDOW / FS / STRIDE_S))
    calib, rest = [], []
    for rec in dict.fromkeys(ws.recording.tolist()):
        idx = np.flatnonzero(ws.recording == rec)
        calib.append(idx[:n_calib])
        rest.append(idx[n_calib + gap:])
    calib_idx, rest_idx = np.concatenate(calib), np.concatenate(rest)
    if len(calib_idx) == 0 or len(rest_idx) == 0:
        raise EdgekdError(f"personalize: {minutes} min of calibration leaves {len(calib_idx)} calibration and "
                          f"{len(rest_idx)} evaluation windows; use fewer minutes or a longer recording")
    return calib_idx, rest_idx


def personalize(model: ResNet1D, ws_calib: WindowSet, layers: int = 1, epochs: int = 20, lr: float = 1e-3,
                batch_size: int = 32, seed: int = 0) -> ResNet1D:
    """A copy of ``model`` with its last ``layers`` (1 or 2) fine-tuned by cross-entropy on ``ws_calib``
    (one subject's labelled windows); every other parameter and batch-norm statistic is unchanged."""
    if len(ws_calib) == 0:
        raise EdgekdError("personalize: the calibration WindowSet has no windows")
    if ws_calib.n_channels < model.in_channels:
        raise EdgekdError(f"personalize: the model takes {model.in_channels} channels, the calibration data "
                          f"has {ws_calib.n_channels}")
    tuned = copy.deepcopy(model).cpu()
    for p in tuned.parameters():
        p.requires_grad_(False)
    params = [p for m in trainable_modules(tuned, layers) for p in m.parameters()]
    for p in params:
        p.requires_grad_(True)
    tuned.eval()
    x = torch.from_numpy(ws_calib.x[:, :model.in_channels])
    y = torch.as_tensor(bpm_to_class(ws_calib.hr))
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(batch_size):
            opt.zero_grad()
            F.cross_entropy(tuned(x[batch]), y[batch]).backward()
            opt.step()
    for p in tuned.parameters():
        p.requires_grad_(True)
    return tuned
