"""TFLM host timing for `edgekd bench` (the interpreter, arena and inference are edgekd.tflm_host's)."""

from __future__ import annotations

import numpy as np

from edgekd.tflm_host import interpreter, random_input
from firmware_bench.timing import Timing, time_calls


def bench(model: bytes, arena_bytes: int, repeat: int, warmup: int = 5) -> Timing:
    """Per-window latency of TFLM reference/optimised host kernels (not MCU time: see ``mcu``)."""
    it = interpreter(model, arena_bytes)
    x = random_input(it, np.random.default_rng(0))

    def call() -> None:
        it.set_input(x, 0)
        it.invoke()

    return time_calls(call, repeat, warmup, batch=int(x.shape[0]))
