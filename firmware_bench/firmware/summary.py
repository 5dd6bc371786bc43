"""One row of the firmware table (`edgekd firmware --table`, rendered by edgekd.study_report): what a firmware
record measured for an artifact on a target and kernel set, beside the estimates edgekd made before it could
measure (flatbuffer + the x86 TFLM code table for flash, the host interpreter's arena, MACs x cycles/MAC for
latency). Raw numbers only; the renderer formats them.
"""

from __future__ import annotations

from typing import Any

from edgekd import arch
from edgekd.budget import mcu_target
from firmware_bench.artifact import Artifact
from firmware_bench.static import flash_bytes_est

# The edgekd/mcu_targets.toml row a MAC-count estimate would use for each core (cycles/MAC; the clock is the
# target's): M4 TFLM + CMSIS-NN; M33 only has a vendor-engine row (the wearable budgets' MCU); M55 the closest
# TFLM + CMSIS-NN Helium row (an M85).
ESTIMATE_ROW = {"cortex-m4": "m4-64-cmsisnn", "cortex-m33": "m33-160-xcubeai", "cortex-m55": "m85-480-tflm"}


def summary_row(art: Artifact, rec: dict[str, Any]) -> dict[str, Any]:
    """The table row of firmware record ``rec`` of artifact ``art``."""
    f, s = rec["figures"], rec["settings"]
    row: dict[str, Any] = {
        "model": arch.describe(art.spec), "artifact": str(art.folder), "target": s["target"], "kernels": s["kernels"],
        "windows": f["windows"], "int8_mismatches": f["int8_mismatches"], "int8_values": f["int8_values"],
        "int8_max_abs_diff": f["int8_max_abs_diff"], "bpm_mismatches": f["bpm_mismatches"],
        "arena_bytes": f["arena_bytes"], "card_arena_bytes": art.card.get("arena_bytes"),
        "flash_bytes": f.get("flash_bytes"),
        "flash_bytes_est": flash_bytes_est(art.tflite_bytes()),
        "flash_by_component": f.get("flash_by_component")}
    if "instructions_per_window" in f:  # a Cortex-M target under QEMU
        est = f["latency_ms_estimate"]
        mcu = mcu_target(ESTIMATE_ROW[s["target"]])
        row.update({"ram_bytes": f["ram_bytes"], "stack_bytes": f["stack_bytes"],
                    "instructions_per_inference": f["instructions_per_inference"],
                    "instructions_per_decode": f["instructions_per_decode"], "ms": est["ms"],
                    "clock_mhz": est["clock_mhz"], "estimate_mcu": mcu.name, "cycles_per_mac": mcu.cycles_per_mac,
                    "mac_ms": arch.macs(art.spec) * mcu.cycles_per_mac / (est["clock_mhz"] * 1e6) * 1e3})
    return row
