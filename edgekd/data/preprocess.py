"""The reference preprocessing every loader shares (REFERENCE.md section 4, WildPPG pipeline):
Butterworth band-pass 0.5-4 Hz (order 4, zero phase) -> resample to 25 Hz -> 8 s windows, 2 s stride ->
per-window z-score of the PPG channel. ACC axes get the same filter and resampling and stay in g (no
z-score) so that how much the wrist moves is preserved.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal

from edgekd.errors import DataError
from edgekd.geometry import FS, STRIDE, WINDOW, WINDOW_S

BAND_HZ = (0.5, 4.0)
MIN_STD = 1e-6


def bandpass(x: np.ndarray, fs: float, band: tuple[float, float] = BAND_HZ) -> np.ndarray:
    """Zero-phase 4th-order Butterworth band-pass along the last axis."""
    sos = signal.butter(4, band, btype="bandpass", fs=fs, output="sos")
    padlen = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1) * 10)
    return signal.sosfiltfilt(sos, np.asarray(x, dtype=np.float64), axis=-1, padlen=padlen)


def resample(x: np.ndarray, fs_in: float, fs_out: float = FS) -> np.ndarray:
    """Polyphase resampling along the last axis (exact rational ratio)."""
    if fs_in == fs_out:
        return np.asarray(x, dtype=np.float64)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return signal.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


def to_25hz(x: np.ndarray, fs: float, source: str) -> np.ndarray:
    """Band-pass then resample one signal (or [C, T] signals) to 25 Hz, with checks that name ``source``."""
    x = np.asarray(x, dtype=np.float64)
    if fs <= 2 * BAND_HZ[1]:
        raise DataError(f"{source}: sampling rate {fs} Hz is too low for a {BAND_HZ[1]} Hz band (needs > "
                        f"{2 * BAND_HZ[1]} Hz)")
    if x.shape[-1] < fs * WINDOW_S:
        raise DataError(f"{source}: recording is {x.shape[-1] / fs:.1f} s long, shorter than one "
                        f"{WINDOW_S:.0f} s window")
    return resample(bandpass(x, fs), fs)


def n_windows(n_samples: int, win: int = WINDOW, stride: int = STRIDE) -> int:
    return 0 if n_samples < win else 1 + (n_samples - win) // stride


def frame(x: np.ndarray, starts: np.ndarray, win: int = WINDOW) -> np.ndarray:
    """Cut windows [N, ..., win] starting at ``starts`` from a [..., T] signal."""
    idx = starts[:, None] + np.arange(win)[None, :]
    return np.moveaxis(x[..., idx], -2, 0)


def zscore(windows: np.ndarray) -> np.ndarray:
    """Per-window z-score along the last axis; flat windows become zeros instead of NaN."""
    mu = windows.mean(axis=-1, keepdims=True)
    sd = windows.std(axis=-1, keepdims=True)
    return ((windows - mu) / np.maximum(sd, MIN_STD)).astype(np.float32)


def nan_runs_mask(x: np.ndarray, starts: np.ndarray, win: int) -> np.ndarray:
    """True for windows that contain any NaN/inf sample in the raw signal (those windows are dropped)."""
    bad = ~np.isfinite(x)
    if bad.ndim > 1:
        bad = bad.any(axis=tuple(range(bad.ndim - 1)))
    csum = np.concatenate([[0], np.cumsum(bad)])
    return (csum[starts + win] - csum[starts]) > 0


def fill_nans(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN runs so filters can run; windows touching them are dropped later."""
    x = np.array(x, dtype=np.float64, copy=True)
    flat = x.reshape(-1, x.shape[-1])
    for row in flat:
        bad = ~np.isfinite(row)
        if bad.all():
            row[:] = 0.0
        elif bad.any():
            row[bad] = np.interp(np.flatnonzero(bad), np.flatnonzero(~bad), row[~bad])
    return x
