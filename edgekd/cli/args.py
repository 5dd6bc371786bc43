"""argparse types that refuse nonsense at the command line (exit 2 with argparse's usage line), so a
negative epoch count or a NaN rate never reaches a training loop."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from edgekd.fusion import MOTION_GATED, FusionConfig
from edgekd.tracking import TRACKER_KINDS, TrackerConfig


def int_at_least(lo: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value

    parse.__name__ = f"integer >= {lo}"
    return parse


def _float_above(lo: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < lo or (value == lo and not inclusive):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>=' if inclusive else '>'} {lo:g}, "
                                             f"got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)
positive_float = _float_above(0.0, inclusive=False)
non_negative_float = _float_above(0.0, inclusive=True)


def table_file(text: str) -> Path:
    """A study's --table NAME.md (its record goes beside it as NAME.json)."""
    path = Path(text)
    if path.suffix != ".md" or not path.stem:
        raise argparse.ArgumentTypeError(f"expected a NAME.md file (its record is written beside it as NAME.json), "
                                         f"got {text!r}")
    return path


def below_one(text: str) -> float:
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def unit_interval(text: str) -> float:
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


# The decoder flags: (flag, FusionConfig field, type, metavar, what it does).
DECODER_FLAGS = (
    ("--fusion-weight", "weight", non_negative_float, "W",
     "spectrum weight: A * logit + W * log(floor + evidence); 0 = the model alone"),
    ("--model-weight", "model_weight", non_negative_float, "A", "model weight; 0 with W = 1 is the spectral baseline"),
    ("--clear-quality", "clear_quality", unit_interval, "Q",
     "windows whose spectrum is at least this clear (share of evidence within 3 BPM of its peak) use the spectrum "
     "alone, the others A * logit + U * log(floor + evidence); 0 = no quality test (with --motion-g 0 too: no switch, "
     "A * logit + W * log(...) everywhere)"),
    ("--unclear-weight", "unclear_weight", non_negative_float, "U", "spectrum weight on windows that are not clear"),
    ("--motion-g", "motion_g", non_negative_float, "G",
     "a window whose wrist moves at least this much (RMS of the band-passed acceleration, in g) is never clear: "
     "walking and running leak their cadence into the PPG; 0 = no motion gate"),
    ("--fusion-floor", "floor", positive_float, "F", "the F in log(F + evidence): how much a class the spectrum "
                                                     "does not show is still allowed"),
)
# The causal tracker's flags: (flag, dest, TrackerConfig field, type, metavar, what it does).
TRACKER_FLAGS = (
    ("--tracker-sigma", "tracker_sigma", "sigma_bpm", positive_float, "BPM",
     "std of the heart-rate change per 2 s step"),
    ("--tracker-temperature", "tracker_temperature", "temperature", positive_float, "T",
     "softmax temperature on the fused logits (> 1 trusts them less)"),
    ("--tracker-kind", "tracker_kind", "kind", str, "KIND",
     f"transition shape: {' or '.join(TRACKER_KINDS)} (heavier tails: tolerates occasional fast changes)"),
    ("--tracker-floor", "tracker_floor", "floor", below_one, "P",
     "probability mass spread uniformly each step (re-acquisition after a loss)"),
)


def add_decoder_args(p: argparse.ArgumentParser) -> None:
    """The shipped decoder's settings (edgekd.fusion.FusionConfig and the causal tracker's
    edgekd.tracking.TrackerConfig), the same flags for `evaluate` (measure a choice) and `export` (record it in
    the artifact, its card and model_data.h). A flag not given keeps the value of the decoder the model ships
    with: an artifact's recorded one, else its student family's."""
    for flag, field, kind, metavar, what in DECODER_FLAGS:
        window, spectral = getattr(FusionConfig(), field), getattr(MOTION_GATED, field)
        p.add_argument(flag, dest=field, type=kind, metavar=metavar,
                       help=f"{what} (default: an artifact's recorded value, else the student family's: {window:g} "
                            f"for window students, {spectral:g} for spectral ones)")
    for flag, dest, field, kind, metavar, what in TRACKER_FLAGS:
        p.add_argument(flag, dest=dest, type=kind, metavar=metavar,
                       choices=TRACKER_KINDS if field == "kind" else None,
                       help=f"{what} (default: an artifact's recorded value, else {getattr(TrackerConfig(), field)})")


def decoder_config(args: argparse.Namespace, base: FusionConfig) -> FusionConfig:
    """The fusion the flags ask for: ``base`` (what the model ships with: edgekd.checkpoint.shipped_decoder)
    with each given flag in place of its value."""
    given = {field: getattr(args, field) for _, field, *_ in DECODER_FLAGS if getattr(args, field) is not None}
    return replace(base, **given)


def tracker_config(args: argparse.Namespace, base: TrackerConfig) -> TrackerConfig:
    """The tracker the flags ask for: ``base`` (edgekd.checkpoint.shipped_tracker) with each given flag in place
    of its value."""
    given = {field: getattr(args, dest) for _, dest, field, *_ in TRACKER_FLAGS if getattr(args, dest) is not None}
    return replace(base, **given)
