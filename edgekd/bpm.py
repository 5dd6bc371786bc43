"""Heart rate as classification: the one place for the class <-> BPM mapping and for decoding.

180 classes are 1-BPM bins for 30..209 BPM (WildPPG): label = round(bpm) - 30, clamped.
"""

from __future__ import annotations

import numpy as np
import torch

BPM_MIN = 30
N_CLASSES = 180
BPM_MAX = BPM_MIN + N_CLASSES - 1  # 209


def bpm_to_class(bpm: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Class index for each heart rate (BPM), clamped into 0..179."""
    if isinstance(bpm, torch.Tensor):
        return (torch.round(bpm) - BPM_MIN).clamp(0, N_CLASSES - 1).long()
    return np.clip(np.round(np.asarray(bpm, dtype=np.float64)) - BPM_MIN, 0, N_CLASSES - 1).astype(np.int64)


def class_to_bpm(cls: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Centre BPM of each class index."""
    if isinstance(cls, torch.Tensor):
        return cls.float() + BPM_MIN
    return np.asarray(cls, dtype=np.float32) + BPM_MIN


def bin_bpms() -> np.ndarray:
    """The BPM value of every class, shape [180]."""
    return np.arange(BPM_MIN, BPM_MIN + N_CLASSES, dtype=np.float32)


def decode_argmax(logits: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """BPM of the most likely class (WildPPG's decoding). ``logits``: [..., 180]."""
    if isinstance(logits, torch.Tensor):
        return class_to_bpm(logits.argmax(dim=-1))
    return class_to_bpm(np.asarray(logits).argmax(axis=-1))


def decode_expectation(logits: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Softmax-weighted mean BPM: smoother than argmax when the distribution is broad."""
    if isinstance(logits, torch.Tensor):
        probs = torch.softmax(logits.float(), dim=-1)
        return probs @ torch.as_tensor(bin_bpms(), device=probs.device)
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ bin_bpms().astype(np.float64)).astype(np.float32)


def gaussian_targets(cls: torch.Tensor, sigma: float) -> torch.Tensor:
    """Label distributions [N, 180]: a Gaussian of ``sigma`` BPM around each true class, normalised.

    HR classes are ordered, so a window labelled 72 BPM is also evidence for 71 and 73; hard one-hot
    targets waste that on a few thousand windows spread over 180 classes.
    """
    offsets = torch.arange(N_CLASSES, device=cls.device, dtype=torch.float32) - cls.float().unsqueeze(-1)
    w = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return w / w.sum(dim=-1, keepdim=True)
