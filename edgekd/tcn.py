"""MCU-lean students: a temporal CNN of depthwise-separable blocks with early strides (issue 17).

Built for a Cortex-M rather than for the paper's grid: a strided stem halves the sequence before any block
(200 -> 100 samples, 12.5 Hz, still 6x the highest heart rate); then blocks of a depthwise convolution
(kernel 5) and a pointwise convolution, every even block with stride 2 (100 -> 50 -> 25 -> 13 ...) and the odd
ones with a residual add, so the receptive field covers the 8 s window within six blocks while the later
blocks run on a few dozen samples; global average pooling and one linear layer give the 180 logits. At width
16 and six blocks that is about 0.1 M MACs and 5 k parameters, in the spirit of the NAS-found TCNs for PPG
heart rate (arXiv 2203.16339; Q-PPG, arXiv 2203.14907).

Strides rather than dilations: TF lowers a dilated convolution to SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND around
it, and TFLM's SPACE_TO_BATCH_ND (tflite-micro 90b983c2) never sets its int8 pad value (SpaceToBatchParams
.output_offset stays uninitialised), so a dilated model's outputs depend on what the arena held before; every
op here is a plain TFLM builtin (CONV_2D, DEPTHWISE_CONV_2D, ADD, MEAN, FULLY_CONNECTED, EXPAND_DIMS/RESHAPE).

``blocks`` is the depth and ``width`` the channels of every block; the spec a run records is
``{"family": "tcn", "blocks", "width", "in_channels", "n_classes"}``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.bpm import N_CLASSES
from edgekd.geometry import WINDOW
from edgekd.model import StudentNet, same_pad  # same_pad: TF "SAME", the smaller half on the left

STEM_KERNEL = 5
KERNEL = 5
STRIDE = 2  # of the stem and of every even block
BN_EPS = 1e-5
MAX_DEPTH = 12
WIDTHS = (8, 64)  # the width knob's range


def strides(depth: int) -> list[int]:
    """Stride of each block: 2 for even blocks (they downsample), 1 for odd ones (they add a residual)."""
    return [STRIDE if i % 2 == 0 else 1 for i in range(depth)]


def lengths(depth: int, length: int = WINDOW) -> list[int]:
    """Sequence length after the stem and after each block."""
    out = [-(-length // STRIDE)]
    for s in strides(depth):
        out.append(-(-out[-1] // s))
    return out


class SameConv(nn.Module):
    """Conv1d with TF "SAME" padding for any stride (depthwise when groups == channels)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, same_pad(x.shape[-1], self.kernel, self.stride)))


class SeparableBlock(nn.Module):
    """depthwise conv (k=5, stride s) -> BN -> ReLU -> pointwise conv -> BN -> (+ input when s = 1) -> ReLU."""

    def __init__(self, width: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = SameConv(width, width, KERNEL, stride, groups=width)
        self.bn1 = nn.BatchNorm1d(width, eps=BN_EPS)
        self.pointwise = nn.Conv1d(width, width, 1)
        self.bn2 = nn.BatchNorm1d(width, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.pointwise(F.relu(self.bn1(self.depthwise(x)))))
        return F.relu(y if self.stride != 1 else x + y)


class TCN(StudentNet):
    """Input [N, in_channels, 200], output [N, 180] logits."""

    def __init__(self, blocks: int, width: int = 16, in_channels: int = 1, n_classes: int = N_CLASSES):
        super().__init__()
        check(blocks, width)
        self.blocks, self.width, self.in_channels, self.n_classes = blocks, width, in_channels, n_classes
        self.stem = SameConv(in_channels, width, STEM_KERNEL, STRIDE)
        self.stem_bn = nn.BatchNorm1d(width, eps=BN_EPS)
        self.layers = nn.ModuleList(SeparableBlock(width, s) for s in strides(blocks))
        self.fc = nn.Linear(width, n_classes)

    def pool(self, h: torch.Tensor) -> torch.Tensor:
        return h.mean(dim=-1)

    def config(self) -> dict[str, int | str]:
        return {"family": "tcn", "blocks": self.blocks, "width": self.width, "in_channels": self.in_channels,
                "n_classes": self.n_classes}


def check(blocks: int, width: int) -> None:
    if not 1 <= blocks <= MAX_DEPTH or not WIDTHS[0] <= width <= WIDTHS[1]:
        raise ValueError(f"tcn: blocks must be 1..{MAX_DEPTH} and width {WIDTHS[0]}..{WIDTHS[1]}, got {blocks}, "
                         f"{width}")


def macs(blocks: int, width: int, in_channels: int = 1, n_classes: int = N_CLASSES, length: int = WINDOW) -> int:
    """Multiply-accumulates per window: stem, depthwise and pointwise convolutions, the classifier."""
    ls = lengths(blocks, length)
    return ls[0] * width * in_channels * STEM_KERNEL + sum(n * width * (KERNEL + width) for n in ls[1:]) \
        + width * n_classes
