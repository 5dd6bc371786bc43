"""The WildPPG 1D-ResNet family (Shenda Hong's 2019 ResNet1D), for any number of residual blocks.

Architecture facts are in REFERENCE.md section 1. ``block_specs`` is the single description of the
family's shapes; the PyTorch module here and the Keras mirror in ``export`` are both built from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.bpm import N_CLASSES
from edgekd.dropout import Dropout
from edgekd.geometry import WINDOW

STEM_WIDTH = 32
KERNEL = 5
DROPOUT = 0.5
BN_EPS = 1e-5
PAPER_BLOCKS = (1, 2, 3, 4, 5, 6, 8, 10, 12)
MAX_BLOCKS = 12
MAX_IN_CHANNELS = 4  # PPG + 3-axis ACC


@dataclass(frozen=True)
class BlockSpec:
    index: int
    in_ch: int
    out_ch: int
    stride: int

    @property
    def first(self) -> bool:
        return self.index == 0

    @property
    def downsample(self) -> bool:
        return self.stride == 2


def block_specs(blocks: int) -> list[BlockSpec]:
    """Widths and strides of each residual block (0-based index)."""
    if not 1 <= blocks <= MAX_BLOCKS:
        raise ValueError(f"blocks must be 1..{MAX_BLOCKS}, got {blocks}")
    specs = []
    for i in range(blocks):
        if i == 0:
            cin = cout = STEM_WIDTH
        else:
            cin = STEM_WIDTH * 2 ** ((i - 1) // 4)
            cout = 2 * cin if i % 4 == 0 else cin
        specs.append(BlockSpec(i, cin, cout, 2 if i % 2 == 1 else 1))
    return specs


def final_width(blocks: int) -> int:
    return block_specs(blocks)[-1].out_ch


def same_pad(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """(left, right) padding of Hong's "same" convolution; the smaller half goes left, as TF's SAME."""
    out = -(-length // stride)
    pad = max(0, (out - 1) * stride + kernel - length)
    return pad // 2, pad - pad // 2


def lengths(blocks: int, length: int = WINDOW) -> list[int]:
    """Time length after the stem and after each block."""
    out = [length]
    for spec in block_specs(blocks):
        length = -(-length // spec.stride)
        out.append(length)
    return out


class SameConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = same_pad(x.shape[-1], self.kernel, self.stride)
        return self.conv(F.pad(x, (left, right)))


class ShortcutPool(nn.Module):
    """Max-pool k=2 s=2 after padding one zero on the right (zeros, not -inf: that is the reference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool1d(F.pad(x, (0, 1)), 2)


class BasicBlock(nn.Module):
    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        if not spec.first:  # block 0 skips the pre-activation (WildPPG builds an unused BN there)
            self.bn1 = nn.BatchNorm1d(spec.in_ch, eps=BN_EPS)
        self.conv1 = SameConv1d(spec.in_ch, spec.out_ch, KERNEL, spec.stride)
        self.bn2 = nn.BatchNorm1d(spec.out_ch, eps=BN_EPS)
        self.conv2 = SameConv1d(spec.out_ch, spec.out_ch, KERNEL, 1)
        self.dropout = Dropout(DROPOUT)  # nn.Dropout written out, so a grouped run can supply its masks
        self.pool = ShortcutPool() if spec.downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if not self.spec.first:
            out = self.dropout(F.relu(self.bn1(out)))
        out = self.conv1(out)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        identity = self.pool(x) if self.pool is not None else x
        extra = self.spec.out_ch - self.spec.in_ch
        if extra:  # weightless shortcut: zero channels split evenly on both sides
            identity = F.pad(identity, (0, 0, extra // 2, extra - extra // 2))
        return out + identity


class StudentNet(nn.Module):
    """What every student family shares (ResNet1D here, edgekd.tcn.TCN): a stem, blocks, a pooled embedding
    and the classifier; ``forward_features`` is what distillation reads. Subclasses set stem, stem_bn,
    layers, fc and say how the last block's map is pooled."""

    stem: nn.Module
    stem_bn: nn.Module
    layers: nn.ModuleList
    fc: nn.Linear

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(logits, per-block feature maps [N, C_i, L_i], pooled embedding [N, C]) for distillation."""
        h = F.relu(self.stem_bn(self.stem(x)))
        feats = []
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        pooled = self.pool(h)
        return self.fc(pooled), feats, pooled


class ResNet1D(StudentNet):
    """WildPPG ResNet1D. Input [N, in_channels, 200] (channel 0 green PPG; 1..3 ACC), output [N, 180] logits."""

    def __init__(self, blocks: int, in_channels: int = 1, n_classes: int = N_CLASSES):
        super().__init__()
        self.blocks, self.in_channels, self.n_classes = blocks, in_channels, n_classes
        self.specs = block_specs(blocks)
        self.stem = SameConv1d(in_channels, STEM_WIDTH, KERNEL, 1)
        self.stem_bn = nn.BatchNorm1d(STEM_WIDTH, eps=BN_EPS)
        self.layers = nn.ModuleList(BasicBlock(s) for s in self.specs)
        self.final_bn = nn.BatchNorm1d(self.specs[-1].out_ch, eps=BN_EPS)
        self.fc = nn.Linear(self.specs[-1].out_ch, n_classes)

    @property
    def width(self) -> int:
        return self.specs[-1].out_ch

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.final_bn(h)).mean(dim=-1)

    def config(self) -> dict[str, int]:
        return {"blocks": self.blocks, "in_channels": self.in_channels, "n_classes": self.n_classes}


def deployed_param_count(blocks: int, in_channels: int = 1, n_classes: int = N_CLASSES) -> int:
    """Parameters used in the forward pass (what is exported and flashed)."""
    return sum(p.numel() for p in ResNet1D(blocks, in_channels, n_classes).parameters())


def paper_param_count(blocks: int, in_channels: int = 1, n_classes: int = N_CLASSES) -> int:
    """The count WildPPG reports (Table 1): it also builds an unused Linear(C, 200) and block 0's unused BN."""
    c = final_width(blocks)
    return deployed_param_count(blocks, in_channels, n_classes) + 200 * c + 200 + 2 * STEM_WIDTH


def macs(blocks: int, in_channels: int = 1, n_classes: int = N_CLASSES, length: int = WINDOW) -> int:
    """Multiply-accumulates per window: convolutions and the classifier (BN/ReLU/pool/add are not MACs)."""
    total = length * STEM_WIDTH * in_channels * KERNEL
    for spec in block_specs(blocks):
        length = -(-length // spec.stride)
        total += length * spec.out_ch * spec.in_ch * KERNEL + length * spec.out_ch * spec.out_ch * KERNEL
    return total + final_width(blocks) * n_classes


def size_table(blocks_list: tuple[int, ...] = PAPER_BLOCKS, in_channels: int = 1) -> list[dict[str, int]]:
    """The size table `edgekd models` prints: params (paper and deployed), MACs, FP32/INT8 weight bytes."""
    rows = []
    for b in blocks_list:
        deployed = deployed_param_count(b, in_channels)
        rows.append({
            "blocks": b,
            "paper_params": paper_param_count(b, in_channels),
            "deployed_params": deployed,
            "macs": macs(b, in_channels),
            "fp32_weight_bytes": 4 * deployed,
            # INT8: one byte per weight; biases stay int32 in TFLite full-integer models.
            "int8_weight_bytes": _int8_weight_bytes(b, in_channels),
            "final_width": final_width(b),
        })
    return rows


def _int8_weight_bytes(blocks: int, in_channels: int) -> int:
    model = ResNet1D(blocks, in_channels)
    total = 0
    for name, p in model.named_parameters():
        is_bias = name.endswith("bias") and (".conv." in name or name.startswith("fc") or name.startswith("stem."))
        total += 4 * p.numel() if is_bias else p.numel()
    return total
