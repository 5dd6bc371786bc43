"""Model checkpoints without pickle: weights in safetensors, architecture in the run's config.json.

A run folder (see DESIGN.md "Run") holds ``config.json`` with a ``model`` entry
({"blocks", "in_channels", "n_classes"}) and ``model.safetensors`` with the ResNet1D state dict
(BatchNorm running statistics included). An artifact folder ``models/<name>/`` uses the same two files,
so everything that loads a model goes through ``load_model``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from edgekd.atomic import atomic_path
from edgekd.errors import EdgekdError
from edgekd.model import ResNet1D

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_weights(model: ResNet1D, path: str | Path) -> None:
    """Write the state dict atomically, with the architecture in the safetensors metadata too."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {k: str(v) for k, v in model.config().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=meta)


def model_spec(folder: str | Path) -> dict[str, int]:
    """The architecture of a run or artifact folder, from config.json (or the safetensors metadata)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG
    if cfg_path.exists():
        try:
            cfg: dict[str, Any] = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise EdgekdError(f"{cfg_path}: not valid JSON ({exc})") from None
        if "model" in cfg:
            return {k: int(cfg["model"][k]) for k in ("blocks", "in_channels", "n_classes")}
    weights = folder / WEIGHTS
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as fh:
            meta = fh.metadata() or {}
        return {k: int(meta[k]) for k in ("blocks", "in_channels", "n_classes")}
    except (FileNotFoundError, SafetensorError, KeyError, ValueError, OSError):
        raise EdgekdError(f"{folder}: not a run or artifact folder (no {CONFIG} with a 'model' entry and no "
                          f"readable {WEIGHTS} with architecture metadata)") from None


def load_model(path: str | Path, map_location: str = "cpu") -> ResNet1D:
    """A ResNet1D in eval mode from a run/artifact folder or a .safetensors file inside one."""
    path = Path(path)
    folder = path.parent if path.suffix == ".safetensors" else path
    weights = path if path.suffix == ".safetensors" else folder / WEIGHTS
    if not weights.exists():
        raise EdgekdError(f"{weights}: no such checkpoint")
    spec = model_spec(folder)
    model = ResNet1D(spec["blocks"], spec["in_channels"], spec["n_classes"])
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
        raise EdgekdError(f"{weights}: weights do not fit ResNet1D({spec['blocks']} blocks, "
                          f"{spec['in_channels']} channels) - {detail}")
    model.load_state_dict(state)
    return model.eval().to(map_location)

