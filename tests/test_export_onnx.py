"""ONNX FP32 parity with PyTorch across the family (1, 2, 4, 12 blocks) and both batch modes."""

from __future__ import annotations

import pytest
import torch

from edgekd.model import ResNet1D


def randomised(blocks: int) -> ResNet1D:
    """Random weights and non-trivial BatchNorm statistics, so BN folding errors would show."""
    torch.manual_seed(blocks)
    model = ResNet1D(blocks)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.normal_(0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("blocks", [1, 2, 4, 12])
def test_onnx_matches_pytorch(blocks, tmp_path, small_synth):
    from export.onnx_export import export_onnx, onnx_max_abs_diff

    model = randomised(blocks)
    export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True)
    diff = onnx_max_abs_diff(model, tmp_path / "m.onnx", small_synth.x[:48, :1])
    print(f"{blocks} blocks: max abs logit diff {diff:.2e}")
    assert diff < 1e-4


def test_fixed_batch_onnx_has_batch_one(tmp_path, small_synth):
    import onnx

    from export.onnx_export import export_onnx, onnx_max_abs_diff

    model = randomised(2)
    export_onnx(model, tmp_path / "m.onnx", dynamic_batch=False)
    dims = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 1, 200]
    assert onnx_max_abs_diff(model, tmp_path / "m.onnx", small_synth.x[:8, :1], batch=1) < 1e-4


@pytest.mark.parametrize("blocks", [2, 5])
def test_keras_mirror_matches_pytorch_in_float(blocks, small_synth):
    from export.keras_mirror import build_keras, mirror_max_abs_diff

    model = randomised(blocks)  # 5 blocks: a stride-2 pool shortcut and a channel-widening shortcut
    assert mirror_max_abs_diff(model, build_keras(model), small_synth.x[:16, :1]) < 1e-4
