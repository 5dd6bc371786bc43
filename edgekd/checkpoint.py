"""Model checkpoints without pickle: weights in safetensors, architecture in the run's config.json.

A run folder (see DESIGN.md "Run") holds ``config.json`` with a ``model`` entry (an edgekd.arch spec:
{"blocks", "in_channels", "n_classes"}, plus "family" and "width" for a TCN) and ``model.safetensors`` with the
state dict
(BatchNorm running statistics included). An artifact folder ``models/<name>/`` uses the same two files,
so everything that loads a model goes through ``load_model``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgekd.atomic import atomic_path, write_error
from edgekd.bpm import N_CLASSES
from edgekd.errors import EdgekdError
from edgekd.fusion import FusionConfig
from edgekd.layout import CARD, CONFIG, WEIGHTS, check_model_folder, read_json_object
from edgekd.model_card import ModelCard, read_card, where
from edgekd import arch
from edgekd.model import MAX_IN_CHANNELS
from edgekd.tracking import TrackerConfig

T = TypeVar("T")


def save_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Write the state dict atomically, with the architecture in the safetensors metadata too."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {k: str(v) for k, v in model.config().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        try:
            save_file(state, str(tmp), metadata=meta)
        except SafetensorError as exc:  # a full disk surfaces here, without an errno
            raise write_error(path, exc) from None


def checked_spec(raw: Any, source: Path) -> dict[str, Any]:
    """{"blocks", "in_channels", "n_classes"} as integers in range (and "family" with its "width" for a TCN or spectral CNN);
    EdgekdError naming ``source`` otherwise."""
    if not isinstance(raw, dict):
        raise EdgekdError(f"{source}: 'model' must be an object with blocks, in_channels, n_classes")
    family = raw.get("family", "resnet")
    if family not in arch.FAMILIES:
        raise EdgekdError(f"{source}: model 'family' must be one of {', '.join(arch.FAMILIES)}, got {family!r}")
    spec: dict[str, Any] = {"family": family} if arch.has_width(family) else {}
    fam = arch.FAMILY[family]
    ranges = [("blocks", 1, fam.max_depth), ("in_channels", 1, MAX_IN_CHANNELS), ("n_classes", N_CLASSES, N_CLASSES)]
    if fam.widths:
        ranges.insert(1, ("width", *fam.widths))
    for key, lo, hi in ranges:
        value = raw.get(key)
        try:
            number = int(value)  # safetensors metadata holds strings
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or isinstance(value, float) or number is None or not lo <= number <= hi:
            rng = str(lo) if lo == hi else f"an integer {lo}..{hi}"
            raise EdgekdError(f"{source}: model '{key}' must be {rng}, got {value!r}")
        spec[key] = number
    if why := arch.in_channels_problem(family, spec["in_channels"]):
        raise EdgekdError(f"{source}: model {why}")
    return spec


def model_spec(folder: str | Path) -> dict[str, Any]:
    """The architecture of a run or artifact folder, from config.json (or the safetensors metadata).

    Refuses an interrupted run or an artifact whose files differ from its card (edgekd.layout), so every
    consumer of a model folder (evaluate, export, distill --teacher, bench, init_from) fails closed."""
    folder = Path(folder)
    if folder.is_dir():
        check_model_folder(folder)
    cfg_path = folder / CONFIG
    if cfg_path.exists():
        cfg = read_json_object(cfg_path)
        if "model" in cfg:
            return checked_spec(cfg["model"], cfg_path)
    weights = folder / WEIGHTS
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as fh:
            meta = fh.metadata() or {}
    except (FileNotFoundError, SafetensorError, OSError):
        meta = None
    if meta is not None and all(k in meta for k in ("blocks", "in_channels", "n_classes")):
        return checked_spec(meta, weights)
    raise EdgekdError(f"{folder}: not a run or artifact folder (no {CONFIG} with a 'model' entry and no "
                      f"readable {WEIGHTS} with architecture metadata)")


def model_folder(path: str | Path) -> Path:
    """The run or artifact folder of ``path`` (the folder itself, or the folder of a .safetensors file in one)."""
    path = Path(path)
    return path.parent if path.suffix == ".safetensors" else path


def load_model(path: str | Path, map_location: str = "cpu") -> torch.nn.Module:
    """The model (any edgekd.arch family) in eval mode from a run/artifact folder or a .safetensors file inside one."""
    path = Path(path)
    folder = model_folder(path)
    weights = path if path.suffix == ".safetensors" else folder / WEIGHTS
    if not weights.exists():
        raise EdgekdError(f"{weights}: no such checkpoint")
    spec = model_spec(folder)
    model = arch.build(spec)
    try:
        state = load_file(str(weights), device=map_location)
    except (SafetensorError, OSError) as exc:
        raise EdgekdError(f"{weights}: corrupt or unreadable checkpoint ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}"
                           for label, keys in (("missing", missing), ("unexpected", unexpected),
                                               ("wrong shape", wrong)) if keys)
        raise EdgekdError(f"{weights}: weights do not fit {arch.describe(spec)}, {spec['in_channels']} channels - "
                          f"{detail}")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise EdgekdError(f"{weights}: non-finite (NaN or infinite) weights in {', '.join(bad[:3])}"
                          f"{' ...' if len(bad) > 3 else ''}; the model is unusable")
    model.load_state_dict(state)
    return model.eval().to(map_location)


def recorded_setting(card: ModelCard, field: str, make: Callable[[dict[str, Any]], T]) -> T | None:
    """The settings table a card records as ``field`` (the decoder's ``fusion`` or ``tracker``), built by
    ``make``; None when the card has none (an export from before it was recorded); EdgekdError naming the card
    when it is not a table or its values are refused."""
    value = card.get(field)
    if value is None:
        return None
    try:
        return make(value)
    except (TypeError, EdgekdError) as exc:
        raise EdgekdError(f"{card.path}: unreadable {where(field)} ({exc})") from None


def shipped_tracker(folder: str | Path) -> TrackerConfig:
    """The causal tracker a model folder ships with: an artifact's recorded one (card.json), else the default."""
    folder = model_folder(folder)
    if (folder / CARD).is_file():
        tracker = recorded_setting(read_card(folder), "tracker", lambda d: TrackerConfig(**d))
        if tracker is not None:
            return tracker
    return TrackerConfig()


def shipped_decoder(folder: str | Path) -> FusionConfig:
    """The decoder a model folder ships with: an artifact's recorded one (card.json), else its student
    family's (edgekd.arch.default_decoder)."""
    folder = model_folder(folder)
    if (folder / CARD).is_file():
        fusion = recorded_setting(read_card(folder), "fusion",
                                  lambda d: FusionConfig(**{"motion_g": 0.0, **d}))  # a card from before the gate
        if fusion is not None:
            return fusion
    return arch.default_decoder(model_spec(folder))
