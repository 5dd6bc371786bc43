"""Full-integer INT8 TFLite for TFLM: Keras mirror -> TFLiteConverter with real training windows.

int8 input and output, int8 weights (per channel) and activations, int32 biases. The representative
dataset is the calibration windows' graph input (edgekd.arch.to_graph_input: the window, or a spectral
student's features), fed one window at a time in the model's channels-last layout.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
import torch

from edgekd.errors import EdgekdError
from export.keras_mirror import build_keras, mirror_max_abs_diff

MIRROR_TOLERANCE = 1e-4  # float Keras vs PyTorch, max abs logit difference


def _converter(kmodel, calib_x: np.ndarray) -> tf.lite.TFLiteConverter:
    conv = tf.lite.TFLiteConverter.from_keras_model(kmodel)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(calib_x)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv


def _representative(x: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(channels_last)):
            yield [channels_last[i:i + 1]]

    return gen


def convert_int8(model: torch.nn.Module, calib_x: np.ndarray, check_x: np.ndarray) -> tuple[bytes, float]:
    """(flatbuffer bytes, Keras-vs-PyTorch float max abs diff). Refuses a mirror that does not match."""
    kmodel = build_keras(model)
    diff = mirror_max_abs_diff(model, kmodel, check_x)
    if not diff < MIRROR_TOLERANCE:
        raise EdgekdError(f"Keras mirror differs from PyTorch by {diff:.2e} (> {MIRROR_TOLERANCE:g}): "
                          f"the architecture and keras_mirror.py disagree")
    with _quiet():
        flatbuffer = _converter(kmodel, calib_x).convert()
    return strip_names(flatbuffer), diff


def strip_names(flatbuffer: bytes) -> bytes:
    """The flatbuffer without tensor names, subgraph names and signature defs (TF's own flatbuffer_utils):
    TFLM never reads them, and in a graph of fused layers they are long ("model/b0_conv/...;model/b0_bn/...")
    and a large share of the bytes flashed."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def layer_errors(model: torch.nn.Module, calib_x: np.ndarray, debug_x: np.ndarray) -> list[dict[str, float | str]]:
    """Per-layer INT8 error from TF's QuantizationDebugger: each quantised op's output compared with its
    float counterpart on ``debug_x``. ``rmse_over_scale`` near 0.29 (= 1/sqrt(12)) is pure rounding noise;
    much larger values show where INT8 loses accuracy."""
    kmodel = build_keras(model)
    conv = _converter(kmodel, calib_x)
    with _quiet():
        debugger = tf.lite.experimental.QuantizationDebugger(converter=conv,
                                                             debug_dataset=_representative(debug_x))
        debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(row["scale"])
        mse = float(row["mean_squared_error"])
        rows.append({"op": row["op_name"], "layer": _layer_name(row["tensor_name"]), "scale": scale,
                     "rmse": float(np.sqrt(mse)), "rmse_over_scale": float(np.sqrt(mse) / scale) if scale else 0.0,
                     "max_abs_error": float(row["max_abs_error"])})
    return rows


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter prints pages of Python-level chatter and known-harmless warnings (int8 input statistics
    come from the representative set; the debugger uses tf.lite.Interpreter); keep stdout clean for --json."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _layer_name(tensor: str) -> str:
    """'resnet1d_2_1/b0_conv1_1/convolution/Squeeze;...' -> 'b0_conv1' (the Keras layer, named after PyTorch's);
    the graph's output tensor has no layer path and is the classifier ('fc')."""
    parts = tensor.split(";")[0].split("/")
    return re.sub(r"_\d+$", "", parts[1]) if len(parts) > 1 else "fc"
