"""ONNX Runtime on the CPU (FP32 and INT8 graphs): latency at batch 1 and at a large batch, threads recorded (the
session is opened by edgekd.runtimes.onnx_session, as evaluation opens it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.runtimes import onnx_session
from firmware_bench.timing import time_calls

_DTYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


def input_batch(sess: Any, batch: int, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """(input name, a random batch) shaped like the model's input; a fixed batch dimension must be 1 or batch."""
    inp = sess.get_inputs()[0]
    dtype = _DTYPES.get(inp.type)
    if dtype is None:
        raise EdgekdError(f"ONNX input '{inp.name}' has unsupported type {inp.type}")
    dims = list(inp.shape)
    if isinstance(dims[0], int) and dims[0] != batch:
        raise EdgekdError(f"ONNX input '{inp.name}' has a fixed batch of {dims[0]}, cannot run batch {batch}")
    shape = [batch] + [int(d) for d in dims[1:]]
    if dtype is np.float32:
        return inp.name, rng.standard_normal(shape).astype(np.float32)
    info = np.iinfo(dtype)
    return inp.name, rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)


def dynamic_batch(sess: Any) -> bool:
    return not isinstance(sess.get_inputs()[0].shape[0], int)


def bench(model: str | Path | bytes, threads: int, repeat: int, large_batch: int) -> dict[str, Any]:
    """Batch-1 latency and, when the batch axis is dynamic, large-batch latency/throughput."""
    sess = onnx_session(model, threads)
    rng = np.random.default_rng(0)
    figures: dict[str, Any] = {}
    batches = [1, large_batch] if dynamic_batch(sess) and large_batch > 1 else [1]
    for b in batches:
        name, x = input_batch(sess, b, rng)
        reps = repeat if b == 1 else max(3, repeat // 10)
        figures[f"batch_{b}"] = time_calls(lambda: sess.run(None, {name: x}), reps, warmup=5, batch=b).as_dict()
    return figures
