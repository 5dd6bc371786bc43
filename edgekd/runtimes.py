"""The runtimes an edgekd model runs on, one name each: `edgekd evaluate --runtime`, the card's accuracy keys
and `edgekd bench`'s records all use these names, so a number can be traced from one to the other."""

from __future__ import annotations

from dataclasses import dataclass

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
