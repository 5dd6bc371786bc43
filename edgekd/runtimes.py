"""The runtimes an edgekd model runs on, one name each, and the adapter that opens each: `edgekd evaluate
--runtime`, the card's accuracy keys and `edgekd bench`'s records all use these names, so a number can be traced
from one to the other, and every caller opens a runtime the same way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.layout import ONNX_FP32, ONNX_INT8, TFLITE_INT8, WEIGHTS


@dataclass(frozen=True)
class Runtime:
    name: str
    file: str  # the artifact file it runs


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", WEIGHTS),  # PyTorch on the CPU
    Runtime("cuda", WEIGHTS),  # PyTorch on a CUDA GPU (bench only)
    Runtime("onnx", ONNX_FP32),  # ONNX Runtime, FP32 graph
    Runtime("onnx-int8", ONNX_INT8),  # ONNX Runtime, static INT8 (QDQ) graph
    Runtime("litert", TFLITE_INT8),  # LiteRT (ai-edge-litert) on the INT8 flatbuffer
    Runtime("tflm", TFLITE_INT8),  # TFLite Micro host interpreter: the device's kernels
)}
# What `evaluate` and the card score (cuda gives the same logits as torch, so it is benchmarked, not scored).
SCORED = tuple(name for name in RUNTIMES if name != "cuda")
# The card's FP32 reference; edgekd.layout.CARD_KEYS spells it and "tflm" out (this module imports layout).
FP32_REFERENCE = "torch"


# The adapters that open each exported runtime, one place each (export, evaluation, the card and bench all call
# these). The runtimes are optional extras, so they are imported when a model is opened, not with this module.
# TFLM's host interpreter is edgekd.tflm_host (it also owns the arena).

def onnx_session(model: str | Path | bytes, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with a fixed thread count (1 by default: deterministic and polite on shared
    machines; ORT's own default uses every core and makes latencies incomparable)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for unreadable or invalid models
        name = "ONNX model bytes" if isinstance(model, bytes) else str(model)
        raise EdgekdError(f"{name}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:300]})") from None


def litert_interpreter(model: bytes, threads: int = 1, delegates: bool = True) -> Any:
    """A LiteRT interpreter with its tensors allocated; ``delegates=True`` is LiteRT's default (XNNPACK takes
    over the ops it supports), False runs the builtin kernels and keeps the graph's own op list."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgekdError(f"LiteRT cannot load the flatbuffer ({' '.join(str(exc).split())[:300]})") from None
    return it


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    tensor_types: tuple[str, ...]  # dtypes of the op's input and output tensors


def flatbuffer_ops(model: bytes) -> list[OpInfo]:
    """Every op of a .tflite graph in execution order, with its tensors' dtypes (without delegates, which would
    replace ops by DELEGATE nodes). ``_get_ops_details`` is LiteRT's underscored op listing, stable across
    releases; it saves parsing the flatbuffer schema here."""
    interp = litert_interpreter(model, delegates=False)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():
        idx = [int(i) for i in list(op["inputs"]) + list(op["outputs"]) if int(i) >= 0]
        ops.append(OpInfo(int(op["index"]), str(op["op_name"]),
                          tuple(np.dtype(tensors[i]["dtype"]).name for i in idx if i in tensors)))
    return ops


def int8_io(model: bytes) -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)) of a full-integer flatbuffer."""
    interp = litert_interpreter(model, delegates=False)
    (i_s, i_z), (o_s, o_z) = (interp.get_input_details()[0]["quantization"],
                              interp.get_output_details()[0]["quantization"])
    return (float(i_s), int(i_z)), (float(o_s), int(o_z))
