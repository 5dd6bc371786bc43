"""Loaders: each turns one source's recordings into a WindowSet. ``load_dataset`` is the one entry point."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgekd.errors import DataError
from edgekd.windowset import WindowSet

# dataset name -> "module:function"; each function takes (root: Path, **options) -> WindowSet.
LOADERS: dict[str, str] = {
    "ieee-spc2015": "edgekd.data.ieee_spc:load",
    "bidmc": "edgekd.data.bidmc:load",
    "ppg-dalia": "edgekd.data.dalia:load",
    "wildppg": "edgekd.data.wildppg:load",
    "galaxyppg": "edgekd.data.galaxyppg:load",
    "csv": "edgekd.data.csv_loader:load",
    "wrist-exercise": "edgekd.data.wrist_exercise:load",
}

DEFAULT_SYNTH = {"subjects": 12, "minutes": 6.0, "seed": 0}


def default_windowset() -> WindowSet:
    """The embedded default corpus every command uses when given no data: deterministic synthetic PPG + ACC."""
    from edgekd.data.synthetic import generate

    return generate(**DEFAULT_SYNTH)


def load_dataset(name: str, root: str | Path, **options: Any) -> WindowSet:
    if name not in LOADERS:
        raise DataError(f"unknown dataset '{name}'; known: {', '.join(sorted(LOADERS))}")
    module, func = LOADERS[name].split(":")
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder does not exist")
    return getattr(importlib.import_module(module), func)(root, **options)


def load_windows(path: str | Path | None) -> WindowSet:
    """A WindowSet from a .npz file, or the embedded synthetic default when ``path`` is None."""
    return default_windowset() if path is None else WindowSet.load(path)
