"""PPG-DaLiA (Reiss et al. 2019): 15 subjects, Empatica E4 wrist PPG during daily-life activities.

Layout: ``PPG_FieldStudy/S<n>/S<n>.pkl`` (the ``PPG_FieldStudy`` level is optional), a Python 2 pickle read
with latin1 through :mod:`edgekd.data.safe_pickle`. Keys: ``['signal']['wrist']['BVP']`` (64 Hz),
``['signal']['wrist']['ACC']`` (32 Hz, 3 axes, E4 units of 1/64 g, converted to g here), ``['label']``
(ECG-derived HR per 8 s window, 2 s shift, first window at t = 0), ``['activity']`` (4 Hz activity ids,
window activity = the most frequent id in the window), ``['subject']``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.data.recording import Tally, finish, window_recording
from edgekd.data.safe_pickle import load_pickle
from edgekd.errors import DataError
from edgekd.windowset import WindowSet

FS_BVP, FS_ACC, FS_ACTIVITY = 64.0, 32.0, 4.0
E4_ACC_PER_G = 64.0
ACTIVITIES = {0: "transient", 1: "sitting", 2: "stairs", 3: "table_soccer", 4: "cycling", 5: "driving",
              6: "lunch", 7: "walking", 8: "working"}


def _get(obj: Any, keys: tuple[str, ...], path: Path) -> Any:
    for i, k in enumerate(keys):
        if not isinstance(obj, dict) or k not in obj:
            raise DataError(f"{path}: missing key {''.join(f'[{x!r}]' for x in keys[:i + 1])}")
        obj = obj[k]
    return obj


def _array(obj: Any, keys: tuple[str, ...], path: Path) -> np.ndarray:
    value = _get(obj, keys, path)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {''.join(f'[{k!r}]' for k in keys)} is not numeric") from None


def window_activity(activity: np.ndarray, n_windows: int) -> np.ndarray:
    """Most frequent 4 Hz activity id in each 8 s / 2 s window, as a name."""
    ids = np.rint(activity.ravel()).astype(int)
    out = []
    for i in range(n_windows):
        seg = ids[int(i * 2 * FS_ACTIVITY): int((i * 2 + 8) * FS_ACTIVITY)]
        out.append(ACTIVITIES.get(int(np.bincount(seg).argmax()), "unknown") if len(seg) else "unknown")
    return np.asarray(out)


def load(root: Path, progress: bool = False) -> WindowSet:
    """Every ``S<n>/S<n>.pkl`` under ``root``."""
    from tqdm import tqdm

    files = sorted((p for p in root.rglob("S*.pkl") if re.match(r"^S\d+\.pkl$", p.name)),
                   key=lambda p: int(p.stem[1:]))
    if not files:
        raise DataError(f"{root}: no PPG-DaLiA S<n>/S<n>.pkl files found")
    tally, sets = Tally(), []
    for path in tqdm(files, desc="ppg-dalia", unit="rec", disable=None if progress else True):
        data = load_pickle(path)
        bvp = _array(data, ("signal", "wrist", "BVP"), path).ravel()
        acc = _array(data, ("signal", "wrist", "ACC"), path)
        labels = _array(data, ("label",), path).ravel()
        activity = _array(data, ("activity",), path)
        subject = str(data.get("subject", path.stem)) if isinstance(data, dict) else path.stem
        if acc.ndim != 2 or acc.shape[1] != 3:
            raise DataError(f"{path}: ['signal']['wrist']['ACC'] must be [N, 3], got {list(acc.shape)}")
        tally.add_file(path, root)
        sets.append(window_recording(
            bvp[None], FS_BVP, labels, acc=acc.T / E4_ACC_PER_G, fs_acc=FS_ACC, subject=subject,
            recording=path.stem, source=str(path), tally=tally,
            activity=window_activity(activity, len(labels))))
    return finish("ppg-dalia", root, sets, tally)
