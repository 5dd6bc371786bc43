"""From one raw recording (PPG rows, optional ACC, one HR label per 8 s / 2 s window) to windows.

Every source loader ends here, so label alignment, NaN handling, window dropping and provenance are done
once. Window i always starts at 2 i seconds after the first sample of the recording, which is how IEEE SPC
(``BPM0``), PPG-DaLiA (``label``) and WildPPG define their per-window labels; loaders with continuous HR
(BIDMC, GalaxyPPG, CSV) compute labels on the same grid with :func:`labels_from_series`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.data.preprocess import BAND_HZ, fill_nans, frame, nan_runs_mask, to_25hz, zscore
from edgekd.errors import DataError
from edgekd.geometry import FS, STRIDE, STRIDE_S, WINDOW, WINDOW_S
from edgekd.layout import sha256_file
from edgekd.windowset import CHANNEL_NAMES_PPG_ACC, HR_PLAUSIBLE, WindowSet, concat

# A window labelled from an HR series needs valid readings for this share of it.
MIN_LABEL_COVERAGE = 0.75
# Raw sampling rates outside this range mean the caller passed the wrong rate (e.g. ms instead of Hz).
FS_PLAUSIBLE = (2 * BAND_HZ[1], 5000.0)

PREPROCESSING = {
    "bandpass_hz": list(BAND_HZ), "filter": "butterworth order 4, zero phase", "fs": FS,
    "window_s": WINDOW_S, "stride_s": STRIDE_S, "ppg": "z-score per window", "acc": "g, band-passed, no z-score",
}


@dataclass
class Tally:
    """What a loader read, dropped and skipped: it ends up in the WindowSet's provenance."""

    files: list[dict[str, str]] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)

    def add_file(self, path: Path, root: Path) -> None:
        rel = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        self.files.append({"path": rel, "sha256": sha256_file(path)})


def check_fs(fs: float, source: str) -> float:
    fs = float(fs)
    if not np.isfinite(fs) or not FS_PLAUSIBLE[0] < fs <= FS_PLAUSIBLE[1]:
        raise DataError(f"{source}: implausible sampling rate {fs} Hz (expected {FS_PLAUSIBLE[0]:g}-"
                        f"{FS_PLAUSIBLE[1]:g} Hz)")
    return fs


def window_count(duration_s: float) -> int:
    """How many 8 s / 2 s windows a recording ``duration_s`` long holds."""
    return int(np.floor((duration_s - WINDOW_S) / STRIDE_S)) + 1 if duration_s >= WINDOW_S else 0


def window_starts_s(n_labels: int) -> np.ndarray:
    return np.arange(n_labels) * STRIDE_S


def labels_from_series(t: np.ndarray, hr: np.ndarray, duration_s: float) -> np.ndarray:
    """Mean HR over each 8 s window [2 i, 2 i + 8) s of a recording ``duration_s`` long; ``t`` in seconds from
    the recording's first sample. NaN (no label) where fewer than ``MIN_LABEL_COVERAGE`` of the window's HR
    samples are valid, since a mean over a few seconds at one end would mislabel the window."""
    n = window_count(duration_s)
    has_t = np.isfinite(t)
    order = np.argsort(t[has_t], kind="stable")
    t, hr = t[has_t][order], hr[has_t][order]
    valid = np.isfinite(hr) & (hr > 0)
    lo = np.searchsorted(t, window_starts_s(n), side="left")
    hi = np.searchsorted(t, window_starts_s(n) + WINDOW_S, side="left")
    csum = np.concatenate([[0.0], np.cumsum(np.where(valid, hr, 0.0))])
    cval = np.concatenate([[0], np.cumsum(valid)])
    n_valid, n_all = cval[hi] - cval[lo], hi - lo
    enough = (n_valid > 0) & (n_valid >= MIN_LABEL_COVERAGE * n_all)
    return np.where(enough, (csum[hi] - csum[lo]) / np.maximum(n_valid, 1), np.nan)


