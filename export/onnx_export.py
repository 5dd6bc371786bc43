"""ONNX FP32 export with the current (dynamo) torch exporter, checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from edgekd.atomic import write_bytes
from edgekd.geometry import WINDOW

INPUT, OUTPUT = "window", "logits"


def export_onnx(model: torch.nn.Module, path: Path, dynamic_batch: bool = True) -> None:
    """Write ``model`` as one self-contained .onnx file (weights inline), input [N, C, 200] float32."""
    model = model.eval()
    example = (torch.zeros(2 if dynamic_batch else 1, model.in_channels, WINDOW),)
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    # The exporter prints progress to stdout (a CLI printing JSON must not see it) and logs that optional
    # torchvision ops are unavailable (this model uses none).
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(model, example, dynamo=True, input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes=shapes, optimize=True, verbose=False)
    proto = program.model_proto
    onnx.checker.check_model(proto)
    write_bytes(path, proto.SerializeToString())


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # deterministic and polite on shared machines
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(path: Path, x: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Logits for x [N, C, 200]; ``batch`` = the model's fixed batch size, if it has one."""
    sess = session(path)
    if batch is None:
        return sess.run([OUTPUT], {INPUT: x.astype(np.float32)})[0]
    return np.concatenate([sess.run([OUTPUT], {INPUT: x[i:i + batch].astype(np.float32)})[0]
                           for i in range(0, len(x), batch)])


def onnx_max_abs_diff(model: torch.nn.Module, path: Path, x: np.ndarray, batch: int | None = None) -> float:
    """Max abs logit difference between PyTorch and ONNX Runtime on the same windows."""
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    return float(np.abs(ref - run_onnx(path, x, batch)).max())
