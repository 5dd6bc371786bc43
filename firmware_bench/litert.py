"""LiteRT (``ai-edge-litert``, the successor of tflite-runtime) timing the INT8 flatbuffer on the host CPU (the
interpreter is opened by edgekd.runtimes.litert_interpreter, as evaluation opens it)."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.runtimes import litert_interpreter
from firmware_bench.timing import time_calls


def bench(model: bytes, threads: int, repeat: int) -> dict[str, Any]:
    """Batch-1 latency (the flatbuffer has a fixed batch of 1, as firmware runs it)."""
    it = litert_interpreter(model, threads)
    d = it.get_input_details()[0]
    info = np.iinfo(d["dtype"]) if np.issubdtype(d["dtype"], np.integer) else None
    rng = np.random.default_rng(0)
    x = (rng.integers(info.min, info.max + 1, size=tuple(d["shape"]), dtype=d["dtype"]) if info is not None
         else rng.standard_normal(tuple(d["shape"])).astype(d["dtype"]))

    def call() -> None:
        it.set_tensor(d["index"], x)
        it.invoke()

    return {"batch_1": time_calls(call, repeat, warmup=5, batch=int(d["shape"][0])).as_dict(),
            "input_dtype": np.dtype(d["dtype"]).name, "delegate": "LiteRT default (XNNPACK)"}
