"""TensorFlow Lite Micro on the host (``tflite-micro``): the real TFLM kernels, the real arena planner.

The package has no getter for the arena a model used: ``print_allocations()`` writes "Arena allocation
total N bytes" to the C-level stderr, so we read file descriptor 2. A too-small arena makes the
constructor raise ``RuntimeError`` after TFLM prints why on that same stream; we turn that into an
EdgekdError carrying TFLM's own words. TFLM wants a 16-byte aligned arena size.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError
from firmware_bench.timing import Timing, time_calls

ALIGN = 16
_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


@contextlib.contextmanager
def c_stderr() -> Iterator[list[str]]:
    """Capture what C/C++ code writes to file descriptor 2; the list holds the text after the block."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def interpreter(model: bytes, arena_bytes: int) -> Any:
    """A TFLM interpreter with exactly ``arena_bytes`` of arena; EdgekdError (with TFLM's reason) if too small."""
    from tflite_micro import runtime

    if arena_bytes <= 0:
        raise EdgekdError(f"TFLM arena must be positive, got {arena_bytes} bytes")
    with c_stderr() as err:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
        except RuntimeError as exc:
            failure = exc
    reason = " / ".join(line.strip() for line in err[0].splitlines() if line.strip())[:400]
    raise EdgekdError(f"TFLM cannot allocate the model in a {arena_bytes}-byte arena ({failure}: "
                      f"{reason or 'no detail printed'})")


def _random_input(it: Any, rng: np.random.Generator) -> np.ndarray:
    d = it.get_input_details(0)
    info = np.iinfo(d["dtype"])
    return rng.integers(info.min, info.max + 1, size=tuple(d["shape"]), dtype=d["dtype"])


def arena_used(model: bytes, arena_bytes: int) -> int:
    """Bytes TFLM's recording allocator reports after one inference in an arena of ``arena_bytes``."""
    it = interpreter(model, arena_bytes)
    it.set_input(_random_input(it, np.random.default_rng(0)), 0)
    it.invoke()
    with c_stderr() as err:
        it.print_allocations()
    match = _TOTAL.search(err[0])
    if not match:
        raise EdgekdError("tflite-micro printed no 'Arena allocation total' line; cannot measure the arena")
    return int(match.group(1))


def measure_arena(model: bytes) -> int:
    """The arena the model needs: TFLM's reported total, rounded up to 16 bytes, checked to allocate and run."""
    generous = align(max(64 * 1024, 10 * len(model)))
    need = align(arena_used(model, generous))
    arena_used(model, need)  # the reported figure itself must be enough, or the measurement is wrong
    return need


def bench(model: bytes, arena_bytes: int, repeat: int, warmup: int = 5) -> Timing:
    """Per-window latency of TFLM reference/optimised host kernels (not MCU time: see ``mcu``)."""
    it = interpreter(model, arena_bytes)
    x = _random_input(it, np.random.default_rng(0))

    def call() -> None:
        it.set_input(x, 0)
        it.invoke()

    return time_calls(call, repeat, warmup, batch=int(x.shape[0]))


def io_bytes(model: bytes, arena_bytes: int) -> int:
    """Input plus output tensor bytes: the buffers firmware keeps beside the arena (stedgeai counts them too)."""
    it = interpreter(model, arena_bytes)
    total = 0
    for getter in (it.get_input_details, it.get_output_details):
        d = getter(0)
        total += int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
    return total
