"""Deployment budgets (TOML) and the MCU latency estimate they are checked with.

A budget file::

    name = "wearable"                # optional; defaults to the file stem
    description = "..."              # optional
    mcu = "m4-120-xcubeai"           # a target in edgekd/mcu_targets.toml; needed by latency_ms
    [limits]                         # every limit is an upper bound (value <= limit passes)
    flatbuffer_kb = 500              # INT8 .tflite flatbuffer size, KB = 1024 bytes
    arena_kb = 256                   # TFLM tensor arena, KB = 1024 bytes
    latency_ms = 50                  # estimated per-window latency on `mcu` (MACs x cycles/MAC / clock)
    mae_bpm = 8.0                    # FP32 MAE of the shipped decoder (spectral fusion + causal tracker)
    int8_mae_bpm = 8.5               # the same decoder on the INT8 model in the TFLM interpreter
    int8_mae_drop_bpm = 0.5          # INT8 TFLM MAE - FP32 MAE (same decoder, same windows)
    [evidence]                       # what an accuracy limit must be backed by (defaults shown)
    min_windows = 200                # held-out windows the card's MAE was measured on
    min_subjects = 3                 # ... and distinct subjects among them
    [firmware]                       # optional: judge arena and latency on the firmware build, and flash
    target = "cortex-m4"             # ARTIFACT/bench/firmware-cortex-m4.json from `edgekd firmware` must exist
    kernels = "cmsis-nn"             # (optional: pins the kernel set); arena = what model_data.h reserves (the
                                     # target's measured need must fit in it), latency = measured instructions per
                                     # window (model + decoder) / the mcu's clock at CPI 1; the mcu must be the
                                     # target's core
    # with [firmware] only:
    # flash_kb = 192                 # the linked firmware image (model + TFLM + kernels + libc + decoder)

"Flash" is only ever the linked image, which only a firmware build measures: ``flash_kb`` without a [firmware] table
is refused (limit ``flatbuffer_kb``, the model file, instead).

Unknown keys are errors, not warnings: a typo in a CI budget must not silently disable a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgekd.errors import EdgekdError
from edgekd.firmware_targets import MCU_TARGETS, TARGETS
from edgekd.tflm_ops import KERNEL_SETS
from edgekd.tomlfile import read_toml

KB = 1024
LIMITS: dict[str, str] = {
    "flatbuffer_kb": "INT8 flatbuffer (KB)",
    "flash_kb": "flash, linked image (KB)",
    "arena_kb": "arena (KB)",
    "latency_ms": "MCU latency (ms, est.)",
    "mae_bpm": "MAE FP32, shipped decoder (BPM)",
    "int8_mae_bpm": "MAE INT8 TFLM, shipped decoder (BPM)",
    "int8_mae_drop_bpm": "INT8 MAE drop (BPM)",
}
ACCURACY_LIMITS = ("mae_bpm", "int8_mae_bpm", "int8_mae_drop_bpm")
# A card's MAE on 16 windows of one subject says nothing; accuracy limits need at least this much evidence.
EVIDENCE_DEFAULTS: dict[str, int] = {"min_windows": 200, "min_subjects": 3}
TOP_KEYS = {"name", "description", "mcu", "limits", "evidence", "firmware"}
FIRMWARE_KEYS = ("target", "kernels")
# Package data (pyproject's package-data), so gate, bench and rank have the table in an installed wheel too;
# setuptools installs packages as folders, so the resource is a real file.
DEFAULT_MCU_TARGETS = Path(str(resources.files("edgekd") / "mcu_targets.toml"))


@dataclass(frozen=True)
class Budget:
    name: str
    limits: dict[str, float]
    mcu: str | None = None
    description: str = ""
    path: Path | None = field(default=None, compare=False)
    evidence: dict[str, int] = field(default_factory=lambda: dict(EVIDENCE_DEFAULTS))
    firmware: dict[str, str] | None = None  # {"target": ..., "kernels"?: ...}: measured figures, see module doc


@dataclass(frozen=True)
class McuTarget:
    name: str
    clock_hz: float
    cycles_per_mac: float
    core: str | None = None  # "Cortex-M4": what a budget's [firmware] target must be measured on

    def latency_ms(self, macs: float) -> float:
        """Per-window latency estimated from MACs (REFERENCE.md section 5: treat as +-2x)."""
        return macs * self.cycles_per_mac / self.clock_hz * 1e3


def load_budget(path: str | Path) -> Budget:
    """Parse and validate a budget file; every problem is an EdgekdError naming the file and key."""
    path = Path(path)
    doc = read_toml(path, "budget", TOP_KEYS)
    limits_doc = doc.get("limits")
    if not isinstance(limits_doc, dict) or not limits_doc:
        raise EdgekdError(f"{path}: needs a non-empty [limits] table with any of {', '.join(LIMITS)}")
    limits: dict[str, float] = {}
    for key, value in limits_doc.items():
        if key not in LIMITS:
            raise EdgekdError(f"{path}: unknown limit '{key}'; known limits: {', '.join(LIMITS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise EdgekdError(f"{path}: limit '{key}' must be a non-negative number, got {value!r}")
        limits[key] = float(value)
    mcu = doc.get("mcu")
    if mcu is not None and not isinstance(mcu, str):
        raise EdgekdError(f"{path}: 'mcu' must be a string naming a target in mcu_targets.toml")
    if "latency_ms" in limits and not mcu:
        raise EdgekdError(f"{path}: limit 'latency_ms' needs 'mcu = \"<target>\"' (see edgekd/mcu_targets.toml)")
    for key in ("name", "description"):
        if key in doc and not isinstance(doc[key], str):
            raise EdgekdError(f"{path}: '{key}' must be a string")
    firmware = _firmware(path, doc.get("firmware"))
    if "flash_kb" in limits and firmware is None:
        raise EdgekdError(f"{path}: limit 'flash_kb' is the linked firmware image, which only `edgekd firmware` "
                          f"measures: add a [firmware] table, or limit 'flatbuffer_kb' (the INT8 .tflite) instead")
    return Budget(name=doc.get("name", path.stem), limits=limits, mcu=mcu,
                  description=doc.get("description", ""), path=path, evidence=_evidence(path, doc.get("evidence", {})),
                  firmware=firmware)


def _firmware(path: Path, doc: object) -> dict[str, str] | None:
    if doc is None:
        return None
    if not isinstance(doc, dict) or "target" not in doc:
        raise EdgekdError(f"{path}: [firmware] must be a table with target = \"cortex-m4\" (and optional kernels)")
    unknown = set(doc) - set(FIRMWARE_KEYS)
    if unknown:
        raise EdgekdError(f"{path}: unknown [firmware] key(s) {', '.join(sorted(unknown))}; allowed: "
                          f"{', '.join(FIRMWARE_KEYS)}")
    if doc["target"] not in MCU_TARGETS:
        raise EdgekdError(f"{path}: [firmware] target must be one of {', '.join(MCU_TARGETS)}, got {doc['target']!r}")
    if "kernels" in doc and doc["kernels"] not in KERNEL_SETS:
        raise EdgekdError(f"{path}: [firmware] kernels must be one of {', '.join(KERNEL_SETS)}, got {doc['kernels']!r}")
    return dict(doc)


def check_firmware_mcu(budget: Budget, mcu: McuTarget | None) -> None:
    """A [firmware] record measured on one core cannot stand for another MCU's latency (EdgekdError)."""
    if budget.firmware is None or mcu is None:
        return
    core = TARGETS[budget.firmware["target"]].core
    if mcu.core != core:
        raise EdgekdError(f"{budget.path or budget.name}: [firmware] target {budget.firmware['target']} is a {core}, "
                          f"but mcu '{mcu.name}' is a {mcu.core or 'core the MCU table does not name'}")


