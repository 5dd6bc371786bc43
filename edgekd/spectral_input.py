"""The spectral student's input: per-window spectra on the class grid, so the learned part works in frequency.

Why (issue 14): every time-domain student scored 20-30 BPM argmax on a held-out data set, while the
ACC-suppressed PPG spectrum transferred (the spectral HMM); the students had learned each training set's
heart-rate prior and morphology instead of the pulse. A network that reads spectra sampled at the 180 class
BPMs and answers with one logit per class through convolutions along the frequency axis cannot hold a prior
over absolute heart rate (the same kernel runs at every BPM), and it sees the pulse's harmonic and the
cadence's relation to it through the channels below instead of through a data-set-specific waveform.

Channels ([N, 7, 180], every one ``log(FLOOR + power / max power)`` over the window's own 180 bins, so the
scale of a device's signal does not matter):

0-2  PPG power at each class BPM b, at 2 b (the pulse's harmonic) and at b / 2 (b is the harmonic of b / 2);
3-5  ACC power (the three axes' powers summed) at b, b / 2 and 2 b (cadence and its harmonics);
6    the fusion's spectral evidence (edgekd.fusion.spectral_evidence: PPG power with the ACC peaks and their
     harmonics suppressed), the channel the network's output is added to (it learns a correction of the
     spectrum, not a heart rate from nothing).

Data without ACC give channels 3-5 the constant ``log(FLOOR)`` and an unsuppressed evidence.

Two implementations: ``features`` in NumPy float32 with the Goertzel loop and operation order of
export/tracker/hr_spectral.c (the reference firmware and runtimes feed the exported model), and the
network's own torch front end (``TorchFeatures``: the same powers by matrix products, differentiable
batches on any device, equal to float rounding, tested against ``features``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgekd.baseline import BaselineConfig
from edgekd.bpm import N_CLASSES, bin_bpms
from edgekd.fusion import ACC_BPM, goertzel_power, hann_window, spectral_evidence_from_power, sum_axes
from edgekd.geometry import FS, WINDOW

FLOOR = 0.01  # HR_SPECTRAL_FEATURE_FLOOR in export/tracker/hr_spectral.h
HARMONIC, SUBHARMONIC = 2.0, 0.5  # the C's coeff_double and coeff_half tables (export.tracker_tables)
MULTIPLES_PPG = (1.0, HARMONIC, SUBHARMONIC)
ACC_EXTRA = (SUBHARMONIC, HARMONIC)  # ACC power at b itself is read off the evidence's ACC grid (the classes are its top bins)
MULTIPLES_ACC = (1.0,) + ACC_EXTRA
N_FEATURES = len(MULTIPLES_PPG) + len(MULTIPLES_ACC) + 1
EVIDENCE = N_FEATURES - 1  # the channel the network's output is added to
CLASSES_IN_ACC_GRID = slice(int(np.searchsorted(ACC_BPM, bin_bpms()[0])), None)  # the ACC grid's bins at the classes


# log_portable() of hr_spectral.c: float32 constants 1/9, 1/7, 1/5, 1/3, ln 2 and sqrt(1/2), as the C spells them.
_LOG_SERIES = tuple(np.float32(v) for v in ("0.111111112", "0.142857149", "0.200000003", "0.333333343"))
_LN2, _SQRT_HALF = np.float32("0.693147182"), np.float32("0.707106769")


def log32(x: np.ndarray) -> np.ndarray:
    """Natural log (x > 0) in float32 with hr_spectral.c's log_portable operation order, bit for bit: frexp,
    then 2 s (1 + s^2/3 + s^4/5 + s^6/7 + s^8/9) with s = (m - 1) / (m + 1). libm's logf and NumPy's log each
    round differently (and differently on the device), which would flip the firmware's int8 input."""
    m, e = np.frexp(np.asarray(x, np.float32))
    low = m < _SQRT_HALF
    m = np.where(low, m * np.float32(2), m).astype(np.float32)
    e = np.where(low, e - 1, e).astype(np.float32)
    s = (m - np.float32(1)) / (m + np.float32(1))
    z = s * s
    p = _LOG_SERIES[0]
    for c in _LOG_SERIES[1:]:
        p = p * z + c
    p = p * z + np.float32(1)
    return (e * _LN2 + (s + s) * p).astype(np.float32)


def _log_normalised(power: np.ndarray) -> np.ndarray:
    """log(FLOOR + power / max) per row (float32); an all-zero row (no ACC) gives log(FLOOR) everywhere."""
    peak = power.max(axis=-1, keepdims=True)
    rel = np.where(peak > 0, power / np.where(peak > 0, peak, np.float32(1)), np.float32(0))
    return log32(np.float32(FLOOR) + rel.astype(np.float32))


