"""Arm Ethos-U NPU estimates from Vela (``ethos-u-vela``, the ``ethos`` extra): Vela compiles the INT8 flatbuffer
for the NPU and reports the SRAM and flash it needs and its own cycle estimate (a performance model, not a
measurement). Run in a subprocess with Vela's defaults for the accelerator (system configuration, memory mode).
"""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

ACCELERATOR = "ethos-u55-128"  # the smallest common U55 configuration (128 MACs/cycle)
KIB = 1024
VELA_TIMEOUT_S = 300


def installed() -> bool:
    return importlib.util.find_spec("ethosu") is not None


def estimate(model: bytes, accelerator: str = ACCELERATOR) -> dict[str, Any]:
    """Vela's summary for the flatbuffer: SRAM and flash bytes, NPU/CPU op counts, cycles and inference time."""
    if not installed():
        return {"status": "ethos-u-vela not installed (pip install 'edgekd[ethos]'): no Ethos-U estimate"}
    with tempfile.TemporaryDirectory(prefix="edgekd-vela-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        try:
            proc = subprocess.run([sys.executable, "-m", "ethosu.vela", str(path), "--accelerator-config",
                                   accelerator, "--output-dir", tmp], capture_output=True, text=True, cwd=tmp,
                                  timeout=VELA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise EdgekdError(f"vela: no result for {accelerator} after {VELA_TIMEOUT_S} s") from None
        summaries = sorted(Path(tmp).glob("model_summary_*.csv"))
        if proc.returncode != 0 or not summaries:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            raise EdgekdError(f"vela cannot compile the INT8 flatbuffer for {accelerator}: "
                              f"{' '.join(lines[-1].split()) if lines else 'no summary written'}")
        with open(summaries[0], newline="") as fh:
            s = next(csv.DictReader(fh))
        npu_ops = proc.stdout.split("NPU operators = ")[1].split()[0] if "NPU operators = " in proc.stdout else None
        cpu_ops = proc.stdout.split("CPU operators = ")[1].split()[0] if "CPU operators = " in proc.stdout else None
    flash_kib = float(s["off_chip_flash_memory_used"]) + float(s["on_chip_flash_memory_used"])
    return {"status": "estimated by Vela (performance model, not measured)",
            "accelerator": s["accelerator_configuration"], "system_config": s["system_config"],
            "memory_mode": s["memory_mode"], "clock_mhz": float(s["core_clock"]) / 1e6,
            "sram_bytes": round(float(s["sram_memory_used"]) * KIB), "flash_bytes": round(flash_kib * KIB),
            "npu_ops": None if npu_ops is None else int(npu_ops), "cpu_ops": None if cpu_ops is None else int(cpu_ops),
            "cycles_total": int(float(s["cycles_total"])), "cycles_npu": int(float(s["cycles_npu"])),
            "inference_ms": float(s["inference_time"]) * 1e3, "macs": int(float(s["nn_macs"])),
            "vela_version": _version()}


def _version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ethos-u-vela")
    except metadata.PackageNotFoundError:
        return None
