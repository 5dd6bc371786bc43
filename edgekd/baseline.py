"""The classical no-learning heart-rate estimator: the row a signal-processing engineer would pick instead.

In the spirit of TROIKA (Zhang et al. 2015), much simpler (no sparse spectrum reconstruction): per 8 s window,
a zero-padded periodogram of the PPG over the 30..209 BPM band; bins near the dominant accelerometer
frequencies (and their harmonics) are attenuated, because periodic arm motion leaks into the PPG at the
cadence; then the peak nearest the previous window's estimate (within a search range) is taken, with a reset
to the strongest peak when the tracked peak has been weak for a few windows. Windows are taken per recording
in their stored order (consecutive windows are 2 s apart).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgekd.bpm import BPM_MAX, BPM_MIN
from edgekd.errors import EdgekdError
from edgekd.geometry import FS
from edgekd.windowset import WindowSet

N_FFT = 4096  # 25 Hz / 4096 = 0.37 BPM per bin: finer than the 1-BPM classes
ACC_MIN_HZ = 0.3  # lowest ACC frequency searched for motion peaks


@dataclass(frozen=True)
class BaselineConfig:
    search_bpm: float = 12.0        # how far HR may move from the previous estimate per 2 s step
    # Half-width of the attenuated band around each ACC frequency: an 8 s Hann window's main lobe is
    # +-15 BPM wide, so a narrow band leaves the motion peak's shoulders for the tracker to lock onto.
    acc_tol_bpm: float = 10.0
    acc_harmonics: int = 2          # attenuate f, 2f, ... (f/2 is covered by the ACC peak picking)
    acc_attenuation: float = 0.1    # multiply suppressed PPG bins by this (not 0: HR can equal the cadence)
    acc_peaks: int = 3              # dominant ACC frequencies per window
    acc_prominence: float = 2.0     # an ACC peak counts only if it stands this far above the ACC mean power
    reset_ratio: float = 0.3        # tracked peak weaker than this x global peak counts as "lost" ...
    reset_after: int = 3            # ... and after this many lost windows in a row we jump to the global peak


def _freqs() -> tuple[np.ndarray, np.ndarray]:
    f = np.fft.rfftfreq(N_FFT, d=1.0 / FS)
    band = (f >= (BPM_MIN - 0.5) / 60.0) & (f <= (BPM_MAX + 0.5) / 60.0)
    return f, band


def _power(x: np.ndarray) -> np.ndarray:
    """Hann-windowed, zero-padded periodogram along the last axis."""
    x = x - x.mean(axis=-1, keepdims=True)
    return np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), n=N_FFT, axis=-1)) ** 2


def acc_suppression(acc_power: np.ndarray, acc_bpm: np.ndarray, target_bpm: np.ndarray,
                    cfg: BaselineConfig) -> np.ndarray:
    """Per-bin multiplier (< 1 near the dominant ACC frequencies and their harmonics) for a PPG spectrum sampled
    at ``target_bpm``, from one window's ACC power (summed over axes) sampled at ``acc_bpm``.

    Shared by the baseline (fine FFT grid) and the spectral evidence the firmware computes
    (edgekd.fusion, export/tracker/hr_spectral.c: 1-BPM grid), so both suppress motion the same way.
    """
    w = np.ones(len(target_bpm), dtype=target_bpm.dtype)
    # Summed left to right and divided in the spectrum's own float type, as the C's single-precision loop.
    mean = np.cumsum(acc_power)[-1] / acc_power.dtype.type(len(acc_power))
    if mean <= 0:
        return w
    sa = acc_power
    is_peak = np.r_[False, (sa[1:-1] > sa[:-2]) & (sa[1:-1] >= sa[2:]), False]
    peaks = np.flatnonzero(is_peak & (sa > cfg.acc_prominence * mean))
    # Strongest first; a stable sort on the negated power keeps the lower frequency first on ties, as the C does.
    for p in peaks[np.argsort(-sa[peaks], kind="stable")][: cfg.acc_peaks]:
        for h in range(1, cfg.acc_harmonics + 1):
            w[np.abs(target_bpm - h * acc_bpm[p]) <= cfg.acc_tol_bpm] = cfg.acc_attenuation
    return w


def _acc_weights(acc: np.ndarray, f: np.ndarray, band: np.ndarray, cfg: BaselineConfig) -> np.ndarray:
    """ACC suppression for one window on the baseline's FFT grid."""
    spec = _power(acc).sum(axis=0)
    # Cadence fundamentals can sit below 30 BPM (e.g. 0.4 Hz arm swing), so look from 0.3 Hz up.
    look = (f >= ACC_MIN_HZ) & (f <= f[band][-1])
    return acc_suppression(spec[look], f[look] * 60.0, f[band] * 60.0, cfg)


