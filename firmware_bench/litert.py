"""LiteRT (``ai-edge-litert``, the successor of tflite-runtime) running the INT8 flatbuffer on the host CPU."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekd.errors import EdgekdError
from firmware_bench.timing import time_calls


def interpreter(model: bytes, threads: int, delegates: bool = True) -> Any:
    """A LiteRT interpreter; ``delegates=True`` is LiteRT's default (XNNPACK takes over the float/int8 ops)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgekdError(f"LiteRT cannot load the INT8 flatbuffer ({exc})") from None
    return it


def op_names(model: bytes) -> list[str]:
    """Builtin op names of the graph in execution order (what the TFLM op resolver must register).

    Without delegates, or XNNPACK would replace the ops by DELEGATE nodes. ``_get_ops_details`` is LiteRT's
    (underscored) op listing; it saves parsing the flatbuffer schema here.
    """
    return [op["op_name"] for op in interpreter(model, 1, delegates=False)._get_ops_details()]


def bench(model: bytes, threads: int, repeat: int) -> dict[str, Any]:
    """Batch-1 latency (the flatbuffer has a fixed batch of 1, as firmware runs it)."""
    it = interpreter(model, threads)
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