def features(x: np.ndarray, acc_channels: list[int], cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """[N, 7, 180] float32 input of the spectral student for windows ``x`` [N, C, 200] (reference, C order)."""
    x = np.asarray(x, np.float32)
    classes = bin_bpms()
    ppg = [goertzel_power(x[:, 0], classes * np.float32(m)) for m in MULTIPLES_PPG]
    out = [_log_normalised(p) for p in ppg]
    if acc_channels:
        axes = x[:, acc_channels]
        acc_grid = sum_axes(goertzel_power(axes, ACC_BPM))
        acc = [acc_grid[:, CLASSES_IN_ACC_GRID]] + [sum_axes(goertzel_power(axes, classes * np.float32(m)))
                                                    for m in ACC_EXTRA]
    else:
        acc_grid = None
        acc = [np.zeros_like(ppg[0]) for _ in MULTIPLES_ACC]
    out += [_log_normalised(a) for a in acc]
    evidence = spectral_evidence_from_power(ppg[0], acc_grid, cfg)
    out.append(log32(np.float32(FLOOR) + evidence))
    return np.stack(out, axis=1)


def model_input(x: np.ndarray, in_channels: int) -> np.ndarray:
    """What an exported spectral student reads, [N, 7, 180], for windows x [N, in_channels, 200] (channel 0
    PPG, 1-3 ACC when in_channels is 4): ``features``, as hr_spectral_features() computes it in firmware."""
    return features(x, [1, 2, 3] if in_channels >= 4 else [])


def front_macs(in_channels: int) -> int:
    """Multiply-adds per window of hr_spectral_features(): one Goertzel step per sample and distinct frequency
    (PPG at b, 2 b and b / 2; each ACC axis at the evidence's grid, b / 2 and 2 b; the C computes a frequency
    that two channels share once). The evidence every family's decoder computes (PPG at 180 frequencies, ACC at
    192) is part of it."""
    classes = bin_bpms()
    ppg = np.unique(np.concatenate([classes * np.float32(m) for m in MULTIPLES_PPG]))
    acc = np.unique(np.concatenate([ACC_BPM] + [classes * np.float32(m) for m in ACC_EXTRA]))
    return WINDOW * (len(ppg) + (3 * len(acc) if in_channels >= 4 else 0))


def _dft(bpm: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Hann-windowed cos and sin matrices [200, F]: |x_centred @ cos|^2 + |x_centred @ sin|^2 is the
    Goertzel power at ``bpm``."""
    n = np.arange(WINDOW, dtype=np.float64)[:, None]
    w = 2.0 * np.pi * np.asarray(bpm, np.float64)[None, :] / 60.0 / FS
    hann = hann_window(WINDOW).astype(np.float64)[:, None]
    return (torch.tensor(hann * np.cos(w * n), dtype=torch.float32),
            torch.tensor(hann * np.sin(w * n), dtype=torch.float32))


class TorchFeatures(nn.Module):
    """``features`` as a torch module (no parameters): windows [N, C, 200] -> [N, 7, 180]. ``in_channels`` 4:
    channel 0 PPG, 1-3 ACC; 1: PPG only."""

    def __init__(self, in_channels: int, cfg: BaselineConfig = BaselineConfig()):
        super().__init__()
        self.has_acc, self.cfg = in_channels >= 4, cfg
        classes = bin_bpms()
        ppg = np.concatenate([classes * m for m in MULTIPLES_PPG])
        acc = np.concatenate([ACC_BPM] + [classes * m for m in ACC_EXTRA])
        for name, grid in (("ppg", ppg), ("acc", acc)):
            cos, sin = _dft(grid)
            self.register_buffer(f"{name}_cos", cos, persistent=False)
            self.register_buffer(f"{name}_sin", sin, persistent=False)
        self.register_buffer("classes", torch.tensor(classes), persistent=False)
        self.register_buffer("acc_bpm", torch.tensor(ACC_BPM), persistent=False)

    @staticmethod
    def _power(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-1, keepdim=True)
        return (x @ cos) ** 2 + (x @ sin) ** 2

    @staticmethod
    def _log_normalised(p: torch.Tensor) -> torch.Tensor:
        peak = p.amax(dim=-1, keepdim=True)
        return torch.log(FLOOR + torch.where(peak > 0, p / peak.clamp_min(1e-30), torch.zeros_like(p)))

    def suppression(self, acc: torch.Tensor) -> torch.Tensor:
        """edgekd.baseline.acc_suppression for a batch of ACC spectra [N, len(ACC_BPM)] -> [N, 180]."""
        cfg = self.cfg
        mean = acc.mean(dim=-1, keepdim=True)
        peak = torch.zeros_like(acc, dtype=torch.bool)
        peak[:, 1:-1] = (acc[:, 1:-1] > acc[:, :-2]) & (acc[:, 1:-1] >= acc[:, 2:])
        peak &= (acc > cfg.acc_prominence * mean) & (mean > 0)
        score = torch.where(peak, acc, torch.full_like(acc, -1.0))
        top, idx = score.topk(min(cfg.acc_peaks, acc.shape[-1]), dim=-1)  # [N, P]
        found = top > 0
        harmonics = torch.arange(1, cfg.acc_harmonics + 1, device=acc.device, dtype=acc.dtype)
        centres = self.acc_bpm[idx][..., None] * harmonics  # [N, P, H]
        near = (self.classes[None, None, None, :] - centres[..., None]).abs() <= cfg.acc_tol_bpm
        hit = (near & found[..., None, None]).flatten(1, 2).any(dim=1)  # [N, 180]
        return torch.where(hit, torch.full_like(hit, cfg.acc_attenuation, dtype=acc.dtype),
                           torch.ones_like(hit, dtype=acc.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        ppg = self._power(x[:, 0], self.ppg_cos, self.ppg_sin).split(N_CLASSES, dim=-1)
        out = [self._log_normalised(p) for p in ppg]
        if self.has_acc:
            acc = sum(self._power(x[:, a], self.acc_cos, self.acc_sin) for a in (1, 2, 3))
            grid, *extra = acc.split([len(ACC_BPM)] + [N_CLASSES] * len(ACC_EXTRA), dim=-1)
            out += [self._log_normalised(a) for a in [grid[:, CLASSES_IN_ACC_GRID]] + extra]
            evidence = ppg[0] * self.suppression(grid)
        else:
            out += [torch.full_like(ppg[0], float(np.log(np.float32(FLOOR))))] * len(MULTIPLES_ACC)
            evidence = ppg[0]
        peak = evidence.amax(dim=-1, keepdim=True)
        evidence = torch.where(peak > 0, evidence / peak.clamp_min(1e-30), torch.zeros_like(evidence))
        out.append(torch.log(FLOOR + evidence))
        return torch.stack(out, dim=1)
