"""TFLM on the host (the real kernels, via the optional ``tflite-micro`` package): arena size and inference.

Export records the arena with it and the gate re-measures it from the flatbuffer, so both use one definition.

The package has no getter for the arena used, and a too-small arena raises at allocation, so the minimum
is found by bisection; firmware gets that plus a margin, rounded up to TFLM's 16-byte alignment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np
from tflite_micro import runtime

ALIGN = 16
MARGIN = 1.10  # headroom for a different TFLM build or kernel set (CMSIS-NN scratch buffers differ)
SEARCH_LIMIT = 16 << 20


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """TFLM reports each failed allocation on C-level stderr; bisection fails on purpose many times."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def interpreter(model: bytes, arena_size: int = SEARCH_LIMIT) -> runtime.Interpreter:
    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


def _allocates(model: bytes, size: int) -> bool:
    try:
        interp = interpreter(model, size)
        interp.invoke()  # some kernels claim scratch memory only on first use; prove the size really runs
        return True
    except RuntimeError:
        return False


def arena_bytes(model: bytes) -> tuple[int, int]:
    """(minimum arena that allocates and runs, recommended = minimum * MARGIN rounded up to 16 bytes)."""
    with _c_stderr_silenced():
        if not _allocates(model, SEARCH_LIMIT):
            raise RuntimeError(f"model does not allocate even with a {SEARCH_LIMIT}-byte TFLM arena")
        lo, hi = 0, SEARCH_LIMIT  # invariant: lo fails (or is 0), hi works
        while hi - lo > ALIGN:
            mid = (lo + hi) // 2 // ALIGN * ALIGN
            if _allocates(model, mid):
                hi = mid
            else:
                lo = mid
    recommended = -(-int(hi * MARGIN) // ALIGN) * ALIGN
    return hi, recommended


def run_tflm(model: bytes, x_q: np.ndarray, arena_size: int) -> np.ndarray:
    """int8 outputs for int8 inputs x_q [N, ...input shape without batch], one window per invoke."""
    interp = interpreter(model, arena_size)
    out = []
    for window in x_q:
        interp.set_input(window[None], 0)
        interp.invoke()
        out.append(interp.get_output(0)[0].copy())
    return np.stack(out)
