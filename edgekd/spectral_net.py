"""Spectral students: convolutions along the frequency axis of the window's spectra (issue 14).

The window goes through the fixed front end of edgekd.spectral_input (PPG and ACC power at each class BPM,
its harmonic and subharmonic, and the ACC-suppressed evidence: [N, 7, 180]); then a stem convolution and
``blocks`` residual convolutions (kernel 9 along frequency, ``width`` channels, ReLU) and a 1x1 convolution
to one logit per class, added to the evidence channel. Every layer is the same at every BPM, so the model
has no way to learn a data set's heart-rate range, the failure of the time-domain students under
leave-one-dataset-out (edgekd.lodo). No dilations (TFLM's SPACE_TO_BATCH_ND, see edgekd.tcn)
and no BatchNorm (windows from different devices share one set of statistics badly).

Spec: ``{"family": "spectral", "blocks", "width", "in_channels", "n_classes"}``. Feature distillation reads
its stages like any student's, but they are maps over frequency, not time; the logit strategies (soft, DKD)
are the ones that make sense from a ResNet teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.bpm import N_CLASSES
from edgekd.spectral_input import EVIDENCE, N_FEATURES, TorchFeatures

KERNEL = 9
MAX_DEPTH = 8
WIDTHS = (4, 64)
IN_CHANNELS = (1, 4)  # PPG alone, or PPG + the three ACC axes the front end sums


class FreqBlock(nn.Module):
    """relu(x + conv(x)): kernel 9 along frequency, same length."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, KERNEL, padding=KERNEL // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.conv(x))


class SpectralNet(nn.Module):
    """Input windows [N, in_channels, 200] (channel 0 PPG, 1-3 ACC), output [N, 180] logits. Not a
    edgekd.model.StudentNet: no classifier over a pooled embedding, one logit per class from the map itself."""

    def __init__(self, blocks: int, width: int = 16, in_channels: int = 1, n_classes: int = N_CLASSES):
        super().__init__()
        check(blocks, width)
        if in_channels not in IN_CHANNELS:
            raise ValueError(f"spectral: in_channels must be 1 (PPG) or 4 (PPG + 3-axis ACC), got {in_channels}")
        if n_classes != N_CLASSES:
            raise ValueError(f"spectral: one logit per class BPM, so n_classes must be {N_CLASSES}")
        self.blocks, self.width, self.in_channels, self.n_classes = blocks, width, in_channels, n_classes
        self.front = TorchFeatures(in_channels)
        self.stem = nn.Conv1d(N_FEATURES, width, KERNEL, padding=KERNEL // 2)
        self.layers = nn.ModuleList(FreqBlock(width) for _ in range(blocks))
        self.head = nn.Conv1d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        return self.from_spectra(self.front(x))

    def from_spectra(self, f: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(logits, per-block maps [N, width, 180], pooled [N, width]) from front-end features [N, 7, 180]:
        the part that is exported (firmware computes the features in C)."""
        h = F.relu(self.stem(f))
        feats = []
        for layer in self.layers:
            h = layer(h)
            feats.append(h)
        return self.head(h)[:, 0] + f[:, EVIDENCE], feats, h.mean(dim=-1)

    def config(self) -> dict[str, int | str]:
        return {"family": "spectral", "blocks": self.blocks, "width": self.width, "in_channels": self.in_channels,
                "n_classes": self.n_classes}


class FromSpectra(nn.Module):
    """The exported part of a SpectralNet: front-end features [N, 7, 180] -> logits. Firmware computes the
    features in C (hr_spectral_features), the runtimes in NumPy (edgekd.spectral_input.model_input)."""

    def __init__(self, net: SpectralNet):
        super().__init__()
        self.net = net

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net.from_spectra(f)[0]


def check(blocks: int, width: int) -> None:
    if not 1 <= blocks <= MAX_DEPTH or not WIDTHS[0] <= width <= WIDTHS[1]:
        raise ValueError(f"spectral: blocks must be 1..{MAX_DEPTH} and width {WIDTHS[0]}..{WIDTHS[1]}, got "
                         f"{blocks}, {width}")


def macs(blocks: int, width: int, in_channels: int = 1, n_classes: int = N_CLASSES) -> int:
    """Multiply-accumulates per window of the learned part (stem, blocks, head; the front end's Goertzel
    spectra run in the decoder's C, beside the evidence every family's decoder computes)."""
    return n_classes * (N_FEATURES * width * KERNEL + blocks * width * width * KERNEL + width)
