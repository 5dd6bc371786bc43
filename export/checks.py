"""The TFLM gate on a .tflite graph's ops (``edgekd.runtimes.flatbuffer_ops``): only int8 builtins TFLM ships.

``edgekd.tflm_ops.TFLM_RESOLVER`` is the one table of op name -> ``MicroMutableOpResolver`` method; ``ops.h`` is
generated from it, and an op missing from it fails the export.
"""

from __future__ import annotations

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.runtimes import OpInfo
from edgekd.tflm_ops import TFLM_RESOLVER

# Present in TFLM but never acceptable here: they mean a float island or a layout change on the MCU.
FORBIDDEN = {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE"}


def check_tflm_ops(ops: list[OpInfo], source: str) -> list[str]:
    """The sorted op names if the graph is TFLM-ready; otherwise EdgekdError listing every offending op."""
    problems = []
    for op in ops:
        if op.name.startswith("Flex") or op.name in ("CUSTOM", "DELEGATE"):
            problems.append(f"op {op.index} {op.name}: Flex/custom op (needs the TF runtime, not in TFLM)")
        elif op.name in FORBIDDEN:
            problems.append(f"op {op.index} {op.name}: must not appear inside a full-integer TFLM graph")
        elif op.name not in TFLM_RESOLVER:
            problems.append(f"op {op.index} {op.name}: not a TFLM builtin this exporter registers")
        floats = sorted({t for t in op.tensor_types if not np.issubdtype(np.dtype(t), np.integer)})
        if floats:
            problems.append(f"op {op.index} {op.name}: {'/'.join(floats)} tensors (float op)")
    if problems:
        raise EdgekdError(f"{source}: graph is not TFLM-ready INT8:\n  " + "\n  ".join(problems))
    return sorted({op.name for op in ops})
