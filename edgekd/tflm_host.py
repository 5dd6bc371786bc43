"""TFLM on the host (the optional ``tflite-micro`` package: the real kernels and arena planner): the one adapter
export, the gate, bench, evaluation and the firmware check use, with one definition of the arena.

The arena is the smallest 16-byte multiple in which the model allocates and runs one inference (some kernels
claim scratch memory on first use), found by bisection; firmware gets that plus MARGIN, rounded up to 16 bytes.
The package has no getter for the arena used, and a too-small arena makes the constructor raise after TFLM
prints why on the C-level stderr: ``interpreter`` turns that into an EdgekdError carrying TFLM's own words.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError

ALIGN = 16
# TFLM's own bookkeeping needs more than this; in a smaller arena the host interpreter crashes (a segfault at
# 256 bytes and below) instead of refusing, so such an arena is refused here.
MIN_ARENA = 1024
MARGIN = 1.10  # headroom for a different TFLM build or kernel set (CMSIS-NN scratch buffers differ)
SEARCH_LIMIT = 16 << 20


def align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


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


def interpreter(model: bytes, arena_bytes: int) -> Any:
    """A TFLM interpreter with exactly ``arena_bytes`` of arena; EdgekdError (with TFLM's reason) if too small."""
    from tflite_micro import runtime

    if arena_bytes < MIN_ARENA:
        raise EdgekdError(f"a TFLM arena of {arena_bytes} bytes is too small for any model (at least {MIN_ARENA})")
    with c_stderr() as err:
        try:
            return runtime.Interpreter.from_bytes(model, arena_size=arena_bytes)
        except RuntimeError as exc:
            failure = exc
    reason = " / ".join(line.strip() for line in err[0].splitlines() if line.strip())[:400]
    raise EdgekdError(f"TFLM cannot allocate the model in a {arena_bytes}-byte arena ({failure}: "
                      f"{reason or 'no detail printed'})")


def random_input(it: Any, rng: np.random.Generator) -> np.ndarray:
    """A random tensor of the interpreter's input type and shape (timing and arena checks)."""
    d = it.get_input_details(0)
    info = np.iinfo(d["dtype"])
    return rng.integers(info.min, info.max + 1, size=tuple(d["shape"]), dtype=d["dtype"])


def check_runs(model: bytes, arena_bytes: int) -> None:
    """EdgekdError unless the model allocates in ``arena_bytes`` and runs one inference there."""
    it = interpreter(model, arena_bytes)
    it.set_input(random_input(it, np.random.default_rng(0)), 0)
    with c_stderr() as err:
        try:
            it.invoke()
            return
        except RuntimeError as exc:
            failure = exc
    raise EdgekdError(f"TFLM allocates the model in a {arena_bytes}-byte arena but cannot run it ({failure}: "
                      f"{' / '.join(err[0].split())[:200] or 'no detail printed'})")


def _runs(model: bytes, size: int) -> bool:
    try:
        check_runs(model, size)
        return True
    except EdgekdError:
        return False


def arena_bytes(model: bytes) -> tuple[int, int]:
    """(minimum arena that allocates and runs, recommended = minimum * MARGIN rounded up to 16 bytes)."""
    if not _runs(model, SEARCH_LIMIT):
        raise EdgekdError(f"the model does not run even in a {SEARCH_LIMIT}-byte TFLM arena")
    lo, hi = 0, SEARCH_LIMIT  # invariant: lo fails (or is 0), hi works
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if _runs(model, mid):
            hi = mid
        else:
            lo = mid
    return hi, align(int(hi * MARGIN))


def io_bytes(model: bytes, arena_size: int) -> int:
    """Input plus output tensor bytes: the buffers firmware keeps beside the arena (stedgeai counts them too)."""
    it = interpreter(model, arena_size)
    total = 0
    for getter in (it.get_input_details, it.get_output_details):
        d = getter(0)
        total += int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
    return total
