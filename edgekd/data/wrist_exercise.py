"""PhysioNet "Wrist PPG During Exercise" (Jarchi & Casson 2017): wrist PPG + ACC while walking, running, cycling.

Each recording is ``sN_ACTIVITY.edf`` (read with pyedflib; 256 Hz, 15 signals in a fixed order whose EDF labels
are cut at 16 characters, so signals are taken by position: 1 = wrist PPG, 5-7 = low-noise accelerometer
x/y/z in m/s^2, converted to g) with ``sN_ACTIVITY.ecg_beats.txt``, the chest-ECG beat annotations as WFDB
``rdann`` prints them (time, sample number at 256 Hz, type). Subject = ``sN``, activity = the rest of the
file name (walk, run, low_resistance_bike, high_resistance_bike), recording = the file stem.

HR label of window i (samples [2 i s, 2 i s + 8 s)): 60 / mean RR of the normal (``N``) beats inside it.
A window is dropped (counted in provenance ``label_drops``) with fewer than ``MIN_BEATS`` beats, or when one
RR interval is outside ``RR_RANGE_S`` or further than ``RR_OUTLIER`` x the window's median from it (a
missed or extra beat would bias the mean by a whole beat). The beat sample numbers index the EDF samples
(lag 0); the data's own ``sample_times`` channel suggests the true rate averages 248-253 Hz, but PPG and
beats share that clock, so the nominal 256 Hz is used for both and absolute BPM may read 1-3 % high.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from edgekd.data.recording import Tally, finish, window_count, window_recording, window_starts_s
from edgekd.errors import DataError
from edgekd.geometry import WINDOW_S
from edgekd.windowset import WindowSet

FS = 256.0
PPG_INDEX = 1
ACC_INDEX = (5, 6, 7)  # low-noise accelerometer x, y, z (m/s^2)
N_SIGNALS = 15
G = 9.80665
MIN_BEATS = 4  # 3 RR intervals: 30 BPM still gives 4 beats in 8 s
RR_RANGE_S = (0.24, 2.0)  # 30-250 BPM
RR_OUTLIER = 0.3  # an RR more than 30 % away from the window's median RR means a missed or extra beat
NAME = re.compile(r"^(s\d+)_(.+)\.edf$")
LABEL_RULE = (f"60 / mean RR of the chest-ECG N beats inside each 8 s window; dropped with < {MIN_BEATS} beats, "
              f"an RR outside {RR_RANGE_S[0]}-{RR_RANGE_S[1]} s or > {RR_OUTLIER:.0%} from the window median")


def read_beats(path: Path) -> np.ndarray:
    """Sample numbers of the normal beats (type ``N``) in an ``rdann`` text listing."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read beat annotations ({exc})") from None
    samples = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "N":
            try:
                samples.append(int(parts[1]))
            except ValueError:
                raise DataError(f"{path}: line {number}: sample number {parts[1]!r} is not an integer") from None
    beats = np.asarray(samples, dtype=np.int64)
    if len(beats) < MIN_BEATS or np.any(np.diff(beats) <= 0):
        raise DataError(f"{path}: needs increasing sample numbers of at least {MIN_BEATS} 'N' beats")
    return beats


def beat_labels(beats: np.ndarray, fs: float, n_samples: int, drops: Counter) -> np.ndarray:
    """HR (BPM) of every 8 s / 2 s window of a recording ``n_samples`` long; NaN where dropped (counted)."""
    t = beats / fs
    starts = window_starts_s(window_count(n_samples / fs))
    out = np.full(len(starts), np.nan)
    for i, start in enumerate(starts):
        inside = t[(t >= start) & (t < start + WINDOW_S)]
        if len(inside) < MIN_BEATS:
            drops["too_few_beats"] += 1
            continue
        rr = np.diff(inside)
        med = float(np.median(rr))
        if rr.min() < RR_RANGE_S[0] or rr.max() > RR_RANGE_S[1] or np.abs(rr / med - 1).max() > RR_OUTLIER:
            drops["irregular_rr"] += 1
            continue
        out[i] = 60.0 / rr.mean()
    return out


def _read_edf(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(PPG [T], ACC [3, T] in g) of one recording."""
    try:
        import pyedflib
    except ImportError:
        raise DataError("the wrist-exercise loader needs pyedflib: pip install pyedflib") from None
    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise DataError(f"{path}: not a readable EDF file ({exc})") from None
    try:
        if reader.signals_in_file != N_SIGNALS:
            raise DataError(f"{path}: {reader.signals_in_file} signals, the wrist-exercise layout has {N_SIGNALS}")
        rates = reader.getSampleFrequencies()
        if any(abs(rates[i] - FS) > 1e-6 for i in (PPG_INDEX, *ACC_INDEX)):
            raise DataError(f"{path}: PPG/ACC sampled at {rates[PPG_INDEX]:g} Hz, expected {FS:g} Hz")
        units = [reader.getPhysicalDimension(i).strip() for i in ACC_INDEX]
        if any(u != "ms^-2" for u in units):
            raise DataError(f"{path}: accelerometer unit {units[0]!r}, expected 'ms^-2'")
        ppg = reader.readSignal(PPG_INDEX)
        acc = np.vstack([reader.readSignal(i) for i in ACC_INDEX]) / G
    finally:
        reader.close()
    return ppg, acc


def load(root: Path, progress: bool = False) -> WindowSet:
    """Every ``sN_ACTIVITY.edf`` under ``root`` with its ``.ecg_beats.txt`` (see the module docstring)."""
    from tqdm import tqdm

    files = sorted(p for p in root.rglob("*.edf") if NAME.match(p.name))
    if not files:
        raise DataError(f"{root}: no sN_ACTIVITY.edf files found")
    tally, sets, drops = Tally(), [], Counter()
    for edf in tqdm(files, desc="wrist-exercise", unit="rec", disable=None if progress else True):
        subject, activity = NAME.match(edf.name).groups()  # type: ignore[union-attr]
        beats_path = edf.with_name(f"{edf.stem}.ecg_beats.txt")
        if not beats_path.exists():
            raise DataError(f"{edf}: beat annotations {beats_path.name} are missing")
        ppg, acc = _read_edf(edf)
        labels = beat_labels(read_beats(beats_path), FS, len(ppg), drops)
        tally.add_file(edf, root)
        tally.add_file(beats_path, root)
        sets.append(window_recording(ppg[None], FS, labels, acc=acc, subject=subject, recording=edf.stem,
                                     source=str(edf), tally=tally, activity=np.full(len(labels), activity)))
    return finish("wrist-exercise", root, sets, tally,
                  {"label_rule": LABEL_RULE, "label_drops": dict(drops), "fs_hz": FS})
