"""Light on-device augmentation of a training batch (tensors stay on the training device).

- amplitude scaling: each window times U(0.8, 1.2);
- time shift: circular shift by up to +-1 s;
- HR time-stretch (half the windows): resample by a factor s in [0.9, 1.1] (reflection at the edges),
  which multiplies the heart rate by s, so the label is scaled too;
- synthetic motion artefact (30 % of windows): a 1-3 Hz cadence oscillation added to the PPG and, when
  ACC channels are present, to them as well, so the artefact stays correlated with the accelerometer.

With a teacher the cached teacher outputs belong to the unaugmented windows, so ``label_preserving``
restricts augmentation to amplitude scaling (the teacher's answer and the label stay valid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgekd.geometry import FS

SCALE = (0.8, 1.2)
MAX_SHIFT = int(FS)  # samples
STRETCH = (0.9, 1.1)
P_STRETCH = 0.5
P_MOTION = 0.3
CADENCE_HZ = (1.0, 3.0)
MOTION_AMP = 0.5


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=device) * (hi - lo) + lo)


def augment(x: torch.Tensor, hr: torch.Tensor, g: torch.Generator,
            label_preserving: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented copies of ``x`` [B, C, L] and ``hr`` [B] (BPM). ``g`` lives on x's device."""
    b, c, length = x.shape
    dev = x.device
    x = x * _uniform(b, *SCALE, g, dev)[:, None, None]
    if label_preserving:
        return x, hr
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (b,), generator=g, device=dev)
    idx = (torch.arange(length, device=dev)[None, :] - shifts[:, None]) % length
    x = torch.gather(x, 2, idx[:, None, :].expand(b, c, length))
    # Time-stretch: output sample t reads input at centre + (t - centre) * s, so rhythms speed up by s.
    s = torch.where(torch.rand(b, generator=g, device=dev) < P_STRETCH,
                    _uniform(b, *STRETCH, g, dev), torch.ones(b, device=dev))
    pos = torch.linspace(-1.0, 1.0, length, device=dev)[None, :] * s[:, None]
    grid = torch.stack([pos, torch.zeros_like(pos)], dim=-1)[:, None]  # [B, 1, L, 2]
    x = F.grid_sample(x[:, :, None, :], grid, mode="bilinear", padding_mode="reflection",
                      align_corners=True)[:, :, 0]
    hr = hr * s
    # Motion artefact with the same oscillation in every channel (PPG leak + ACC).
    on = (torch.rand(b, generator=g, device=dev) < P_MOTION).float()
    freq = _uniform(b, *CADENCE_HZ, g, dev)
    phase = _uniform(b, 0.0, 2 * math.pi, g, dev)
    amp = _uniform(b, 0.0, MOTION_AMP, g, dev) * on
    t = torch.arange(length, device=dev)[None, :] / FS
    wave = amp[:, None] * torch.sin(2 * math.pi * freq[:, None] * t + phase[:, None])
    return x + wave[:, None, :], hr