def window_spectra(ws: WindowSet, cfg: BaselineConfig = BaselineConfig()) -> tuple[np.ndarray, np.ndarray]:
    """(BPM of each spectral bin [F], ACC-suppressed PPG power [N, F], each row scaled to max 1)."""
    f, band = _freqs()
    acc_ch = ws.acc_channels
    ppg = _power(ws.x[:, 0].astype(np.float64))[:, band]
    if acc_ch:
        for i in range(len(ws)):
            ppg[i] *= _acc_weights(ws.x[i, acc_ch].astype(np.float64), f, band, cfg)
    ppg /= np.maximum(ppg.max(axis=1, keepdims=True), 1e-12)
    return f[band] * 60.0, ppg


def _track(bpm: np.ndarray, spec: np.ndarray, cfg: BaselineConfig) -> np.ndarray:
    """Peak-nearest-previous tracking over one recording's spectra [T, F] in time order."""
    out = np.empty(len(spec))
    prev, lost = None, 0
    for t, s in enumerate(spec):
        best = int(s.argmax())
        if prev is None:
            idx = best
        else:
            near = np.flatnonzero(np.abs(bpm - prev) <= cfg.search_bpm)
            idx = int(near[s[near].argmax()])
            lost = lost + 1 if s[idx] < cfg.reset_ratio * s[best] else 0
            if lost >= cfg.reset_after:
                idx, lost = best, 0
        prev = out[t] = bpm[idx]
    return out


def estimate(ws: WindowSet, cfg: BaselineConfig = BaselineConfig()) -> np.ndarray:
    """Estimated BPM for every window of ``ws`` (same order), each recording tracked in its window order."""
    if len(ws) == 0:
        raise EdgekdError("baseline: the WindowSet has no windows")
    bpm, spec = window_spectra(ws, cfg)
    out = np.empty(len(ws), dtype=np.float32)
    for rec in dict.fromkeys(ws.recording.tolist()):  # first-seen order, stable
        idx = np.flatnonzero(ws.recording == rec)
        out[idx] = _track(bpm, spec[idx], cfg)
    return out


def mae_report(ws: WindowSet, pred: np.ndarray) -> dict[str, Any]:
    """MAE in BPM over all windows and per subject (what `edgekd baseline` prints), and whether the data had
    accelerometer channels to suppress motion with."""
    err = np.abs(np.asarray(pred, dtype=np.float64) - ws.hr)
    per = {s: float(err[ws.subject == s].mean()) for s in ws.subjects()}
    return {"mae": float(err.mean()), "windows": len(ws), "per_subject": per, "uses_acc": bool(ws.acc_channels)}


def run_baseline(ws: WindowSet, cfg: BaselineConfig = BaselineConfig()) -> tuple[np.ndarray, dict[str, Any]]:
    """Estimates and the MAE report, plus the configuration used (so a result names its settings)."""
    pred = estimate(ws, cfg)
    report = mae_report(ws, pred)
    report["config"] = asdict(cfg)
    return pred, report
