"""Spectral fusion: combine the model's per-window BPM distribution with the window's own PPG spectrum.

A small student misses the heart rate mostly on subjects and motions it has not seen, where the PPG
periodogram (with the accelerometer's frequencies suppressed, as in edgekd.baseline) often still shows the
pulse; the spectrum in turn fails where motion dominates, where the model is better. Fusion multiplies the
two as independent evidence before the causal tracker:

    fused_logit[k] = model_weight * logit[k] + weight * log(floor + evidence[k])

with ``evidence`` the ACC-suppressed PPG power at each class's BPM, scaled to max 1. ``weight`` = 0 is the
model alone; ``model_weight`` = 0 with ``weight`` = 1 is the spectral HMM baseline (no model), so a decoder
chosen on held-out data sets can fall back to the spectrum where the model does not transfer; ``floor``
keeps a class with no spectral power possible.

With ``clear_quality`` > 0 the decoder switches per window on the spectrum's own quality (the share of its
evidence within 3 BPM of its peak): a clear spectrum (quality >= clear_quality) decides alone, as in the
spectral baseline (``weight`` * log(floor + evidence), the model ignored); an unclear one (motion, a flat or
many-peaked spectrum) uses ``model_weight`` * logit + ``unclear_weight`` * log(floor + evidence). Students
trained on some data sets transfer badly to others while a clear pulse peak transfers everywhere, so the
model is only asked where the spectrum has no answer (edgekd.lodo measures it).

With ``motion_g`` > 0 the switch also asks the wrist: a window that moves (``window_motion``, the RMS of the
band-passed acceleration vector, >= motion_g in g) never counts as clear. Walking and running put the cadence
and its harmonics into the PPG, where they can look like one clear pulse peak that the ACC suppression
misses, which the quality alone cannot tell from a pulse; cycling and rest move the wrist little and keep the
spectrum. A window without accelerometer has motion 0.

Firmware computes the same evidence in C (export/tracker/hr_spectral.c) from the float window it feeds the
model: Goertzel power at the 180 class frequencies (PPG) and at 1-BPM steps from 18 to 209 BPM (ACC), about
150 k multiply-adds per window, 5% of a 2-block model's MACs. This module is written in float32 with the C
loop's operation order, so a test can check the two class for class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgekd.baseline import ACC_MIN_HZ, BaselineConfig, acc_suppression
from edgekd.bpm import N_CLASSES, bin_bpms
from edgekd.errors import EdgekdError
from edgekd.geometry import FS
from edgekd.tracking import CONFIDENCE_HALFWIDTH, decode_recordings
from edgekd.windowset import WindowSet

# ACC grid: 1-BPM steps from 18 BPM (0.3 Hz, the baseline's lowest cadence) to the top class (209 BPM).
ACC_BPM = np.arange(round(ACC_MIN_HZ * 60), int(bin_bpms()[-1]) + 1, dtype=np.float32)


@dataclass(frozen=True)
class FusionConfig:
    # The defaults are the window students' shipped decoder (edgekd.arch.default_decoder gives each family its
    # own): what edgekd.lodo's rule (lowest mean MAE / HMM MAE) picks over all six cross-data-set directions
    # between IEEE SPC, wrist-exercise and BIDMC, 2-block ResNets trained on one set and scored on another.
    # (Before, a = 1 and w = 4 without the switch, from leave-one-subject-out on IEEE SPC alone; under
    # leave-one-dataset-out it made the two sets with a clean spectrum worse than the spectrum alone.)
    weight: float = 1.0
    floor: float = 0.01
    model_weight: float = 0.25
    clear_quality: float = 0.2  # 0: no quality test (and no switch at all with motion_g 0)
    unclear_weight: float = 0.25  # spectrum weight on windows that are not clear
    motion_g: float = 0.0  # 0: no motion gate; > 0: a window moving at least this much (g RMS) is never clear

    def __post_init__(self) -> None:
        if not self.weight >= 0 or not self.floor > 0 or not self.model_weight >= 0 or not self.unclear_weight >= 0:
            raise EdgekdError(f"fusion: weight, model_weight and unclear_weight must be >= 0 and floor > 0, got "
                              f"{self.weight}, {self.model_weight}, {self.unclear_weight}, {self.floor}")
        if not 0 <= self.clear_quality <= 1:
            raise EdgekdError(f"fusion: clear_quality must be in [0, 1], got {self.clear_quality}")
        if not 0 <= self.motion_g < float("inf"):
            raise EdgekdError(f"fusion: motion_g must be a finite number >= 0 (g), got {self.motion_g}")

    @property
    def switches(self) -> bool:
        """Whether windows are split into clear (the spectrum alone) and unclear ones."""
        return self.clear_quality > 0 or self.motion_g > 0


# Named decoders (every field spelled out, so a change of the defaults cannot change what they mean).
SPECTRUM_ONLY = FusionConfig(weight=1.0, model_weight=0.0, clear_quality=0.0, unclear_weight=0.0,
                             motion_g=0.0)  # the HMM baseline
MODEL_ONLY = FusionConfig(weight=0.0, model_weight=1.0, clear_quality=0.0, unclear_weight=0.0,
                          motion_g=0.0)  # = mae_causal


# The spectral students' shipped decoder: what edgekd.lodo's rule picks by nested subject folds over the inner
# scores of all three held-out sets for the 4 x 7 spectral student (models/results/lodo-spectral-4x7-subjects.md).
# A still, clear window is the spectrum's; a moving or unclear one mostly the model's. Not for window students:
# their own output is poor exactly where the wrist moves (the demo's 2-block ResNet on the synthetic corpus
# scored 16.2 BPM fused with a gated decoder, a=0.25 q=0.25 u=0 m=0.05, against 1.5 with its own).
MOTION_GATED = FusionConfig(weight=1.0, model_weight=0.5, clear_quality=0.25, unclear_weight=0.25, motion_g=0.05)


def plain(model_weight: float, weight: float) -> FusionConfig:
    """``model_weight * logit + weight * log(floor + evidence)`` on every window (no clear/unclear switch)."""
    return FusionConfig(weight=weight, model_weight=model_weight, clear_quality=0.0, unclear_weight=0.0,
                        motion_g=0.0)


def decoder_label(cfg: FusionConfig) -> str:
    """How results tables name a decoder: "HMM", "model only", "a=0.25 w=1", with the switch "... q=0.2 u=0.25",
    with the motion gate "... m=0.1" (g)."""
    if cfg == SPECTRUM_ONLY:
        return "HMM"
    if cfg == MODEL_ONLY:
        return "model only"
    fused = f"a={cfg.model_weight:g} w={cfg.weight:g}"
    if cfg.switches:
        fused += (f" q={cfg.clear_quality:g}" if cfg.clear_quality else "") + f" u={cfg.unclear_weight:g}"
    return fused + (f" m={cfg.motion_g:g}" if cfg.motion_g else "")


def hann_window(n: int) -> np.ndarray:
    """Hann window [n] (float32; computed in double, as export/tracker/hr_spectral_tables.h holds it)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))).astype(np.float32)


