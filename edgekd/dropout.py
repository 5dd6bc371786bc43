"""Dropout whose masks can come from outside the forward pass: how grouped training (edgekd.grouped) gives each
member exactly the masks its own run would draw.

Alone, ``Dropout`` multiplies by a keep-mask scaled by 1 / (1 - p) (inverted dropout, as nn.Dropout) drawn from
the default generator, so a seed gives the same weights every time. The mask is drawn cheaply: for p = 0.5 (the
paper's ResNet) one random bit per element, 32 to a drawn word, about 7x faster on CPU than ``bernoulli_``
(one random number per element; it was a third of a 2-block ResNet's training step); otherwise ``rand >= p``.
The masks differ from nn.Dropout's, the distribution does not. Inside
``supplied(masks)`` it multiplies by the next mask of ``masks`` instead (in call order; a block that calls one
module twice takes two), and inside ``recording(shapes)`` it notes the shape and p of each mask it would draw and passes x through:
what a group needs to draw every member's masks from that member's own generator, outside ``torch.func.vmap``
(which cannot give vmapped members separate random streams).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

import torch
from torch import nn

_MASKS: contextvars.ContextVar[Iterator[torch.Tensor] | None] = contextvars.ContextVar("edgekd_masks", default=None)
_SHAPES: contextvars.ContextVar[list[tuple[torch.Size, float]] | None] = contextvars.ContextVar("edgekd_shapes",
                                                                                                 default=None)


class Dropout(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shapes = _SHAPES.get()
        if shapes is not None:
            shapes.append((x.shape, self.p))
            return x
        masks = _MASKS.get()
        if masks is not None:
            return x * next(masks)
        return x * draw(x.shape, self.p, x.device, x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def draw(shape: torch.Size, p: float, device: torch.device, dtype: torch.dtype,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """One scaled keep-mask (0 or 1 / (1 - p)) of ``shape``."""
    n = math.prod(shape)
    if p == 0.5:  # each bit of a uniform 32-bit word is a fair coin
        words = torch.randint(0, 2 ** 32, ((n + 31) // 32, 1), dtype=torch.int64, device=device, generator=generator)
        keep = (words >> torch.arange(32, dtype=torch.int64, device=device)) & 1
        return keep.reshape(-1)[:n].reshape(shape).to(dtype).mul_(2.0)
    keep = torch.rand(shape, device=device, generator=generator) >= p
    return keep.to(dtype).div_(1 - p)


@contextlib.contextmanager
def supplied(masks: list[torch.Tensor]) -> Iterator[None]:
    token = _MASKS.set(iter(masks))
    try:
        yield
    finally:
        _MASKS.reset(token)


@contextlib.contextmanager
def recording(shapes: list[tuple[torch.Size, float]]) -> Iterator[None]:
    token = _SHAPES.set(shapes)
    try:
        yield
    finally:
        _SHAPES.reset(token)
