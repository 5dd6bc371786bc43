"""Which network a model spec names, and what it costs: the one dispatch between the student families.

A spec is what a run's config.json records under "model" and a checkpoint's metadata holds: the WildPPG
ResNet1D as ``{"blocks", "in_channels", "n_classes"}`` (no "family": every run before the second family), the
MCU-lean TCN (edgekd.tcn) and the spectral CNN (edgekd.spectral_net) as ``{"family", "blocks", "width",
"in_channels", "n_classes"}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from edgekd import model as resnet
from edgekd import spectral_net, tcn
from edgekd.bpm import N_CLASSES


@dataclass(frozen=True)
class Family:
    """A student family with a depth (``blocks``) and a ``width`` knob (the ResNet's widths follow from its
    blocks, so it has none)."""

    net: Callable[..., nn.Module]
    macs: Callable[..., int]
    max_depth: int
    widths: tuple[int, int] | None
    label: str  # student label prefix ("tcn" -> "tcn:6x16") and run-name prefix
    name: str  # how descriptions call it
    in_channels: tuple[int, ...] = tuple(range(1, resnet.MAX_IN_CHANNELS + 1))


FAMILY = {
    "resnet": Family(resnet.ResNet1D, resnet.macs, resnet.MAX_BLOCKS, None, "b", "ResNet1D"),
    "tcn": Family(tcn.TCN, tcn.macs, tcn.MAX_DEPTH, tcn.WIDTHS, "tcn", "TCN"),
    "spectral": Family(spectral_net.SpectralNet, spectral_net.macs, spectral_net.MAX_DEPTH, spectral_net.WIDTHS,
                       "spec", "spectral CNN", spectral_net.IN_CHANNELS),
}
FAMILIES = tuple(FAMILY)


def family(spec: dict[str, Any]) -> str:
    return str(spec.get("family", "resnet"))


def has_width(name: str) -> bool:
    return FAMILY[name].widths is not None


def in_channels_problem(name: str, in_channels: int) -> str | None:
    """Why a ``name`` student cannot take ``in_channels`` inputs (None when it can)."""
    fam = FAMILY[name]
    if in_channels in fam.in_channels:
        return None
    allowed = ", ".join(map(str, fam.in_channels))
    return f"in_channels must be one of {allowed} for a {fam.name} student, got {in_channels}"


def _args(spec: dict[str, Any]) -> tuple[int, ...]:
    knobs = (int(spec["blocks"]),) + ((int(spec["width"]),) if has_width(family(spec)) else ())
    return knobs + (int(spec["in_channels"]), int(spec.get("n_classes", N_CLASSES)))


def build(spec: dict[str, Any]) -> nn.Module:
    return FAMILY[family(spec)].net(*_args(spec))


def macs(spec: dict[str, Any]) -> int:
    return FAMILY[family(spec)].macs(*_args(spec))


def params(spec: dict[str, Any]) -> int:
    """Parameters used in the forward pass (what is exported and flashed)."""
    return sum(p.numel() for p in build(spec).parameters())


def stage_widths(spec: dict[str, Any]) -> list[int]:
    """Channels of each block's output (the stages feature distillation can read)."""
    if has_width(family(spec)):
        return [int(spec["width"])] * int(spec["blocks"])
    return [s.out_ch for s in resnet.block_specs(int(spec["blocks"]))]


def describe(spec: dict[str, Any]) -> str:
    f = FAMILY[family(spec)]
    if f.widths:
        return f"{f.name} {spec['blocks']} blocks x {spec['width']} channels"
    return f"{f.name} {spec['blocks']} blocks"


def size_tag(spec: dict[str, Any]) -> str:
    """The size part of a run name: b2, tcn6x16, spec3x16."""
    f = FAMILY[family(spec)]
    return f"{f.label}{spec['blocks']}x{spec['width']}" if f.widths else f"b{spec['blocks']}"


def student_label(spec: dict[str, Any]) -> int | str:
    """How sweeps, results tables and rank name a student: its block count for a ResNet (as every table before
    the second family), ``"FAMILY:DEPTHxWIDTH"`` otherwise (``tcn:6x16``, ``spec:3x16``)."""
    f = FAMILY[family(spec)]
    return f"{f.label}:{spec['blocks']}x{spec['width']}" if f.widths else int(spec["blocks"])


def parse_student(value: object) -> dict[str, Any]:
    """The architecture fields ({"blocks"}, or {"family", "blocks", "width"}) of a student label;
    ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return {"blocks": value}
    prefixes = {f.label: name for name, f in FAMILY.items() if f.widths}
    found = re.fullmatch(rf"({'|'.join(prefixes)}):(\d+)x(\d+)", value) if isinstance(value, str) else None
    if found is None:
        forms = " or ".join(f"{p}:DEPTHxWIDTH" for p in prefixes)
        raise ValueError(f"a student is a ResNet block count (2), {forms} (tcn:6x16), got {value!r}")
    return {"family": prefixes[found.group(1)], "blocks": int(found.group(2)), "width": int(found.group(3))}
