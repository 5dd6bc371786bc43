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

from edgekd import arch
from edgekd.bpm import decode_argmax, decode_expectation
from edgekd.errors import EdgekdError
from edgekd.fusion import FusionConfig, fuse, spectral_evidence, window_motion
from edgekd.model import ResNet1D
from edgekd.tracking import TrackerConfig, decode_recordings, track_with_confidence
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


DECODINGS = ("argmax", "expectation", "causal", "fused")
COVERAGES = (0.9, 0.8)  # shares of windows the fused decoder reports when it may say "no reading"
MAE_KEYS = (*(f"mae_{d}" for d in DECODINGS), *(f"mae_fused_cov{round(100 * c)}" for c in COVERAGES))
GROUPS = (("per_dataset", "dataset"), ("per_subject", "subject"), ("per_recording", "recording"),
          ("per_activity", "activity"))


def covered_mae(err: np.ndarray, conf: np.ndarray, coverage: float) -> float:
    """MAE over the ``coverage`` share of windows with the highest confidence (ties keep stored order)."""
    keep = max(1, int(round(coverage * len(err))))
    return float(err[np.argsort(-conf, kind="stable")[:keep]].mean())


def _metrics(errs: dict[str, np.ndarray], conf: np.ndarray, idx: np.ndarray | slice) -> dict[str, float]:
    out = {f"mae_{d}": float(e[idx].mean()) for d, e in errs.items()}
    for c in COVERAGES:
        out[f"mae_fused_cov{round(100 * c)}"] = covered_mae(errs["fused"][idx], conf[idx], c)
    return out


def mae_report(logits: np.ndarray, ws: WindowSet, fusion: FusionConfig,
               evidence: np.ndarray | None = None, tracker: TrackerConfig = TrackerConfig()) -> dict[str, Any]:
    """MAE (BPM) of every decoding (argmax, expectation, the causal ``tracker`` without and with spectral
    fusion), overall and per data set / subject / recording / activity, plus the fused decoder's MAE on the
    90 % and 80 % most confident windows (windows must be in time order within each recording).
    ``evidence``: ``spectral_evidence(ws)``, when the caller scores several models on the same windows."""
    if len(ws) == 0:
        raise EdgekdError("cannot evaluate on an empty set of windows")
    if logits.shape[0] != len(ws):
        raise EdgekdError(f"{logits.shape[0]} predictions for {len(ws)} windows")
    if evidence is None:
        evidence = spectral_evidence(ws)
    fused_bpm, conf = track_with_confidence(fuse(logits, evidence, fusion, window_motion(ws)), ws.recording, tracker)
    errs = {
        "argmax": np.abs(np.asarray(decode_argmax(logits)) - ws.hr),
        "expectation": np.abs(np.asarray(decode_expectation(logits)) - ws.hr),
        "causal": np.abs(decode_recordings(logits, ws.recording, "causal", tracker) - ws.hr),
        "fused": np.abs(fused_bpm - ws.hr),
    }
    report: dict[str, Any] = {**_metrics(errs, conf, slice(None)), "fusion": asdict(fusion),
                              "tracker": asdict(tracker), "windows": len(ws),
                              "mean_confidence": float(conf.mean())}
    for key, attr in GROUPS:
        groups = getattr(ws, attr)
        if groups is None:
            continue
        report[key] = {str(g): {"windows": int((groups == g).sum()), **_metrics(errs, conf, groups == g)}
                       for g in sorted(set(groups.tolist()))}
    return report


def evaluate_model(model: ResNet1D, ws: WindowSet, device: str | torch.device = "cpu",
                   fusion: FusionConfig | None = None, tracker: TrackerConfig = TrackerConfig()) -> dict[str, Any]:
    """``mae_report`` of a PyTorch model with ``fusion`` (None: its family's shipped decoder) and ``tracker``; the
    data must have the channels the model reads."""
    if fusion is None:
        fusion = arch.default_decoder(model.config())
    if model.in_channels > ws.n_channels:
        raise EdgekdError(f"model expects {model.in_channels} input channels, the data have {ws.n_channels}")
    ws = ws.first_channels(model.in_channels)  # the decoder reads what the device has: no ACC, no motion
    return mae_report(predict_logits(model, ws.x, device), ws, fusion, tracker=tracker)
