"""Deterministic synthetic wrist PPG + ACC: the embedded default corpus, so a fresh install runs offline.

Each subject gets its own beat shape (systolic peak, dicrotic notch and wave), resting HR, coupling of
motion into the PPG, and noise level. A recording walks through rest / walk / run segments; HR follows
each segment's target with a lag, plus beat-to-beat variability. Motion is a cadence oscillation with
harmonics, seen by a 3-axis accelerometer and leaking into the PPG (the artefact a model must reject),
plus baseline wander, respiration and white noise. The signal is generated at 100 Hz and goes through the
same preprocessing as real recordings.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

from edgekd.data.preprocess import frame, to_25hz, zscore, n_windows
from edgekd.errors import DataError
from edgekd.geometry import FS, STRIDE, WINDOW
from edgekd.windowset import CHANNEL_NAMES_PPG_ACC, WindowSet

FS_GEN = 100.0
DATASET = "synthetic"
# What one synthetic training subject is (RunConfig.synthetic, edgekd lodo --synthetic): 6 minutes, seed 0.
TRAINING_MINUTES = 6.0
TRAINING_SEED = 0
# activity -> (HR above rest in BPM, cadence range in Hz, motion amplitude in g)
ACTIVITIES = {
    "rest": (0.0, (0.0, 0.0), 0.0),
    "walk": (25.0, (1.5, 2.0), 0.25),
    "run": (70.0, (2.4, 3.0), 0.8),
}


def _subject_params(rng: np.random.Generator) -> dict[str, float]:
    return {
        "hr_rest": rng.uniform(55, 85),
        "sys_width": rng.uniform(0.06, 0.10),
        "dic_pos": rng.uniform(0.42, 0.55),
        "dic_amp": rng.uniform(0.15, 0.45),
        "coupling": rng.uniform(0.3, 1.2),
        "noise": rng.uniform(0.03, 0.12),
        "resp_hz": rng.uniform(0.2, 0.33),
    }


def _beat(phase: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """One cardiac cycle as a function of phase in [0, 1): systolic Gaussian + dicrotic wave after a notch."""
    ph = phase % 1.0
    systolic = np.exp(-0.5 * ((ph - 0.2) / p["sys_width"]) ** 2)
    dicrotic = p["dic_amp"] * np.exp(-0.5 * ((ph - p["dic_pos"]) / (1.4 * p["sys_width"])) ** 2)
    return systolic + dicrotic


def _recording(rng: np.random.Generator, p: dict[str, float], seconds: float) -> tuple[np.ndarray, ...]:
    n = int(seconds * FS_GEN)
    t = np.arange(n) / FS_GEN
    # Segments of 40-120 s, activities drawn so every subject has some motion.
    seg_act, seg_len = [], []
    while sum(seg_len) < n:
        seg_act.append(rng.choice(list(ACTIVITIES), p=[0.4, 0.35, 0.25]))
        seg_len.append(int(rng.uniform(40, 120) * FS_GEN))
    activity = np.repeat(seg_act, seg_len)[:n]
    target = p["hr_rest"] + np.array([ACTIVITIES[a][0] * rng.uniform(0.7, 1.2) for a in seg_act])
    target = np.repeat(target, seg_len)[:n]
    # HR approaches each target with a ~20 s time constant; slow random walk adds variability.
    alpha = 1.0 / (20.0 * FS_GEN)
    hr, _ = signal.lfilter([alpha], [1, alpha - 1], target, zi=[(1 - alpha) * target[0]])
    drift = np.cumsum(rng.normal(0, 0.02, n))
    hr = np.clip(hr + drift - drift.mean(), 40, 200)
    phase = np.cumsum(hr / 60.0 / FS_GEN)
    resp = 1 + 0.15 * np.sin(2 * np.pi * p["resp_hz"] * t)
    ppg = _beat(phase, p) * resp
    # Motion: cadence oscillation with a harmonic, per-segment cadence, random axis mixing.
    cadence = np.repeat([rng.uniform(*ACTIVITIES[a][1]) if a != "rest" else 0 for a in seg_act], seg_len)[:n]
    amp = np.repeat([ACTIVITIES[a][2] for a in seg_act], seg_len)[:n]
    mphase = np.cumsum(cadence / FS_GEN) * 2 * np.pi
    motion = amp * (np.sin(mphase) + 0.4 * np.sin(2 * mphase + rng.uniform(0, np.pi)))
    mix = rng.normal(size=3)
    mix /= np.linalg.norm(mix)
    acc = mix[:, None] * motion[None, :] + rng.normal(0, 0.02, (3, n))
    acc[2] += 1.0  # gravity on z; removed by the band-pass like in real data
    wander = 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.15) * t + rng.uniform(0, 2 * np.pi))
    ppg = ppg + p["coupling"] * motion + wander + rng.normal(0, p["noise"], n)
    return ppg, acc, hr, activity


def generate(subjects: int = 12, minutes: float = 6.0, seed: int = 0) -> WindowSet:
    """A WindowSet of ``subjects`` x ``minutes`` of synthetic PPG + 3-axis ACC, identical for equal arguments."""
    xs, hrs, subs, recs, acts = [], [], [], [], []
    for s in range(subjects):
        rng = np.random.default_rng([seed, s])
        p = _subject_params(rng)
        ppg, acc, hr, activity = _recording(rng, p, minutes * 60.0)
        name = f"synth-S{s + 1:02d}"
        sig = to_25hz(np.vstack([ppg[None], acc]), FS_GEN, name)
        starts = np.arange(n_windows(sig.shape[-1])) * STRIDE
        w = frame(sig, starts)  # [N, 4, 200]
        w[:, 0] = zscore(w[:, 0])
        step = FS_GEN / FS  # raw samples per 25 Hz sample
        raw_starts = (starts * step).astype(int)
        raw_win = int(WINDOW * step)
        xs.append(w.astype(np.float32))
        hrs.append(np.array([hr[a:a + raw_win].mean() for a in raw_starts]))
        acts.append(np.array([_majority(activity[a:a + raw_win]) for a in raw_starts]))
        subs.append(np.full(len(starts), name))
        recs.append(np.full(len(starts), name))
    return WindowSet(
        x=np.concatenate(xs), hr=np.concatenate(hrs), subject=np.concatenate(subs),
        recording=np.concatenate(recs), activity=np.concatenate(acts), channels=CHANNEL_NAMES_PPG_ACC,
        provenance={"dataset": DATASET, "generator": "edgekd.data.synthetic",
                    "parameters": {"subjects": subjects, "minutes": minutes, "seed": seed},
                    "preprocessing": {"bandpass_hz": [0.5, 4.0], "fs": FS, "window_s": 8, "stride_s": 2,
                                      "ppg": "z-score per window", "acc": "g, band-passed"}},
    )


def training_problem(like: WindowSet) -> str | None:
    """Why synthetic training subjects cannot join the data ``like`` (None when they can)."""
    if DATASET in like.datasets():
        return "the data already hold the synthetic corpus: synthetic training subjects would repeat its test subjects"
    if like.channels != CHANNEL_NAMES_PPG_ACC[:len(like.channels)]:
        return (f"channels {', '.join(like.channels)} are not a prefix of the synthetic corpus's "
                f"{', '.join(CHANNEL_NAMES_PPG_ACC)}")
    return None


def training_subjects(subjects: int, like: WindowSet) -> WindowSet:
    """``subjects`` synthetic subjects as extra training windows for the data ``like``: its channels (a
    prefix of PPG + ACC), data set "synthetic", ids ``synthetic/synth-S01`` (as ``merge`` names them, so they
    never share an id with the data's own subjects)."""
    if why := training_problem(like):
        raise DataError(f"synthetic training subjects: {why}")
    ws = _training_corpus(subjects).first_channels(len(like.channels))
    ws.subject, ws.recording = (np.char.add(f"{DATASET}/", ids) for ids in (ws.subject, ws.recording))
    return ws


@lru_cache(maxsize=2)
def _training_corpus(subjects: int) -> WindowSet:
    """Generated once per process: grouped training and sweeps ask for the same subjects run after run."""
    return generate(subjects, TRAINING_MINUTES, TRAINING_SEED)


def _majority(labels: np.ndarray) -> str:
    values, counts = np.unique(labels, return_counts=True)
    return str(values[counts.argmax()])
