"""GalaxyPPG (KAIST ICLab, 2025): 24 participants, Galaxy Watch 5 green PPG with a Polar H10 reference.

Layout: ``P01..P24/`` with ``GalaxyWatch/PPG.csv`` (dataReceived, timestamp [ms], ppg, status; 25 Hz),
``GalaxyWatch/ACC.csv`` (dataReceived, timestamp, x, y, z; 25 Hz raw counts), ``PolarH10/HR.csv``
(phoneTimestamp [ms], hr), ``Event.csv`` (timestamp, session, status ENTER/EXIT); ``E4/`` and
``PolarH10/ECG.csv`` are not used.

The watch streams with jitter and gaps, so PPG and ACC are interpolated onto an exact 25 Hz grid from the
first PPG sample; grid points more than ``MAX_GAP_S`` from a real sample become NaN, and windows touching
them are dropped and counted. Label = mean Polar HR in the window. Activity = the Event.csv session that
contains the window's centre ("transition" between sessions).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgekd.data.csv_loader import read_columns
from edgekd.data.recording import Tally, finish, labels_from_series, window_recording
from edgekd.errors import DataError
from edgekd.geometry import STRIDE_S, WINDOW_S
from edgekd.windowset import WindowSet

FS = 25.0
MAX_GAP_S = 0.5
# Samsung Health Sensor SDK accelerometer counts: value * 9.81 / (16383.75 / 4) m/s^2, i.e. 4096 counts per g.
ACC_COUNTS_PER_G = 16383.75 / 4.0
# The Polar phone app's timestamps run 9 h (KST) ahead of the watch's; the dataset's own segmentation
# code (GalaxyPPG-Supplementary-Code, Window_Segment.py) subtracts this offset, and so do we.
POLAR_OFFSET_MS = 32_400_000


def to_grid(t_ms: np.ndarray, values: np.ndarray, t0_ms: float, n: int) -> np.ndarray:
    """Interpolate [C, T] samples at times ``t_ms`` onto n points of a 25 Hz grid from ``t0_ms``; NaN in gaps."""
    order = np.argsort(t_ms, kind="stable")
    t_ms, values = t_ms[order], np.atleast_2d(values)[:, order]
    grid = t0_ms + np.arange(n) * 1000.0 / FS
    out = np.vstack([np.interp(grid, t_ms, v) for v in values])
    nearest = np.clip(np.searchsorted(t_ms, grid), 1, len(t_ms) - 1)
    gap = np.minimum(np.abs(grid - t_ms[nearest - 1]), np.abs(t_ms[nearest] - grid))
    out[:, gap > MAX_GAP_S * 1000] = np.nan
    return out


def sessions(path: Path) -> list[tuple[float, float, str]]:
    """(start ms, end ms, name) of each ENTER..EXIT pair in Event.csv."""
    import csv

    try:
        with open(path, newline="") as fh:
            rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if rows and not {"timestamp", "session", "status"} <= set(rows[0]):
        raise DataError(f"{path}: missing column(s) timestamp, session, status (found: {', '.join(rows[0])})")
    out, open_at = [], {}
    try:
        for r in sorted(rows, key=lambda r: float(r["timestamp"])):
            if r["status"].upper() == "ENTER":
                open_at[r["session"]] = float(r["timestamp"])
            elif r["status"].upper() == "EXIT" and r["session"] in open_at:
                out.append((open_at.pop(r["session"]), float(r["timestamp"]), r["session"]))
    except ValueError:
        raise DataError(f"{path}: non-numeric timestamp") from None
    return out


def load(root: Path, progress: bool = False) -> WindowSet:
    """Every participant folder ``P<nn>/`` under ``root``."""
    from tqdm import tqdm

    parts = sorted(p for p in root.iterdir() if p.is_dir() and re.match(r"^P\d+$", p.name))
    if not parts:
        raise DataError(f"{root}: no GalaxyPPG participant folders (P01, P02, ...) found")
    tally, sets = Tally(), []
    for part in tqdm(parts, desc="galaxyppg", unit="rec", disable=None if progress else True):
        paths = {k: part / rel for k, rel in (("ppg", "GalaxyWatch/PPG.csv"), ("acc", "GalaxyWatch/ACC.csv"),
                                              ("hr", "PolarH10/HR.csv"), ("event", "Event.csv"))}
        for p in paths.values():
            if not p.exists():
                raise DataError(f"{p}: file is missing")
        ppg = read_columns(paths["ppg"], ["timestamp", "ppg"])
        acc = read_columns(paths["acc"], ["timestamp", "x", "y", "z"])
        hr = read_columns(paths["hr"], ["phoneTimestamp", "hr"])
        events = sessions(paths["event"])
        for p in paths.values():
            tally.add_file(p, root)
        t_ppg = ppg["timestamp"]
        if len(t_ppg) < 2 or not np.isfinite(t_ppg).all():
            raise DataError(f"{paths['ppg']}: timestamps missing or not numeric")
        t0 = float(t_ppg.min())
        n = int((t_ppg.max() - t0) * FS / 1000.0) + 1
        ppg_grid = to_grid(t_ppg, ppg["ppg"], t0, n)
        acc_grid = to_grid(acc["timestamp"], np.vstack([acc["x"], acc["y"], acc["z"]]), t0, n) / ACC_COUNTS_PER_G
        labels = labels_from_series((hr["phoneTimestamp"] - POLAR_OFFSET_MS - t0) / 1000.0, hr["hr"], n / FS)
        centres = t0 + (np.arange(len(labels)) * STRIDE_S + WINDOW_S / 2) * 1000.0
        activity = np.array([next((name for a, b, name in events if a <= c < b), "transition") for c in centres])
        sets.append(window_recording(ppg_grid, FS, labels, acc=acc_grid, subject=part.name, recording=part.name,
                                     source=str(paths["ppg"]), tally=tally, activity=activity))
    return finish("galaxyppg", root, sets, tally)
