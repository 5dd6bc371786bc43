"""The independent HR check the data tests use: a plain periodogram peak, no tracking, no motion handling."""

from __future__ import annotations

import numpy as np


def peak_bpm(x: np.ndarray) -> np.ndarray:
    """Periodogram peak of each 25 Hz window [N, 200] (Hann window, zero-padded to 2048) in 0.5-3.5 Hz."""
    n = 2048
    f = np.fft.rfftfreq(n, 1 / 25)
    p = np.abs(np.fft.rfft(x * np.hanning(x.shape[-1]), n=n, axis=-1)) ** 2
    band = (f >= 0.5) & (f <= 3.5)
    return 60 * f[band][p[:, band].argmax(1)]
