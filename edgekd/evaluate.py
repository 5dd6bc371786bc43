"""MAE of a model's predictions on a WindowSet: overall, per subject, per recording, per activity.

Per-window decodings from :mod:`edgekd.bpm` (argmax, WildPPG's; softmax expectation) and the causal HR
tracker of :mod:`edgekd.tracking` run over each recording (what firmware running export/tracker reports),
on the model's logits alone (``mae_causal``) and fused with the window's PPG spectrum (``mae_fused``,
:mod:`edgekd.fusion`, what firmware running export/tracker/hr_spectral.c as well reports).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from edgekd.bpm import decode_argmax, decode_expectation
from edgekd.errors import EdgekdError
from edgekd.fusion import FusionConfig, fuse, spectral_evidence
from edgekd.model import ResNet1D
from edgekd.tracking import decode_recordings
from edgekd.windowset import WindowSet


@torch.no_grad()
def predict_logits(model: ResNet1D, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu",
                   batch_size: int = 1024) -> np.ndarray:
    """Logits [N, 180] (float32, numpy) of ``model`` in eval mode; ``x`` is [N, C, 200]."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    xt = torch.as_tensor(x).to(device)
    out = []
    for start in range(0, xt.shape[0], batch_size):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model(xt[start:start + batch_size]).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, model.n_classes), np.float32)


def _mae_by(groups: np.ndarray, err_a: np.ndarray, err_e: np.ndarray) -> dict[str, dict[str, float]]:
    return {str(g): {"mae_argmax": float(err_a[groups == g].mean()),
                     "mae_expectation": float(err_e[groups == g].mean()),
                     "windows": int((groups == g).sum())}
            for g in sorted(set(groups.tolist()))}


def mae_report(logits: np.ndarray, ws: WindowSet, fusion: FusionConfig = FusionConfig()) -> dict[str, Any]:
    """MAE (BPM) by argmax and expectation decoding, overall and per subject / recording / activity; plus
    the overall MAE of the causal tracker without and with spectral fusion (windows must be in time order
    within each recording)."""
    if len(ws) == 0:
        raise EdgekdError("cannot evaluate on an empty set of windows")
    if logits.shape[0] != len(ws):
        raise EdgekdError(f"{logits.shape[0]} predictions for {len(ws)} windows")
    err_a = np.abs(np.asarray(decode_argmax(logits)) - ws.hr)
    err_e = np.abs(np.asarray(decode_expectation(logits)) - ws.hr)
    err_c = np.abs(decode_recordings(logits, ws.recording, "causal") - ws.hr)
    fused = fuse(logits, spectral_evidence(ws), fusion)
    err_f = np.abs(decode_recordings(fused, ws.recording, "causal") - ws.hr)
    report: dict[str, Any] = {
        "mae_argmax": float(err_a.mean()),
        "mae_expectation": float(err_e.mean()),
        "mae_causal": float(err_c.mean()),
        "mae_fused": float(err_f.mean()),
        "fusion": asdict(fusion),
        "windows": len(ws),
        "per_subject": _mae_by(ws.subject, err_a, err_e),
        "per_recording": _mae_by(ws.recording, err_a, err_e),
    }
    if ws.activity is not None:
        report["per_activity"] = _mae_by(ws.activity, err_a, err_e)
    return report


def evaluate_model(model: ResNet1D, ws: WindowSet, device: str | torch.device = "cpu",
                   fusion: FusionConfig = FusionConfig()) -> dict[str, Any]:
    """``mae_report`` of a PyTorch model; the data must have the channels the model reads."""
    if model.in_channels > ws.n_channels:
        raise EdgekdError(f"model expects {model.in_channels} input channels, the data have {ws.n_channels}")
    return mae_report(predict_logits(model, ws.x[:, :model.in_channels], device), ws, fusion)