def _evidence(path: Path, doc: object) -> dict[str, int]:
    if not isinstance(doc, dict):
        raise EdgekdError(f"{path}: [evidence] must be a table with {', '.join(EVIDENCE_DEFAULTS)}")
    unknown = set(doc) - set(EVIDENCE_DEFAULTS)
    if unknown:
        raise EdgekdError(f"{path}: unknown [evidence] key(s) {', '.join(sorted(unknown))}; allowed: "
                          f"{', '.join(EVIDENCE_DEFAULTS)}")
    out = dict(EVIDENCE_DEFAULTS)
    for key, value in doc.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EdgekdError(f"{path}: [evidence] '{key}' must be a positive integer, got {value!r}")
        out[key] = value
    return out


def load_mcu_targets(path: str | Path = DEFAULT_MCU_TARGETS) -> dict[str, McuTarget]:
    """Read the MCU table firmware_bench owns: ``[targets.<name>]`` with ``clock_mhz`` and ``cycles_per_mac``."""
    path = Path(path)
    doc = read_toml(path, "MCU targets")
    table = doc.get("targets", doc)
    out: dict[str, McuTarget] = {}
    for name, entry in table.items():
        if not isinstance(entry, dict):
            continue
        try:
            clock = float(entry["clock_mhz"]) * 1e6
            cpm = float(entry["cycles_per_mac"])
        except (KeyError, TypeError, ValueError):
            raise EdgekdError(f"{path}: target '{name}' needs numeric clock_mhz and cycles_per_mac") from None
        if clock <= 0 or cpm <= 0:
            raise EdgekdError(f"{path}: target '{name}' has a non-positive clock or cycles/MAC")
        core = entry.get("core")
        out[name] = McuTarget(name, clock, cpm, core if isinstance(core, str) else None)
    if not out:
        raise EdgekdError(f"{path}: no MCU targets found")
    return out


def mcu_target(name: str, path: str | Path = DEFAULT_MCU_TARGETS) -> McuTarget:
    targets = load_mcu_targets(path)
    if name not in targets:
        raise EdgekdError(f"{path}: unknown MCU '{name}'; known: {', '.join(sorted(targets))}")
    return targets[name]
