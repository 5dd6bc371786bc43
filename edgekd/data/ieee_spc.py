"""IEEE Signal Processing Cup 2015 (TROIKA, Zhang et al. 2015): wrist PPG during treadmill running.

Layouts read (anywhere under ``root``):
- training: ``DATA_XX_TYPEYY.mat`` (``sig`` 6 x N at 125 Hz: ECG, PPG1, PPG2, ACC x/y/z) with
  ``DATA_XX_TYPEYY_BPMtrace.mat`` (``BPM0``); the extra recording ``DATA_S04_T01.mat`` with ``BPM_S04_T01.mat``;
- competition test set: ``TEST_SXX_TYY.mat`` (``sig`` 5 x N, no ECG) with ``True_SXX_TYY.mat`` (``BPM0``).
``BPM0[i]`` is the ECG-derived HR of samples [250 i, 250 i + 1000), i.e. the shared 8 s / 2 s window grid.

Channel choice: PPG1 and PPG2 are both green wrist PPG 2 cm apart; each is band-passed and resampled and the
two are averaged before the z-score, which keeps the pulse (coherent in both) and halves independent noise.
ACC rows are already in g: the resting magnitude is 0.88-0.93 g in the training files and the values step
in 1/128 g, so no conversion is applied.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from edgekd.data.recording import Tally, finish, window_recording
from edgekd.errors import DataError
from edgekd.windowset import WindowSet

FS = 125.0
_SIGNAL = re.compile(r"^(DATA_(\d+)_TYPE\d+|DATA_(S\d+)_T\d+|TEST_(S\d+)_T\d+)\.mat$")


def read_mat(path: Path, key: str) -> np.ndarray:
    """One numeric variable of a .mat file, with a DataError naming the file when it cannot be read."""
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError... on corrupt or truncated files
        raise DataError(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {exc})") from None
    if key not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise DataError(f"{path}: missing variable '{key}' (found: {found})")
    try:
        return np.asarray(mat[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: variable '{key}' is not numeric") from None


def label_file(sig_path: Path, by_name: dict[str, Path]) -> Path:
    stem = sig_path.stem
    if stem.startswith("TEST_"):
        name = "True_" + stem[len("TEST_"):] + ".mat"
    elif re.match(r"^DATA_S\d+_T\d+$", stem):
        name = "BPM_" + stem[len("DATA_"):] + ".mat"
    else:
        name = stem + "_BPMtrace.mat"
    if name not in by_name:
        raise DataError(f"{sig_path}: no label file {name} under the dataset folder")
    return by_name[name]


def recordings(root: Path) -> list[tuple[Path, str]]:
    """(signal file, subject id) for every recording under ``root``, sorted."""
    out = []
    for p in sorted(root.rglob("*.mat")):
        m = _SIGNAL.match(p.name)
        if m:
            out.append((p, next(g for g in m.groups()[1:] if g)))
    return out


def load(root: Path, progress: bool = False) -> WindowSet:
    """All IEEE SPC 2015 recordings under ``root`` (training, extra and test layouts) as one WindowSet."""
    from tqdm import tqdm

    recs = recordings(root)
    if not recs:
        raise DataError(f"{root}: no IEEE SPC 2015 files (DATA_*.mat or TEST_*.mat) found")
    by_name = {p.name: p for p in root.rglob("*.mat")}
    tally, sets = Tally(), []
    for path, subject in tqdm(recs, desc="ieee-spc2015", unit="rec", disable=None if progress else True):
        lab_path = label_file(path, by_name)
        sig = read_mat(path, "sig")
        bpm = read_mat(lab_path, "BPM0").ravel()
        tally.add_file(path, root)
        tally.add_file(lab_path, root)
        if sig.ndim != 2 or sig.shape[0] not in (5, 6):
            raise DataError(f"{path}: 'sig' must have 6 rows (ECG, PPG1, PPG2, ACC x/y/z) or 5 (test set, no "
                            f"ECG), got shape {list(sig.shape)}")
        off = sig.shape[0] - 5  # 1 when the first row is ECG
        sets.append(window_recording(
            sig[off:off + 2], FS, bpm, acc=sig[off + 2:off + 5], subject=subject, recording=path.stem,
            source=str(path), tally=tally))
    return finish("ieee-spc2015", root, sets, tally)
