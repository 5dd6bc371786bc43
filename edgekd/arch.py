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

import numpy as np
from torch import nn

from edgekd import model as resnet
from edgekd import spectral_input, spectral_net, tcn
from edgekd.bpm import N_CLASSES
from edgekd.fusion import MOTION_GATED, FusionConfig
from edgekd.geometry import WINDOW


@dataclass(frozen=True)
class Front:
    """A fixed front end the exported graph does not contain: firmware runs it in C before the model, the
    runtimes run its NumPy reference (``features``) on the windows."""

    features: Callable[[np.ndarray, int], np.ndarray]  # windows [N, C, 200], in_channels -> [N, channels, length]
    graph: Callable[[nn.Module], nn.Module]  # the trained model -> the module that is exported
    channels: int
    length: int
    input_name: str  # the ONNX graph's input
    c_function: str  # what firmware calls (export/tracker)
    macs: Callable[[int], int]  # its multiply-adds per window, by in_channels


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
    front: Front | None = None  # None: the exported graph reads the window itself
    decoder: FusionConfig = FusionConfig()  # the shipped decoder for its students (export's default)


FAMILY = {
    "resnet": Family(resnet.ResNet1D, resnet.macs, resnet.MAX_BLOCKS, None, "b", "ResNet1D"),
    "tcn": Family(tcn.TCN, tcn.macs, tcn.MAX_DEPTH, tcn.WIDTHS, "tcn", "TCN"),
    "spectral": Family(spectral_net.SpectralNet, spectral_net.macs, spectral_net.MAX_DEPTH, spectral_net.WIDTHS,
                       "spec", "spectral CNN", spectral_net.IN_CHANNELS,
                       Front(spectral_input.model_input, spectral_net.FromSpectra, spectral_input.N_FEATURES,
                             N_CLASSES, "spectra", "hr_spectral_features", spectral_input.front_macs),
                       MOTION_GATED),
}
FAMILIES = tuple(FAMILY)


def family(spec: dict[str, Any]) -> str:
    return str(spec.get("family", "resnet"))


def default_decoder(spec: dict[str, Any]) -> FusionConfig:
    """The decoder a student of this family ships with unless told otherwise (export, evaluate, the card)."""
    return FAMILY[family(spec)].decoder


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


@dataclass(frozen=True)
class GraphInput:
    """What an exported model (ONNX, INT8 TFLite) reads, channels-first [N, channels, length] float32; the
    flatbuffer and firmware take it channels-last. For a window-reading family: the window."""

    name: str
    channels: int
    length: int
    front: str | None  # the C function that computes it from the window (None: the window itself)
    front_macs: int  # that function's multiply-adds per window (float, in the decoder's C; not in macs())


def graph_input(spec: dict[str, Any]) -> GraphInput:
    front = FAMILY[family(spec)].front
    if front is None:
        return GraphInput("window", int(spec["in_channels"]), WINDOW, None, 0)
    return GraphInput(front.input_name, front.channels, front.length, front.c_function,
                      front.macs(int(spec["in_channels"])))


def to_graph_input(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The exported graph's input for windows ``x`` [N, >= in_channels, 200] (float32, C-contiguous)."""
    front = FAMILY[family(spec)].front
    x = np.asarray(x, np.float32)[:, :int(spec["in_channels"])]
    return np.ascontiguousarray(x if front is None else front.features(x, int(spec["in_channels"])), np.float32)


def graph_module(model: nn.Module) -> nn.Module:
    """The module that is exported (eval mode): the model itself, or its part after the fixed front end."""
    front = FAMILY[family(model.config())].front
    return (model if front is None else front.graph(model)).eval()
