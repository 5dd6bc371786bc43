"""Do a prepared data set's labels line up with its signal? The check `edgekd data check` runs and records.

The independent estimate is the spectral peak of each window (edgekd.fusion.spectral_evidence: the PPG power on
the class grid, with the accelerometer's frequencies suppressed where the data have ACC; no tracking, no model).
On a moving wrist the peak follows step and pedal cadence, so with ACC only the quietest half of the windows (by
wrist motion) are checked. Labels that belong to the signal agree with the peak far more often than the same
labels moved later in their recording, or another subject's median HR: the check reports all three, so a loader
that misaligns labels (a wrong lag, a wrong sample rate, labels of another recording) shows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.bpm import bin_bpms
from edgekd.fusion import spectral_evidence, window_motion
from edgekd.geometry import STRIDE_S
from edgekd.windowset import WindowSet

TOLERANCE_BPM = 5.0  # a peak this close to the label agrees with it
SHIFTS = (5, 30)  # labels moved this many windows later in their recording: 10 s and 60 s
QUIET_SHARE = 0.5  # with ACC: the share of windows with the least wrist motion that are checked


def shifted(ws: WindowSet, k: int) -> np.ndarray:
    """Labels moved ``k`` windows later within each recording (NaN where there is none)."""
    out = np.full(len(ws), np.nan)
    for rec in np.unique(ws.recording):
        i = np.flatnonzero(ws.recording == rec)
        if k < len(i):
            out[i[:len(i) - k]] = ws.hr[i[k:]]
    return out


def agreement(est: np.ndarray, labels: np.ndarray, tol: float = TOLERANCE_BPM) -> float | None:
    """Share of windows (with a label) whose estimate is within ``tol`` BPM of it; None when none has one."""
    ok = np.isfinite(labels)
    return float(np.mean(np.abs(est[ok] - labels[ok]) < tol)) if ok.any() else None


def other_subject(ws: WindowSet) -> np.ndarray:
    """Each window's label replaced by the median HR of the next subject (in sorted order, cyclic); all NaN when
    there is no other subject."""
    subjects = ws.subjects()
    if len(subjects) < 2:
        return np.full(len(ws), np.nan)
    median = {s: float(np.median(ws.hr[ws.subject == s])) for s in subjects}
    other = dict(zip(subjects, np.roll(subjects, 1)))
    return np.array([median[other[s]] for s in ws.subject])


def check_labels(ws: WindowSet) -> dict[str, Any]:
    """What one data set holds and how well its labels agree with its spectral peaks (see the module doc)."""
    has_acc = ws.n_channels > 1 and bool(ws.x[:, 1:].any())
    peak = bin_bpms()[spectral_evidence(ws).argmax(1)]
    checked = np.ones(len(ws), bool)
    if has_acc:
        motion = window_motion(ws)
        checked = motion <= np.quantile(motion, QUIET_SHARE)
    dropped = ws.provenance.get("dropped_windows", {})
    row: dict[str, Any] = {
        "dataset": ws.provenance.get("dataset") or "/".join(ws.datasets()), "windows": len(ws),
        "subjects": len(ws.subjects()), "recordings": len(set(ws.recording.tolist())),
        "channels": list(ws.channels), "dropped": {k: int(v) for k, v in dropped.items() if v},
        "hr_min": float(ws.hr.min()), "hr_max": float(ws.hr.max()), "hr_std": float(ws.hr.std()),
        "activities": ({a: int(c) for a, c in zip(*np.unique(ws.activity, return_counts=True))}
                       if ws.activity is not None else {}),
        "checked_windows": int(checked.sum()),
        "checked": f"the quietest {QUIET_SHARE:.0%} by wrist motion" if has_acc else "all",
        "aligned": agreement(peak[checked], ws.hr[checked]),
        "other_subject": agreement(peak[checked], other_subject(ws)[checked]),
    }
    row["shifted"] = {str(k): agreement(peak[checked], shifted(ws, k)[checked]) for k in SHIFTS}
    return row


def shift_label(windows: int) -> str:
    """A shift as people read it: '10 s later'."""
    return f"{windows * STRIDE_S:g} s later"


def settings() -> dict[str, Any]:
    """The check's constants, recorded beside its rows (the table is rendered from them)."""
    return {"tolerance_bpm": TOLERANCE_BPM, "shifts": list(SHIFTS), "stride_s": STRIDE_S, "quiet_share": QUIET_SHARE}
