"""Which windows calibrate the INT8 models and which measure their accuracy.

Rule (documented in the README): ``--calib FILE.npz`` / ``--eval FILE.npz`` are used whole when given.
Otherwise the run's own data is split with the run's own fold (``fold``, ``split_seed`` in its config.json;
RunConfig defaults when absent): its training subjects calibrate and its held-out subjects evaluate, so INT8
is never calibrated on the windows it is scored on. The run's data is ``--data FILE.npz`` when given, else the
embedded synthetic default; when the run's config.json records a data hash, the windows must match it (a run
trained on IEEE SPC cannot silently be calibrated on synthetic windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.checkpoint import CONFIG
from edgekd.data import load_windows
from edgekd.errors import DataError
from edgekd.geometry import WINDOW
from edgekd.layout import read_json_object
from edgekd.runs import RunConfig, resolve_fold
from edgekd.train import synthetic_leak
from edgekd.windowset import WindowSet, identity_hash

MIN_CALIB_WINDOWS = 32  # fewer gives activation ranges from too few beats/motion states to trust
MAX_CALIB_WINDOWS = 500  # more changes the ranges little and slows the converter; a seeded subset is used


@dataclass
class Windows:
    ws: WindowSet  # the channels the model reads, windows in stored (time) order per recording
    description: dict[str, Any]

    @property
    def x(self) -> np.ndarray:  # [N, in_channels, 200] float32
        return self.ws.x

    @property
    def hr(self) -> np.ndarray:  # [N] BPM
        return self.ws.hr


def source_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    return read_json_object(path) if path.exists() else {}


def select(folder: Path, in_channels: int, data: Path | None, calib: Path | None,
           evaluate: Path | None) -> tuple[Windows, Windows]:
    """(calibration windows, evaluation windows) for the model in ``folder``; see the module docstring."""
    cfg = source_config(folder)
    fold_sets: tuple[WindowSet, WindowSet] | None = None
    fold_desc: dict[str, Any] = {}
    if calib is None or evaluate is None:
        ws = load_windows(data)
        recorded = cfg.get("data", {}).get("hash") if isinstance(cfg.get("data"), dict) else None
        if recorded and recorded != identity_hash(ws):
            raise DataError(f"{data or 'the synthetic default'}: not the data the run in {folder} was trained "
                            f"on (hash {identity_hash(ws)} != {recorded}, dataset "
                            f"'{cfg['data'].get('dataset')}'); pass --data with the run's WindowSet, "
                            f"or --calib and --eval")
        run = RunConfig.from_dict(cfg)
        fold = resolve_fold(ws, run.fold, run.split_seed)
        if evaluate is None and len(fold.test) == 0:
            raise DataError(f"{folder}: trained with --fold {run.fold}, so no windows were held out; pass --eval "
                            f"FILE.npz with windows it never saw")
        fold_sets = ws.subset(fold.train), ws.subset(fold.test)
        fold_desc = {"data": str(data) if data else "synthetic default", "fold": run.fold,
                     "split_seed": run.split_seed}
    cal_ws = WindowSet.load(calib) if calib is not None else fold_sets[0]  # type: ignore[index]
    ev_ws = WindowSet.load(evaluate) if evaluate is not None else fold_sets[1]  # type: ignore[index]
    if why := synthetic_leak(folder, ev_ws.datasets()):  # the card's accuracy must come from unseen windows
        raise DataError(f"{evaluate or 'evaluation windows'}: {why}")
    cal = _prepare(cal_ws, in_channels, str(calib) if calib else "training side of the run's fold", fold_desc)
    if len(cal.x) < MIN_CALIB_WINDOWS:
        raise DataError(f"{calib or 'calibration windows'}: {len(cal.x)} windows; INT8 calibration needs at "
                        f"least {MIN_CALIB_WINDOWS}")
    if len(cal.x) > MAX_CALIB_WINDOWS:
        idx = np.sort(np.random.default_rng(0).choice(len(cal.x), MAX_CALIB_WINDOWS, replace=False))
        cal = Windows(cal.ws.subset(idx), {**cal.description, "windows_used": MAX_CALIB_WINDOWS})
    ev = _prepare(ev_ws, in_channels, str(evaluate) if evaluate else "held-out side of the run's fold", fold_desc)
    if len(ev.x) == 0:
        raise DataError(f"{evaluate or 'evaluation windows'}: no windows")
    return cal, ev


def _prepare(ws: WindowSet, in_channels: int, source: str, fold_desc: dict[str, Any]) -> Windows:
    if ws.x.shape[1] < in_channels or ws.x.shape[2] != WINDOW:
        raise DataError(f"{source}: windows are {list(ws.x.shape[1:])} (channels, samples); the model needs "
                        f"at least {in_channels} channel(s) of {WINDOW} samples")
    desc = {"source": source, **({} if source.endswith(".npz") else fold_desc), "windows": len(ws),
            "subjects": ws.subjects(), "dataset": ws.provenance.get("dataset"),
            "channels_used": list(ws.channels[:in_channels])}
    return Windows(ws.first_channels(in_channels), desc)
