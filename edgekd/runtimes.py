"""The runtimes an edgekd model runs on, one name each: `edgekd evaluate --runtime`, the card's accuracy keys
and `edgekd bench`'s records all use these names, so a number can be traced from one to the other."""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.layout import ONNX_FP32, ONNX_INT8, TFLITE_INT8, WEIGHTS


@dataclass(frozen=True)
class Runtime:
    name: str
    precision: str  # "fp32" or "int8"
    file: str  # the artifact file it runs
    what: str


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", "fp32", WEIGHTS, "PyTorch on the CPU"),
    Runtime("cuda", "fp32", WEIGHTS, "PyTorch on a CUDA GPU (bench only)"),
    Runtime("onnx", "fp32", ONNX_FP32, "ONNX Runtime, FP32 graph"),
    Runtime("onnx-int8", "int8", ONNX_INT8, "ONNX Runtime, static INT8 (QDQ) graph"),
    Runtime("litert", "int8", TFLITE_INT8, "LiteRT (ai-edge-litert) on the INT8 flatbuffer"),
    Runtime("tflm", "int8", TFLITE_INT8, "TFLite Micro host interpreter on the INT8 flatbuffer (the device's kernels)"),
)}
# What `evaluate` and the card score (cuda gives the same logits as torch, so it is benchmarked, not scored).
SCORED = ("torch", "onnx", "onnx-int8", "litert", "tflm")
FP32_REFERENCE, DEVICE = "torch", "tflm"