def window_recording(
    ppg: np.ndarray, fs_ppg: float, labels: np.ndarray, *, subject: str, recording: str, source: str,
    tally: Tally, acc: np.ndarray | None = None, fs_acc: float | None = None,
    activity: np.ndarray | None = None,
) -> WindowSet | None:
    """Windows of one recording. ``ppg`` is [P, T] raw PPG rows (averaged after filtering), ``acc`` [3, T']
    in g, ``labels[i]`` the HR of window i (NaN = missing), ``activity[i]`` its activity name.

    Windows touching NaN samples or with a missing/implausible label (signal after the last label
    included), and labels past the end of the signal, are dropped and counted in ``tally``. A recording
    shorter than one window is skipped (and reported) and None is returned, so one bad recording does not
    sink a data set; :func:`finish` raises if nothing is left.
    """
    ppg = np.atleast_2d(np.asarray(ppg, dtype=np.float64))
    labels = np.asarray(labels, dtype=np.float64).ravel()
    fs_ppg = check_fs(fs_ppg, source)
    signals = [(ppg, fs_ppg)]
    if acc is not None:
        acc = np.asarray(acc, dtype=np.float64)
        if acc.ndim != 2 or acc.shape[0] != 3:
            raise DataError(f"{source}: ACC must have 3 axes, got shape {list(acc.shape)}")
        signals.append((acc, check_fs(fs_acc if fs_acc is not None else fs_ppg, source)))
    for sig, fs in signals:
        if sig.shape[-1] < fs * WINDOW_S:
            tally.skipped[source] = (f"recording is {sig.shape[-1] / fs:.1f} s long, shorter than one "
                                     f"{WINDOW_S:g} s window")
            tally.dropped["recording_too_short"] += len(labels)
            return None

    grids = [to_25hz(fill_nans(sig), fs, source) for sig, fs in signals]
    n_grid = min(g.shape[-1] for g in grids)
    n_fit = 0 if n_grid < WINDOW else 1 + (n_grid - WINDOW) // STRIDE
    n = len(labels)
    if n > n_fit:
        tally.dropped["beyond_signal"] += n - n_fit
    else:  # signal left over after the last label: windows that exist but have no label
        tally.dropped["label_missing"] += n_fit - n
    idx = np.arange(min(n, n_fit))
    # window i covers raw samples [round(2 i fs), + 8 fs) of each signal: drop it when any of them is NaN
    nan_bad = np.zeros(len(idx), dtype=bool)
    for sig, fs in signals:
        win = int(round(WINDOW_S * fs))
        raw_starts = np.round(idx * STRIDE_S * fs).astype(int)
        inside = raw_starts + win <= sig.shape[-1]
        nan_bad[inside] |= nan_runs_mask(sig, raw_starts[inside], win)
    lab = labels[idx]
    lab_bad = ~np.isfinite(lab) | (lab < HR_PLAUSIBLE[0]) | (lab > HR_PLAUSIBLE[1])
    tally.dropped["nan_signal"] += int(nan_bad.sum())
    tally.dropped["label_missing"] += int((lab_bad & ~nan_bad).sum())
    idx = idx[~nan_bad & ~lab_bad]
    if not len(idx):
        return None

    starts = idx * STRIDE
    ppg_w = frame(grids[0], starts).mean(axis=1)  # [N, 200]: mean of the filtered PPG rows
    chans = [zscore(ppg_w)[:, None]]
    if acc is not None:
        chans.append(frame(grids[1], starts).astype(np.float32))
    x = np.concatenate(chans, axis=1)
    return WindowSet(
        x=x, hr=labels[idx], subject=np.full(len(idx), subject), recording=np.full(len(idx), recording),
        activity=None if activity is None else np.asarray(activity).astype(str)[idx],
        channels=CHANNEL_NAMES_PPG_ACC if acc is not None else ("ppg",),
    )


def finish(dataset: str, root: Path, sets: list[WindowSet | None], tally: Tally,
           options: dict[str, Any] | None = None) -> WindowSet:
    """Join the recordings' windows and attach provenance; raise if no window survived."""
    kept = [s for s in sets if s is not None and len(s)]
    if not kept:
        why = "; ".join(f"{k}: {v}" for k, v in tally.skipped.items()) or \
            ", ".join(f"{k}={v}" for k, v in tally.dropped.items() if v) or "no recordings found"
        raise DataError(f"{root}: no usable windows for dataset '{dataset}' ({why})")
    prov = {
        "dataset": dataset, "root": str(root), "options": options or {},
        "source_files": tally.files, "preprocessing": PREPROCESSING,
        "dropped_windows": {k: int(v) for k, v in sorted(tally.dropped.items())},
        "skipped_recordings": dict(tally.skipped),
    }
    ws = concat(kept, provenance=prov)
    ws.dataset = np.full(len(ws), dataset)
    return ws
