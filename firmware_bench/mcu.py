"""MCU latency and energy estimates from MACs, with the cycles-per-MAC table in ``edgekd/mcu_targets.toml``.

latency = MACs x cycles_per_mac / clock, shown as [latency / band, latency x band] (band = 2 in the table:
the MLPerf Tiny ResNet-8 figures transfer to our 1D-ResNets only roughly). energy = power x latency, only
for targets whose table entry has a datasheet ``power_mw``. The arithmetic lives in
``edgekd.budget.McuTarget.latency_ms`` so ``edgekd gate`` and ``edgekd bench`` can never disagree.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.budget import DEFAULT_MCU_TARGETS, McuTarget, load_mcu_targets
from edgekd.errors import EdgekdError

TARGETS_FILE = DEFAULT_MCU_TARGETS


@dataclass(frozen=True)
class Target:
    """One row of the table: the core figures plus what the estimate should say about itself."""

    core: McuTarget
    band: float
    stack: str
    power_mw: float | None
    power_source: str | None
    source: str

    @property
    def name(self) -> str:
        return self.core.name


def load_targets(path: str | Path = TARGETS_FILE) -> dict[str, Target]:
    """All targets of the table, validated (clock, cycles/MAC and power must be positive numbers)."""
    path = Path(path)
    cores = load_mcu_targets(path)
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:  # load_mcu_targets has read it; keep the message anyway
        raise EdgekdError(f"{path}: unreadable MCU table ({exc})") from None
    band = doc.get("band", 2.0)
    if isinstance(band, bool) or not isinstance(band, (int, float)) or band < 1:
        raise EdgekdError(f"{path}: 'band' must be a number >= 1 (the +-x uncertainty of an estimate)")
    out = {}
    for name, core in cores.items():
        entry: dict[str, Any] = doc["targets"][name]
        power = entry.get("power_mw")
        if power is not None and (isinstance(power, bool) or not isinstance(power, (int, float)) or power <= 0):
            raise EdgekdError(f"{path}: target '{name}' has a non-positive or non-numeric power_mw")
        out[name] = Target(core, float(band), str(entry.get("stack", "")),
                           None if power is None else float(power), entry.get("power_source"),
                           str(doc.get("source", "")))
    return out


def select(names: list[str] | None, path: str | Path = TARGETS_FILE) -> list[Target]:
    """The named targets in the order given (all of them for None); an unknown name is an error."""
    targets = load_targets(path)
    if not names:
        return list(targets.values())
    unknown = [n for n in names if n not in targets]
    if unknown:
        raise EdgekdError(f"{path}: unknown MCU {', '.join(unknown)}; known: {', '.join(targets)}")
    return [targets[n] for n in names]


def estimate(macs: int, target: Target) -> dict[str, Any]:
    """Per-window latency (ms, with its band) and energy (mJ, when the target's power is known)."""
    if macs <= 0:
        raise EdgekdError(f"MCU estimate needs a positive MAC count, got {macs}")
    ms = target.core.latency_ms(macs)
    row: dict[str, Any] = {
        "target": target.name,
        "clock_mhz": round(target.core.clock_hz / 1e6, 3),
        "cycles_per_mac": target.core.cycles_per_mac,
        "stack": target.stack,
        "macs": int(macs),
        "latency_ms": ms,
        "latency_low_ms": ms / target.band,
        "latency_high_ms": ms * target.band,
        "power_mw": target.power_mw,
        "energy_mj": None if target.power_mw is None else target.power_mw * ms / 1e3,
    }
    return row