def goertzel_coeffs(bpm: np.ndarray) -> np.ndarray:
    """Goertzel coefficients 2 cos(2 pi f / FS) at ``bpm`` (float32; computed in double, as the C tables)."""
    return (2.0 * np.cos(2.0 * np.pi * np.asarray(bpm, np.float64) / 60.0 / FS)).astype(np.float32)


def seq_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis, kept as [..., 1], summed left to right in x's float type and divided in it:
    the C's single-precision loop (NumPy's pairwise sum would round differently)."""
    return np.cumsum(x, axis=-1)[..., -1:] / x.dtype.type(x.shape[-1])


def goertzel_power(x: np.ndarray, bpm: np.ndarray) -> np.ndarray:
    """Hann-windowed power of mean-removed windows ``x`` [..., n] at ``bpm`` [F] (float32, like the C)."""
    n = x.shape[-1]
    x = x.astype(np.float32)
    xw = ((x - seq_mean(x)) * hann_window(n)).astype(np.float32)
    coeff = goertzel_coeffs(bpm)
    s1 = np.zeros(x.shape[:-1] + (len(coeff),), np.float32)
    s2 = np.zeros_like(s1)
    for i in range(n):
        s0 = (xw[..., i:i + 1] + coeff * s1) - s2
        s2, s1 = s1, s0
    return ((s1 * s1 + s2 * s2) - (coeff * s1) * s2).astype(np.float32)


def spectral_evidence(ws: WindowSet, cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """Evidence [N, 180] (float32, each row max 1): PPG power at each class BPM, ACC frequencies suppressed
    when the data have accelerometer channels."""
    if len(ws) == 0:
        raise EdgekdError("fusion: the WindowSet has no windows")
    ppg = goertzel_power(ws.x[:, 0], bin_bpms())
    acc_ch = ws.acc_channels
    acc = sum_axes(goertzel_power(ws.x[:, acc_ch], ACC_BPM)) if acc_ch else None
    return spectral_evidence_from_power(ppg, acc, cfg)


def sum_axes(per_axis: np.ndarray) -> np.ndarray:
    """ACC power [N, A, F] summed over its axes, x + y + z in that order (as the C adds), -> [N, F]."""
    total = per_axis[:, 0]
    for a in range(1, per_axis.shape[1]):
        total = total + per_axis[:, a]
    return total


def spectral_evidence_from_power(ppg: np.ndarray, acc: np.ndarray | None,
                                 cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """The evidence from PPG power at the class BPMs [N, 180] and summed ACC power on ACC_BPM [N, 192] (None:
    no accelerometer): suppression, then each row scaled to max 1."""
    ppg = ppg.copy()
    if acc is not None:
        for i in range(len(ppg)):
            ppg[i] *= acc_suppression(acc[i], ACC_BPM, bin_bpms(), cfg)
    peak = ppg.max(axis=1, keepdims=True)
    return np.where(peak > 0, ppg / np.where(peak > 0, peak, 1), 0).astype(np.float32)


def window_motion(ws: WindowSet) -> np.ndarray:
    """How much each window's wrist moves, [N] float32 in g: sqrt(var x + var y + var z) of the (band-passed)
    accelerometer axes, each variance summed left to right in float32 and divided by the window length, as
    hr_spectral_motion() computes it. 0 for data without accelerometer (and for zero-filled ACC)."""
    acc_ch = ws.acc_channels
    if not acc_ch:
        return np.zeros(len(ws), np.float32)
    acc = ws.x[:, acc_ch].astype(np.float32)
    dev = acc - seq_mean(acc)
    var = np.cumsum(dev * dev, axis=-1)[..., -1] / np.float32(acc.shape[-1])
    return np.sqrt(sum_axes(var[..., None])[:, 0]).astype(np.float32)


def spectral_quality(evidence: np.ndarray) -> np.ndarray:
    """Share of each window's evidence within CONFIDENCE_HALFWIDTH classes of its peak (first maximum), [N]
    float32 in 0..1: high for one clear pulse peak, low for a flat or many-peaked spectrum. Sums run left to
    right in float32, as hr_spectral_quality() adds, so the clear/unclear switch agrees with the C."""
    ev = np.asarray(evidence, np.float32)
    near = np.abs(np.arange(ev.shape[1])[None, :] - ev.argmax(axis=1)[:, None]) <= CONFIDENCE_HALFWIDTH
    total = np.cumsum(ev, axis=1)[:, -1]
    peak = np.cumsum(np.where(near, ev, np.float32(0)), axis=1)[:, -1]
    return np.where(total > 0, peak / np.where(total > 0, total, np.float32(1)), np.float32(0)).astype(np.float32)


def fuse(logits: np.ndarray, evidence: np.ndarray, cfg: FusionConfig = FusionConfig(),
         motion: np.ndarray | None = None) -> np.ndarray:
    """Fused logits [N, 180] in float32: ``model_weight * logits + weight * log(floor + evidence)``, or with
    ``clear_quality`` or ``motion_g`` > 0 per window the clear/unclear switch of the module docstring.
    ``motion``: ``window_motion`` of the same windows (needed only when the decoder has a motion gate)."""
    logits, evidence = np.asarray(logits, np.float32), np.asarray(evidence, np.float32)
    if logits.shape != evidence.shape or logits.ndim != 2 or logits.shape[1] != N_CLASSES:
        raise EdgekdError(f"fusion: logits {list(logits.shape)} and evidence {list(evidence.shape)} must both be "
                          f"[N, {N_CLASSES}]")
    a, w = np.float32(cfg.model_weight), np.float32(cfg.weight)
    if cfg.switches:
        clear = np.ones(len(evidence), bool)
        if cfg.clear_quality > 0:
            clear &= spectral_quality(evidence) >= np.float32(cfg.clear_quality)
        if cfg.motion_g > 0:
            if motion is None or np.shape(motion) != (len(evidence),):
                raise EdgekdError(f"fusion: a decoder with a motion gate needs the motion of each of the "
                                  f"{len(evidence)} windows (edgekd.fusion.window_motion)")
            clear &= np.asarray(motion, np.float32) < np.float32(cfg.motion_g)
        clear = clear[:, None]
        a = np.where(clear, np.float32(0), a).astype(np.float32)
        w = np.where(clear, w, np.float32(cfg.unclear_weight)).astype(np.float32)
    return (a * logits + w * np.log(np.float32(cfg.floor) + evidence)).astype(np.float32)


def spectral_track(ws: WindowSet, floor: float = FusionConfig.floor) -> np.ndarray:
    """No-learning estimate: the causal tracker on the spectral evidence alone (emission = floor + evidence),
    i.e. what the firmware's fused tracker outputs with all-zero logits. BPM per window, same order as ``ws``."""
    evidence = spectral_evidence(ws)
    fused = fuse(np.zeros_like(evidence), evidence, replace(SPECTRUM_ONLY, floor=floor))
    return decode_recordings(fused, ws.recording, "causal")
