"""WindowSet: the one in-memory and on-disk form of windowed PPG that every loader returns.

On disk: ``NAME.npz`` (arrays, no pickles; provenance embedded as a JSON string so the file stands alone)
plus ``NAME.json``, a human-readable copy of the provenance and counts. Both are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd import __version__
from edgekd.atomic import atomic_paths, json_text
from edgekd.bpm import BPM_MAX, BPM_MIN
from edgekd.errors import DataError
from edgekd.geometry import WINDOW

# A label outside this range is a sensor/annotation failure (e.g. WildPPG writes 0), not a heart rate.
HR_PLAUSIBLE = (20.0, 250.0)
CHANNEL_NAMES_PPG_ACC = ("ppg", "acc_x", "acc_y", "acc_z")


@dataclass
class WindowSet:
    """``x`` [N, C, 200] float32 (channel 0 = green PPG at 25 Hz, z-scored per window; optional ACC),
    ``hr`` [N] BPM, ``subject`` / ``recording`` [N] str ids, optional ``activity`` [N] str, ``dataset`` [N]
    str (the source data set of each window; default: the provenance's ``dataset`` for every window)."""

    x: np.ndarray
    hr: np.ndarray
    subject: np.ndarray
    recording: np.ndarray
    activity: np.ndarray | None = None
    channels: tuple[str, ...] = ("ppg",)
    provenance: dict[str, Any] = field(default_factory=dict)
    dataset: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.x = _real_array(self.x, "x")
        self.hr = _real_array(self.hr, "hr")
        self.subject = np.asarray(self.subject).astype(str)
        self.recording = np.asarray(self.recording).astype(str)
        if self.activity is not None:
            self.activity = np.asarray(self.activity).astype(str)
        if self.dataset is None:
            self.dataset = np.full(self.x.shape[0] if self.x.ndim else 0,
                                   str(self.provenance.get("dataset") or "unknown"))
        self.dataset = np.asarray(self.dataset).astype(str)
        self.channels = tuple(self.channels)
        self.validate()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.x.shape[1])

    def validate(self, source: str = "WindowSet") -> None:
        n = self.x.shape[0]
        if self.x.ndim != 3 or self.x.shape[2] != WINDOW:
            raise DataError(f"{source}: x must be [N, C, {WINDOW}], got {list(self.x.shape)}")
        if len(self.channels) != self.x.shape[1]:
            raise DataError(f"{source}: {self.x.shape[1]} channels but {len(self.channels)} channel names")
        for name in ("hr", "subject", "recording", "dataset") + (("activity",) if self.activity is not None else ()):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise DataError(f"{source}: '{name}' has shape {list(arr.shape)}, expected [{n}]")
        if not np.isfinite(self.x).all():
            raise DataError(f"{source}: x contains NaN or infinite values")
        if n and not np.isfinite(self.hr).all():
            raise DataError(f"{source}: hr contains NaN or infinite values")
        lo, hi = HR_PLAUSIBLE
        bad = (self.hr < lo) | (self.hr > hi)
        if bad.any():
            raise DataError(f"{source}: {int(bad.sum())} hr label(s) outside the plausible {lo:g}-{hi:g} BPM "
                            f"(e.g. {float(self.hr[bad][0]):g}); drop those windows or fix the labels")

    def subset(self, idx: np.ndarray) -> WindowSet:
        return WindowSet(
            x=self.x[idx], hr=self.hr[idx], subject=self.subject[idx], recording=self.recording[idx],
            activity=None if self.activity is None else self.activity[idx],
            channels=self.channels, provenance=self.provenance, dataset=self.dataset[idx],
        )

    def first_channels(self, n: int) -> WindowSet:
        """The same windows with only the first ``n`` channels (what a model reading ``n`` channels sees)."""
        ws = self.subset(np.arange(len(self)))
        ws.x, ws.channels = np.ascontiguousarray(ws.x[:, :n]), ws.channels[:n]
        return ws

    def ppg_only(self) -> WindowSet:
        """The same windows with only the PPG channel (what a PPG-only student sees)."""
        return self.first_channels(1)

    def subjects(self) -> list[str]:
        return sorted(set(self.subject.tolist()))

    def datasets(self) -> list[str]:
        return sorted(set(self.dataset.tolist()))

    @property
    def acc_channels(self) -> list[int]:
        """Indices of the accelerometer channels (named acc*), in stored order; [] for PPG-only data."""
        return [i for i, c in enumerate(self.channels) if c.lower().startswith("acc")]

    def summary(self) -> dict[str, Any]:
        """Counts, HR statistics and histogram: what `edgekd data info` prints."""
        hist, edges = np.histogram(self.hr, bins=np.arange(BPM_MIN, BPM_MAX + 11, 10))
        per_subject = {s: int(c) for s, c in zip(*np.unique(self.subject, return_counts=True))}
        out: dict[str, Any] = {
            "windows": len(self),
            "channels": list(self.channels),
            "subjects": len(per_subject),
            "recordings": len(set(self.recording.tolist())),
            "windows_per_subject": per_subject,
            "hr_mean": float(self.hr.mean()) if len(self) else None,
            "hr_std": float(self.hr.std()) if len(self) else None,
            "hr_min": float(self.hr.min()) if len(self) else None,
            "hr_max": float(self.hr.max()) if len(self) else None,
            "hr_histogram": {f"{int(a)}-{int(b) - 1}": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist)},
        }
        if self.activity is not None:
            out["activities"] = {a: int(c) for a, c in zip(*np.unique(self.activity, return_counts=True))}
        out["datasets"] = {d: int(c) for d, c in zip(*np.unique(self.dataset, return_counts=True))}
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) and its ``.json`` sidecar atomically; returns the .npz path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise DataError(f"{path}: a WindowSet file must end in .npz")
        prov = {**self.provenance, "edgekd_version": __version__}
        arrays: dict[str, np.ndarray] = {
            "x": self.x, "hr": self.hr, "subject": self.subject, "recording": self.recording,
            "channels": np.asarray(self.channels, dtype=str),
            "provenance_json": np.asarray(json.dumps(prov, default=str)),
            "dataset": self.dataset,
        }
        if self.activity is not None:
            arrays["activity"] = self.activity
        sidecar = path.with_suffix(".json")
        # Both written aside, then renamed together: a full disk never leaves a new .npz beside a stale .json.
        with atomic_paths([path, sidecar], [".npz", ".json"]) as (tmp, tmp_json):
            np.savez_compressed(tmp, **arrays)
            tmp_json.write_text(json_text({"provenance": prov, "summary": self.summary()}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> WindowSet:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: no such WindowSet file")
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"x", "hr", "subject", "recording"} - set(z.files)
                if missing:
                    raise DataError(f"{path}: not a WindowSet (missing arrays: {', '.join(sorted(missing))})")
                arrays = {k: z[k] for k in z.files}
        except DataError:
            raise
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: cannot read WindowSet ({exc})") from None
        try:
            prov = json.loads(str(arrays["provenance_json"])) if "provenance_json" in arrays else {}
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: 'provenance_json' is not valid JSON ({exc})") from None
        if not isinstance(prov, dict):
            raise DataError(f"{path}: 'provenance_json' must hold a JSON object, got {type(prov).__name__}")
        try:
            channels = tuple(str(c) for c in arrays["channels"].tolist()) if "channels" in arrays else tuple(
                f"ch{i}" for i in range(arrays["x"].shape[1]))
            return cls(
                x=arrays["x"], hr=arrays["hr"], subject=arrays["subject"], recording=arrays["recording"],
                activity=arrays.get("activity"), channels=channels, provenance=prov,
                dataset=arrays.get("dataset"),
            )
        except (DataError, IndexError, TypeError) as exc:
            raise DataError(f"{path}: {exc}") from None


def _real_array(values: object, name: str) -> np.ndarray:
    """``values`` as a contiguous float32 array; complex, text or object arrays are refused, not cast."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiub":
        raise DataError(f"'{name}' must hold real numbers, got {arr.dtype} values")
    return np.ascontiguousarray(arr, dtype=np.float32)


def concat(sets: list[WindowSet], provenance: dict[str, Any] | None = None) -> WindowSet:
    """Join WindowSets with the same channels (e.g. several recordings of one dataset)."""
    if not sets:
        raise DataError("no windows to concatenate")
    chans = sets[0].channels
    for s in sets[1:]:
        if s.channels != chans:
            raise DataError(f"cannot join WindowSets with channels {chans} and {s.channels}")
    has_act = all(s.activity is not None for s in sets)
    return WindowSet(
        dataset=np.concatenate([s.dataset for s in sets]),  # type: ignore[misc]
        x=np.concatenate([s.x for s in sets]), hr=np.concatenate([s.hr for s in sets]),
        subject=np.concatenate([s.subject for s in sets]), recording=np.concatenate([s.recording for s in sets]),
        activity=np.concatenate([s.activity for s in sets]) if has_act else None,  # type: ignore[misc]
        channels=chans, provenance=provenance if provenance is not None else sets[0].provenance,
    )


def merge(sets: dict[str, WindowSet]) -> WindowSet:
    """One WindowSet from several data sets, keyed by a label for each (e.g. its file): each window keeps its
    ``dataset``; subject and recording ids become ``DATASET/ID`` so no two sets share a subject. Sets
    without ACC get all-zero ACC channels when another set has them (recorded in provenance as
    ``acc_zero_filled``): a PPG-only recording at rest looks like a still wrist, and every model input stays
    [C, 200]. Channels must otherwise agree."""
    if len(sets) < 2:
        raise DataError("merge needs at least two WindowSets")
    widest = max((s.channels for s in sets.values()), key=len)
    parts, filled, provs = [], [], []
    for label, s in sets.items():
        if s.channels != widest[:len(s.channels)]:
            raise DataError(f"{label}: channels {', '.join(s.channels)} do not fit {', '.join(widest)}")
        x = s.x
        if len(s.channels) < len(widest):
            x = np.concatenate([x, np.zeros((len(s), len(widest) - len(s.channels), x.shape[2]), np.float32)], 1)
            filled.append(label)
        parts.append(WindowSet(x=x, hr=s.hr, subject=np.char.add(s.dataset, np.char.add("/", s.subject)),
                               recording=np.char.add(s.dataset, np.char.add("/", s.recording)),
                               activity=s.activity if s.activity is not None else np.full(len(s), "unknown"),
                               channels=widest, dataset=s.dataset))
        provs.append({"source": label, "datasets": s.datasets(), "windows": len(s), "provenance": s.provenance})
    names = [d for p in parts for d in p.datasets()]
    if len(set(names)) != len(names):
        raise DataError(f"merge: data set {next(n for n in names if names.count(n) > 1)!r} appears in two inputs")
    return concat(parts, provenance={"dataset": "+".join(names), "parts": provs, "acc_zero_filled": filled})


def windows_hash(ws: WindowSet) -> str:
    """Hash of the signal windows alone: the teacher-output cache key (labels and ids do not change what a
    teacher outputs on a window)."""
    return hashlib.sha256(np.ascontiguousarray(ws.x).view(np.uint8)).hexdigest()[:16]


def identity_hash(ws: WindowSet) -> str:
    """Hash of everything that makes two WindowSets the same data: windows, labels, subject, recording,
    data set, activity and channel names. Run names, provenance, export's "is this the training data?" and
    the teacher-fold check use it, so re-prepared data with corrected labels or subjects never reuse a run."""
    h = hashlib.sha256(np.ascontiguousarray(ws.x).view(np.uint8))
    h.update(np.ascontiguousarray(ws.hr, dtype=np.float64).view(np.uint8))
    for ids in (ws.subject, ws.recording, ws.dataset, ws.activity, np.asarray(ws.channels)):
        h.update(b"\0none" if ids is None else json_text(ids.tolist()).encode())
    return h.hexdigest()[:16]
