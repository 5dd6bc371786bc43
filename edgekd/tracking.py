"""Temporal decoding: use heart-rate continuity across consecutive windows (2 s apart) of one recording.

A model gives a distribution over the 180 BPM classes per window. Two decoders combine it with a prior on
how far HR moves per 2 s step (a Gaussian or Laplacian kernel over class offsets, truncated to a band, mixed
with a small uniform floor so a tracker that locked onto an artefact can re-acquire):

- ``viterbi``: offline, the most likely whole path (needs the full recording; for analysis and servers).
- ``causal_track``: the HMM forward pass (filtering), O(180 x band) per window, decision = argmax of the
  filtered posterior. Firmware runs the same algorithm in C (export/tracker/hr_tracker.c); this Python
  version is written in float32 with the C loop's operation order so that the two agree class for class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.bpm import N_CLASSES, class_to_bpm
from edgekd.errors import EdgekdError

MAX_BAND = 32  # the C struct's kernel size is fixed: 2 * MAX_BAND + 1 taps
SQRT2_F32 = np.float32(np.sqrt(2.0))  # HR_TRACKER_SQRT2 in hr_tracker.c (Laplace scale = sigma / sqrt 2)


TRACKER_KINDS = ("gaussian", "laplace")  # the transition shapes (hr_tracker.h: HR_TRACKER_GAUSSIAN, _LAPLACE)


@dataclass(frozen=True)
class TrackerConfig:
    sigma_bpm: float = 3.0      # std of the HR change per 2 s step
    temperature: float = 1.0    # softmax temperature on the model's logits (> 1 trusts the model less)
    kind: str = "gaussian"      # or "laplace" (heavier tails: tolerates occasional fast changes)
    floor: float = 1e-3         # probability mass spread uniformly each step (re-acquisition)

    def __post_init__(self) -> None:
        for name in ("sigma_bpm", "temperature", "floor"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise EdgekdError(f"tracker: {name} must be a number, got {v!r}")
        # in float32, as hr_tracker_init receives them (1e-46 is 0 there)
        if not np.float32(self.sigma_bpm) > 0 or not np.float32(self.temperature) > 0:
            raise EdgekdError(f"tracker: sigma_bpm and temperature must be > 0, got {self.sigma_bpm}, "
                              f"{self.temperature}")
        if self.kind not in TRACKER_KINDS:
            raise EdgekdError(f"tracker: kind must be 'gaussian' or 'laplace', got '{self.kind}'")
        if not 0 <= self.floor < 1:
            raise EdgekdError(f"tracker: floor must be in [0, 1), got {self.floor}")

    # The C tracker receives these as float; the Python side rounds them the same way first.
    @property
    def sigma32(self) -> float:
        return float(np.float32(self.sigma_bpm))

    @property
    def floor32(self) -> float:
        return float(np.float32(self.floor))

    @property
    def band(self) -> int:
        """Kernel half-width in classes: 4 sigma, capped at MAX_BAND (same rule as the C init)."""
        return min(MAX_BAND, int(np.ceil(np.float32(4.0) * np.float32(self.sigma32))))


def transition_kernel(cfg: TrackerConfig) -> np.ndarray:
    """Weights for class offsets -band..band (float32, sums to 1); Laplace scale gives the same std."""
    d = np.arange(-cfg.band, cfg.band + 1, dtype=np.float32)
    if cfg.kind == "gaussian":
        k = np.exp(np.float32(-0.5) * (d / np.float32(cfg.sigma32)) ** 2)
    else:
        k = np.exp(-np.abs(d) / (np.float32(cfg.sigma32) / SQRT2_F32))
    k = k.astype(np.float32)
    return (k / _seq_sum(k)).astype(np.float32)


def _seq_sum(v: np.ndarray) -> np.float32:
    """Left-to-right float32 sum, as the C loop adds (NumPy's pairwise sum would round differently)."""
    return np.cumsum(v, dtype=np.float32)[-1]


def emission(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Unnormalised softmax(logits / T) in float32, max-subtracted like the C code: exp((z - max) * (1/T))."""
    z = np.asarray(logits, dtype=np.float32)
    inv_t = np.float32(1.0) / np.float32(temperature)
    return np.exp((z - z.max(axis=-1, keepdims=True)) * inv_t).astype(np.float32)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 with the tensor's scale and zero point, as firmware does before invoking: float32 division,
    round half to even (C: lrintf), clamp."""
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """INT8 logits -> float32 the way the C tracker does it: scale * (q - zero_point)."""
    return (np.float32(scale) * (np.asarray(q, dtype=np.int32) - zero_point).astype(np.float32)).astype(np.float32)


def _check(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != N_CLASSES:
        raise EdgekdError(f"tracker: logits must be [T, {N_CLASSES}], got {list(logits.shape)}")
    return logits


# Confidence of a tracked window: the filtered posterior's mass within this many classes (BPM) of its peak.
CONFIDENCE_HALFWIDTH = 3


def confidence(alpha: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Posterior mass of classes cls-3..cls+3 of each row of ``alpha`` [R, 180], [R] float32: near 1 when the
    tracker is sure, low when the evidence is split. Summed left to right as the C adds; classes off the grid
    add 0 (exact)."""
    idx = cls[:, None] + np.arange(-CONFIDENCE_HALFWIDTH, CONFIDENCE_HALFWIDTH + 1)[None, :]
    inside = (idx >= 0) & (idx < N_CLASSES)
    mass = np.where(inside, np.take_along_axis(alpha, np.clip(idx, 0, N_CLASSES - 1), axis=1), np.float32(0))
    return np.cumsum(mass, axis=1, dtype=np.float32)[:, -1]


def causal_filter(logits: np.ndarray, cfg: TrackerConfig = TrackerConfig()
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HMM forward pass over one recording's logits [T, 180]: (class per window [T], final state [180],
    confidence per window [T], see :func:`confidence`)."""
    logits = _check(logits)
    classes, alpha, conf = _filter_recordings([logits], cfg)
    return classes[0], alpha[0], conf[0]


def _filter_recordings(recordings: list[np.ndarray], cfg: TrackerConfig
                       ) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    """The forward pass over several recordings' logits at once, one row per recording: each row runs exactly
    the C tracker's float32 operations in its order (the same operations on a [R, 180] array as on [180]; sums
    along the classes stay left to right), so batching changes speed, not results. Returns per recording the
    classes, the final state [R, 180] and the confidences."""
    k = transition_kernel(cfg)
    band = cfg.band
    stay, spread = np.float32(1.0) - np.float32(cfg.floor32), np.float32(cfg.floor32) / np.float32(N_CLASSES)
    order = sorted(range(len(recordings)), key=lambda r: -len(recordings[r]))  # active rows are a prefix
    lengths = np.array([len(recordings[r]) for r in order])
    steps = int(lengths.max()) if len(lengths) else 0
    z_all = np.zeros((len(order), steps, N_CLASSES), np.float32)
    for row, r in enumerate(order):
        z_all[row, :lengths[row]] = recordings[r]
    alpha = np.zeros((len(order), N_CLASSES), dtype=np.float32)
    out = np.zeros((len(order), steps), dtype=np.int64)
    conf = np.zeros((len(order), steps), dtype=np.float32)
    for t in range(steps):
        n = int((lengths > t).sum())
        e = emission(z_all[:n, t], cfg.temperature)
        if t == 0:
            a = e
        else:
            prev = alpha[:n]
            pred = np.zeros((n, N_CLASSES), dtype=np.float32)
            for i, d in enumerate(range(-band, band + 1)):  # pred[j] += k[d] * alpha[j - d], d ascending
                lo, hi = max(0, d), min(N_CLASSES, N_CLASSES + d)
                pred[:, lo:hi] += k[i] * prev[:, lo - d:hi - d]
            a = (pred * stay + spread) * e
        alpha[:n] = (a / np.cumsum(a, axis=1, dtype=np.float32)[:, -1:]).astype(np.float32)
        out[:n, t] = alpha[:n].argmax(axis=1)
        conf[:n, t] = confidence(alpha[:n], out[:n, t])
    back = np.argsort(order)
    final = alpha[back]
    return ([out[row, :lengths[row]] for row in back], final, [conf[row, :lengths[row]] for row in back])


def causal_track(logits: np.ndarray, cfg: TrackerConfig = TrackerConfig()) -> np.ndarray:
    """Class per window from the causal (forward-filtering) tracker over one recording's logits [T, 180]."""
    return causal_filter(logits, cfg)[0]


def _log_transition(cfg: TrackerConfig) -> np.ndarray:
    """log P(next class j | class i), [180, 180]: the same banded kernel and floor as the causal tracker."""
    k = transition_kernel(cfg).astype(np.float64)
    d = np.arange(N_CLASSES)[None, :] - np.arange(N_CLASSES)[:, None]
    m = np.zeros((N_CLASSES, N_CLASSES))
    inside = np.abs(d) <= cfg.band
    m[inside] = k[d[inside] + cfg.band]
    # Rows are not renormalised at the edges (the causal tracker does not either): renormalising would make
    # the extreme classes "sticky", an attractor for flat, uninformative windows.
    return np.log((1.0 - cfg.floor32) * m + cfg.floor32 / N_CLASSES)


def viterbi(logits: np.ndarray, cfg: TrackerConfig = TrackerConfig()) -> np.ndarray:
    """Most likely class path for one recording's logits [T, 180] (offline: sees the whole recording)."""
    logits = _check(logits).astype(np.float64)
    z = logits / cfg.temperature
    logp = z - z.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    log_t = _log_transition(cfg)
    score = logp[0].copy()
    back = np.empty((len(logits), N_CLASSES), dtype=np.int64)
    for t in range(1, len(logits)):
        cand = score[:, None] + log_t  # [from, to]
        back[t] = cand.argmax(axis=0)
        score = cand[back[t], np.arange(N_CLASSES)] + logp[t]
    path = np.empty(len(logits), dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(len(logits) - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


DECODERS = ("argmax", "viterbi", "causal")


def _recordings(recording: np.ndarray, n: int) -> list[np.ndarray]:
    """Window indices of each recording, in first-appearance order (the tracker runs per recording)."""
    recording = np.asarray(recording)
    if recording.shape != (n,):
        raise EdgekdError(f"tracker: {n} logit rows but recording ids of shape {list(recording.shape)}")
    return [np.flatnonzero(recording == rec) for rec in dict.fromkeys(recording.tolist())]


def track_with_confidence(logits: np.ndarray, recording: np.ndarray, cfg: TrackerConfig = TrackerConfig()
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(BPM, confidence) per window from the causal tracker, each recording on its own in stored order."""
    logits = _check(logits)
    classes = np.empty(len(logits), dtype=np.int64)
    conf = np.empty(len(logits), dtype=np.float32)
    groups = _recordings(recording, len(logits))
    if groups:
        per_cls, _, per_conf = _filter_recordings([logits[idx] for idx in groups], cfg)
        for idx, c, q in zip(groups, per_cls, per_conf):
            classes[idx], conf[idx] = c, q
    return np.asarray(class_to_bpm(classes), dtype=np.float32), conf


def decode_recordings(logits: np.ndarray, recording: np.ndarray, method: str = "causal",
                      cfg: TrackerConfig = TrackerConfig()) -> np.ndarray:
    """BPM per window for logits [N, 180] of windows tagged with ``recording`` [N]; each recording is decoded
    on its own, in the windows' stored (time) order."""
    logits = _check(logits)
    if method not in DECODERS:
        raise EdgekdError(f"unknown decoder '{method}'; known: {', '.join(DECODERS)}")
    if method == "causal":
        return track_with_confidence(logits, recording, cfg)[0]
    groups = _recordings(recording, len(logits))  # checks the ids even where argmax does not need them
    classes = logits.argmax(axis=1)
    if method == "viterbi":
        for idx in groups:
            classes[idx] = viterbi(logits[idx], cfg)
    return np.asarray(class_to_bpm(classes), dtype=np.float32)
