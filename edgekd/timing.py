"""Latency statistics from repeated calls: warm-up first, then medians and p90 (no single-shot timings)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from edgekd.errors import EdgekdError


@dataclass(frozen=True)
class Timing:
    """Per-call wall time in milliseconds over ``n`` timed calls of ``batch`` windows each."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    n: int
    batch: int

    @property
    def throughput(self) -> float:
        """Windows per second at the median call time."""
        return self.batch / (self.median_ms / 1e3)

    def as_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "throughput_per_s": self.throughput}


def summarise(samples_s: list[float] | np.ndarray, batch: int = 1) -> Timing:
    """Statistics of per-call durations given in seconds."""
    arr = np.asarray(samples_s, dtype=np.float64) * 1e3
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise EdgekdError("timing needs at least one finite, non-negative sample")
    return Timing(float(np.median(arr)), float(np.percentile(arr, 90)), float(arr.mean()), float(arr.min()),
                  int(arr.size), batch)


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 10, batch: int = 1,
               sync: Callable[[], None] | None = None) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed.

    ``sync`` runs after each call inside the timed region: asynchronous devices (CUDA) must finish the
    work before the clock stops, or the figure is only the launch time.
    """
    if repeat < 1:
        raise EdgekdError(f"--repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append(time.perf_counter() - t0)
    return summarise(samples, batch)
