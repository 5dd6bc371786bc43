"""Benchmark records: one JSON object per artifact and runtime (DESIGN.md "Benchmark record").

Every record carries what is needed to compare it with another one later: the artifact's identity, the
device, library versions, the settings used and the figures. Files are written atomically.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekd import __version__
from edgekd.atomic import write_json
from edgekd.errors import EdgekdError
from edgekd.layout import BENCH_SCHEMA

SCHEMA = BENCH_SCHEMA
_DISTRIBUTIONS = ("numpy", "torch", "onnxruntime", "ai-edge-litert", "tflite-micro")
REQUIRED = ("schema", "created", "artifact", "runtime", "device", "versions", "settings", "figures")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "edgekd": __version__}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo where there is one (platform.processor() is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_device(**extra: Any) -> dict[str, Any]:
    return {"kind": "cpu", "name": cpu_name(), "logical_cpus": os.cpu_count(), **extra}


def make_record(artifact: dict[str, Any], runtime: str, device: dict[str, Any], settings: dict[str, Any],
                figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "artifact": artifact,
        "runtime": runtime,
        "device": device,
        "versions": versions(),
        "settings": settings,
        "figures": figures,
    }


def write_records(records: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """``<out_dir>/<runtime>.json`` for each record; returns the paths written."""
    out_dir = Path(out_dir)
    paths = []
    for rec in records:
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise EdgekdError(f"benchmark record for '{rec.get('runtime')}' lacks {', '.join(missing)}")
        path = out_dir / f"{rec['runtime']}.json"
        write_json(path, rec)
        paths.append(path)
    return paths
