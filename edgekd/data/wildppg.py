"""WildPPG (Meier et al., NeurIPS 2024): 16 participants, long real-world recordings at four body sites.

Layout: ``WildPPG_Part_<id>.mat``, one per participant: ``id``, ``notes`` and one struct per body location
(``head``, ``sternum``, ``wrist``, ``ankle``) whose fields are sensors, each a struct of ``v`` (samples),
``fs`` and ``descr``. PPG is ``ppg_g`` (green; ``ppg_ir``/``ppg_r`` also exist) and ACC ``acc_x``/``acc_y``/
``acc_z`` at 128 Hz, taken as g; the sternum ``ecg`` (128 Hz) gives the labels.

WildPPG publishes no per-window HR for 2 s strides, so labels follow its reference recipe: R-peaks from
the sternum ECG, HR of a window = 60 / mean RR over the RR intervals centred in it; a window with fewer
than 2 such intervals has no label (WildPPG writes 0 there) and is dropped and counted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy import ndimage, signal

from edgekd.data.recording import Tally, finish, window_recording
from edgekd.errors import DataError
from edgekd.geometry import STRIDE_S, WINDOW_S
from edgekd.windowset import WindowSet

LOCATIONS = ("head", "sternum", "wrist", "ankle")
RR_S = (0.25, 2.0)  # 30-240 BPM: intervals outside are missed or extra beats


def read_participant(path: Path) -> dict[str, Any]:
    try:
        return scipy.io.loadmat(str(path), simplify_cells=True)
    except Exception as exc:  # corrupt/truncated .mat: scipy raises several types
        raise DataError(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {exc})") from None


def sensor(data: dict[str, Any], location: str, name: str, path: Path) -> tuple[np.ndarray, float]:
    """(samples, fs) of one sensor, with a DataError naming the missing piece."""
    loc = data.get(location)
    if not isinstance(loc, dict):
        raise DataError(f"{path}: missing body location '{location}'")
    sen = loc.get(name)
    if not isinstance(sen, dict) or "v" not in sen or "fs" not in sen:
        raise DataError(f"{path}: missing sensor '{location}.{name}' (with fields v and fs)")
    try:
        return np.asarray(sen["v"], dtype=np.float64).ravel(), float(np.asarray(sen["fs"]).ravel()[0])
    except (TypeError, ValueError, IndexError):
        raise DataError(f"{path}: sensor '{location}.{name}' is not numeric") from None


def r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: QRS-band energy (5-15 Hz, squared slope, 150 ms average) above a third of its
    local 2 s maximum, at least 250 ms apart, refined to the ECG maximum nearby."""
    ecg = np.nan_to_num(ecg)
    band = signal.sosfiltfilt(signal.butter(2, (5, 15), btype="bandpass", fs=fs, output="sos"), ecg)
    energy = ndimage.uniform_filter1d(np.gradient(band) ** 2, size=max(1, int(0.15 * fs)))
    local_max = ndimage.maximum_filter1d(energy, size=int(2 * fs))
    peaks, _ = signal.find_peaks(energy, distance=int(RR_S[0] * fs))
    peaks = peaks[energy[peaks] > local_max[peaks] / 3]
    half = int(0.05 * fs)
    return np.array([max(0, p - half) + int(np.argmax(band[max(0, p - half): p + half + 1])) for p in peaks], dtype=int)


def ecg_labels(ecg: np.ndarray, fs: float) -> np.ndarray:
    """HR per 8 s / 2 s window from ECG R-peaks; NaN where fewer than 2 valid RR intervals are centred in it."""
    pk = r_peaks(ecg, fs) / fs
    rr, mid = np.diff(pk), (pk[1:] + pk[:-1]) / 2
    ok = (rr >= RR_S[0]) & (rr <= RR_S[1])
    rr, mid = rr[ok], mid[ok]
    starts = np.arange(int((len(ecg) / fs - WINDOW_S) // STRIDE_S) + 1 if len(ecg) >= WINDOW_S * fs else 0)
    starts = starts * STRIDE_S
    lo, hi = np.searchsorted(mid, starts), np.searchsorted(mid, starts + WINDOW_S)
    csum = np.concatenate([[0.0], np.cumsum(rr)])
    count = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count >= 2, 60.0 * count / (csum[hi] - csum[lo]), np.nan)


def load(root: Path, location: str = "wrist", progress: bool = False) -> WindowSet:
    """Every ``WildPPG_Part_<id>.mat`` under ``root``; PPG (+ ACC when present) from ``location``."""
    from tqdm import tqdm

    if location not in LOCATIONS:
        raise DataError(f"unknown WildPPG location '{location}'; known: {', '.join(LOCATIONS)}")
    files = sorted(p for p in root.rglob("WildPPG_Part_*.mat") if re.match(r"^WildPPG_Part_\w+\.mat$", p.name))
    if not files:
        raise DataError(f"{root}: no WildPPG_Part_<id>.mat files found")
    tally, sets = Tally(), []
    for path in tqdm(files, desc="wildppg", unit="rec", disable=None if progress else True):
        data = read_participant(path)
        ppg, fs = sensor(data, location, "ppg_g", path)
        ecg, fs_ecg = sensor(data, "sternum", "ecg", path)
        has_acc = all(a in data.get(location, {}) for a in ("acc_x", "acc_y", "acc_z"))
        acc, fs_acc = None, None
        if has_acc:
            axes = [sensor(data, location, a, path) for a in ("acc_x", "acc_y", "acc_z")]
            n = min(len(v) for v, _ in axes)
            acc, fs_acc = np.vstack([v[:n] for v, _ in axes]), axes[0][1]
        tally.add_file(path, root)
        pid = str(data.get("id", path.stem[len("WildPPG_Part_"):]))
        sets.append(window_recording(ppg[None], fs, ecg_labels(ecg, fs_ecg), acc=acc, fs_acc=fs_acc,
                                     subject=pid, recording=path.stem, source=str(path), tally=tally))
    return finish("wildppg", root, sets, tally, {"location": location})
