"""ONNX INT8 for ONNX Runtime users: static QDQ quantisation, per-channel weights, calibrated on training windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)

from edgekd.atomic import atomic_path


class _Windows(CalibrationDataReader):
    """Feeds the calibration windows' graph input ``batch`` at a time (1 for a fixed-batch model)."""

    def __init__(self, name: str, x: np.ndarray, batch: int):
        self._batches = iter([{name: x[i:i + batch].astype(np.float32)} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_onnx(fp32_path: Path, out_path: Path, calib_x: np.ndarray, batch: int | None = None) -> None:
    """Write the QDQ INT8 model: int8 weights per output channel, int8 activations (min-max calibrated).
    ``calib_x``: the graph's input (edgekd.arch.to_graph_input); ``batch``: the FP32 model's fixed batch size,
    None when its batch axis is dynamic."""
    name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    with atomic_path(out_path, suffix=".onnx") as tmp:
        quantize_static(str(fp32_path), str(tmp), _Windows(name, calib_x, batch or 64), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
