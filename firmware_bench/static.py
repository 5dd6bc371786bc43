"""Static costs of an INT8 artifact: flash, RAM, params and MACs per window, the way stedgeai/Vela report them.

flash = flatbuffer bytes + an estimate of the TFLM runtime code for the model's op set.
RAM   = measured TFLM arena + the application's input/output buffers (TFLM's own I/O tensors live inside
        the arena; firmware keeps its copy of the window and of the logits beside it).

The runtime-code table is an estimate, not a linker map: the sizes of the code symbols in the host build
of ``tflite-micro`` (x86-64, version 0.dev20261023182759-g8f6596d), measured with ``nm -S``, grouped by
kernel (Prepare/Eval/reference kernels, every tensor type the kernel supports) and for the interpreter
core (MicroInterpreter, allocator, memory planner, flatbuffer parsing). A Cortex-M build with only int8
kernels (Thumb-2, -Os, CMSIS-NN) differs; treat it as an order of magnitude, like the MCU latency.
"""

from __future__ import annotations

from typing import Any

from edgekd.layout import TFLITE_INT8
from edgekd import arch
from edgekd import tflm_host
from edgekd.runtimes import flatbuffer_ops
from firmware_bench.artifact import Artifact

RUNTIME_CODE_SOURCE = ("x86-64 symbol sizes (nm -S) of the tflite-micro 0.dev20261023182759 host build, "
                       "grouped by kernel; order-of-magnitude estimate of Cortex-M code")
TFLM_CORE_CODE_BYTES = 43_350
TFLM_OP_CODE_BYTES: dict[str, int] = {
    "ADD": 18_076,
    "CONV_2D": 10_966,
    "DEQUANTIZE": 1_228,
    "EXPAND_DIMS": 1_105,
    "FULLY_CONNECTED": 9_342,
    "MAX_POOL_2D": 2_944,
    "MEAN": 13_476,
    "MUL": 13_095,
    "PAD": 9_320,
    "RESHAPE": 1_771,
}


def runtime_code_bytes(ops: list[str]) -> tuple[int | None, list[str]]:
    """(estimated TFLM code bytes for this op set, ops the table lacks); None when any op is unknown."""
    unique = sorted(set(ops))
    unknown = [op for op in unique if op not in TFLM_OP_CODE_BYTES]
    if unknown:
        return None, unknown
    return TFLM_CORE_CODE_BYTES + sum(TFLM_OP_CODE_BYTES[op] for op in unique), []


def flash_bytes_est(model: bytes) -> int | None:
    """What edgekd estimated flash to be before `edgekd firmware` measured it: the flatbuffer + the TFLM code
    table's bytes for its ops (None: an op the table lacks)."""
    code, _ = runtime_code_bytes([op.name for op in flatbuffer_ops(model)])
    return None if code is None else len(model) + code


def static_costs(artifact: Artifact) -> dict[str, Any]:
    """Flash, RAM, params and MACs of an artifact, with the arena measured under TFLM (not only read).

    An FP32-only export (no INT8 flatbuffer) still gets params and MACs; its flash/RAM figures are None.
    """
    spec = artifact.spec
    costs: dict[str, Any] = {
        "params": arch.params(spec),
        "macs": arch.macs(spec),
        # a spectral student's features, computed in the decoder's float C before Invoke (0: the window itself)
        "front_end_macs": arch.graph_input(spec).front_macs,
        "card_arena_bytes": artifact.card.get("arena_bytes"),
    }
    if not artifact.has(TFLITE_INT8):
        return {**costs, "flatbuffer_bytes": None, "flash_bytes_est": None, "arena_bytes": None,
                "ram_bytes": None, "note": f"no {TFLITE_INT8} (exported without --int8): no flash/RAM figures"}
    model = artifact.tflite_bytes()
    ops = [op.name for op in flatbuffer_ops(model)]
    code, unknown = runtime_code_bytes(ops)
    arena = tflm_host.arena_bytes(model)[0]
    io = tflm_host.io_bytes(model, arena)
    return {
        **costs,
        "flatbuffer_bytes": len(model),
        "runtime_code_bytes_est": code,
        "runtime_code_source": RUNTIME_CODE_SOURCE,
        "ops_without_code_estimate": unknown,
        "flash_bytes_est": flash_bytes_est(model),
        "ops": sorted(set(ops)),
        "op_count": len(ops),
        "arena_bytes": arena,
        "io_bytes": io,
        "ram_bytes": arena + io,
    }
