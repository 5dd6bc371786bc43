"""What is inside a .tflite flatbuffer, and the TFLM gate: only int8 builtins TFLM ships, nothing else.

``edgekd.tflm_ops.TFLM_RESOLVER`` is the one table of op name -> ``MicroMutableOpResolver`` method; ``ops.h``
is generated from it, and an op missing from it fails the export.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.tflm_ops import TFLM_RESOLVER

# Present in TFLM but never acceptable here: they mean a float island or a layout change on the MCU.
FORBIDDEN = {"QUANTIZE", "DEQUANTIZE", "TRANSPOSE"}


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    tensor_types: tuple[str, ...]


def op_list(model: bytes) -> list[OpInfo]:
    """Every op of the graph, in execution order, with the dtypes of its input and output tensors."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():  # the public API has no op list; this one is stable across releases
        idx = [int(i) for i in list(op["inputs"]) + list(op["outputs"]) if int(i) >= 0]
        ops.append(OpInfo(int(op["index"]), str(op["op_name"]),
                          tuple(np.dtype(tensors[i]["dtype"]).name for i in idx if i in tensors)))
    return ops


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
