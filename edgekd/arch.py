"""Which network a model spec names, and what it costs: the one dispatch between the student families.

A spec is what a run's config.json records under "model" and a checkpoint's metadata holds: the WildPPG
ResNet1D as ``{"blocks", "in_channels", "n_classes"}`` (no "family": every run before the second family), the
MCU-lean TCN (edgekd.tcn) as ``{"family": "tcn", "blocks", "width", "in_channels", "n_classes"}``.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from edgekd import model as resnet
from edgekd import tcn
from edgekd.bpm import N_CLASSES

FAMILIES = ("resnet", "tcn")


def family(spec: dict[str, Any]) -> str:
    return str(spec.get("family", "resnet"))


def build(spec: dict[str, Any]) -> nn.Module:
    n_classes = int(spec.get("n_classes", N_CLASSES))
    if family(spec) == "tcn":
        return tcn.TCN(int(spec["blocks"]), int(spec["width"]), int(spec["in_channels"]), n_classes)
    return resnet.ResNet1D(int(spec["blocks"]), int(spec["in_channels"]), n_classes)


def macs(spec: dict[str, Any]) -> int:
    n_classes = int(spec.get("n_classes", N_CLASSES))
    if family(spec) == "tcn":
        return tcn.macs(int(spec["blocks"]), int(spec["width"]), int(spec["in_channels"]), n_classes)
    return resnet.macs(int(spec["blocks"]), int(spec["in_channels"]), n_classes)


def params(spec: dict[str, Any]) -> int:
    """Parameters used in the forward pass (what is exported and flashed)."""
    return sum(p.numel() for p in build(spec).parameters())


def stage_widths(spec: dict[str, Any]) -> list[int]:
    """Channels of each block's output (the stages feature distillation can read)."""
    if family(spec) == "tcn":
        return [int(spec["width"])] * int(spec["blocks"])
    return [s.out_ch for s in resnet.block_specs(int(spec["blocks"]))]


def describe(spec: dict[str, Any]) -> str:
    if family(spec) == "tcn":
        return f"TCN {spec['blocks']} blocks x {spec['width']} channels"
    return f"ResNet1D {spec['blocks']} blocks"


def student_label(spec: dict[str, Any]) -> int | str:
    """How sweeps, results tables and rank name a student: its block count for a ResNet (as every table before
    the second family), ``"tcn:DEPTHxWIDTH"`` for a TCN."""
    return f"tcn:{spec['blocks']}x{spec['width']}" if family(spec) == "tcn" else int(spec["blocks"])


def parse_student(value: object) -> dict[str, Any]:
    """The architecture fields ({"blocks"}, or {"family": "tcn", "blocks", "width"}) of a student label;
    ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"blocks": value}
    found = re.fullmatch(r"tcn:(\d+)x(\d+)", value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"a student is a ResNet block count (2) or tcn:DEPTHxWIDTH (tcn:6x16), got {value!r}")
    return {"family": "tcn", "blocks": int(found.group(1)), "width": int(found.group(2))}
