"""ONNX FP32 export with the current (dynamo) torch exporter, checked against PyTorch with ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from edgekd import arch
from edgekd.atomic import write_bytes
from edgekd.runtimes import OnnxSession

OUTPUT = "logits"


def export_onnx(model: torch.nn.Module, path: Path, dynamic_batch: bool = True) -> None:
    """Write ``model``'s exported graph (edgekd.arch.graph_module) as one self-contained .onnx file (weights
    inline), input [N, C, L] float32 as edgekd.arch.graph_input says (the window [N, C, 200], or a spectral
    student's features [N, 7, 180])."""
    gin = arch.graph_input(model.config())
    module = arch.graph_module(model)
    example = (torch.zeros(2 if dynamic_batch else 1, gin.channels, gin.length),)
    shapes = ({0: torch.export.Dim("batch", min=1)},) if dynamic_batch else None
    # The exporter prints progress to stdout (a CLI printing JSON must not see it) and logs that optional
    # torchvision ops are unavailable (this model uses none).
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(module, example, dynamo=True, input_names=[gin.name], output_names=[OUTPUT],
                                    dynamic_shapes=shapes, optimize=True, verbose=False)
    proto = program.model_proto
    onnx.checker.check_model(proto)
    write_bytes(path, proto.SerializeToString())


def onnx_max_abs_diff(model: torch.nn.Module, path: Path, x: np.ndarray, batch: int | None = None) -> float:
    """Max abs logit difference between the exported PyTorch module and ONNX Runtime on the same graph input."""
    with torch.no_grad():
        ref = arch.graph_module(model)(torch.from_numpy(x)).numpy()
    return float(np.abs(ref - OnnxSession(path, batch=batch).logits(x)).max())
