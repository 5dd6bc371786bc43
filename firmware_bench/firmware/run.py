"""Run the built firmware on windows and hold it against Python: the TFLM interpreter (``tflite-micro``) for
the int8 outputs, edgekd's decoder (edgekd.fusion + edgekd.tracking, what ``edgekd evaluate`` scores) for the
heart rate; write the record ``ARTIFACT/bench/firmware-TARGET.json``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from edgekd import arch
from edgekd.bpm import BPM_MIN, N_CLASSES
from edgekd.checkpoint import recorded_setting
from edgekd.data import load_windows
from edgekd.errors import EdgekdError
from edgekd.fusion import FusionConfig, fuse, spectral_evidence, window_motion
from edgekd.layout import KERNEL_SOURCES, MODEL_DATA_CC, MODEL_DATA_H, OPS_H, TFLITE_INT8, TRACKER_FILES
from edgekd.tracking import TrackerConfig, decode_recordings, dequantize
from edgekd.windowset import WindowSet
from firmware_bench import records
from firmware_bench.artifact import Artifact, load_artifact
from firmware_bench.firmware import build
from edgekd.firmware_targets import Target, get_target

QEMU = "qemu-system-arm"
CALIBRATION_INSTRUCTIONS = 2 * 1_000_000  # edgekd_target.h: EDGEKD_CALIBRATION_LOOPS x (subs + bne)
RUN_TIMEOUT_S = 900
EXIT_CODES = {3: "registering the ops failed", 4: "AllocateTensors failed (arena too small?)",
              5: "Invoke failed", 6: "hr_tracker_init refused the card's tracker settings",
              10: "cannot open windows.bin/results.bin (semihosting?)", 11: "windows.bin has the wrong channels",
              12: "windows.bin is short", 13: "cannot write results.bin", 70: "the firmware faulted (HardFault)"}


def select_windows(data: Path | None, in_channels: int, n: int) -> WindowSet:
    """The first ``n`` windows, recording after recording in stored order (the tracker's order), with the
    channels the model reads."""
    ws = load_windows(data)
    source = data or "the synthetic default"
    if ws.x.shape[1] < in_channels:
        raise EdgekdError(f"{source}: {ws.x.shape[1]} channel(s); the model reads {in_channels}")
    if n > len(ws):
        raise EdgekdError(f"{source}: {len(ws)} windows, fewer than the {n} asked for (--windows)")
    order = np.concatenate([np.flatnonzero(ws.recording == r) for r in dict.fromkeys(ws.recording.tolist())])
    return ws.subset(order[:n]).first_channels(in_channels)


def write_windows(ws: WindowSet, path: Path) -> None:
    new = np.r_[True, ws.recording[1:] != ws.recording[:-1]].astype(np.int32)
    with open(path, "wb") as fh:
        fh.write(np.array([len(ws), ws.x.shape[1]], np.int32).tobytes())
        for i in range(len(ws)):
            fh.write(new[i:i + 1].tobytes())
            fh.write(np.ascontiguousarray(ws.x[i], np.float32).tobytes())


def read_results(path: Path, n: int, input_size: int) -> dict[str, Any]:
    """What the firmware wrote for ``n`` windows of a model reading ``input_size`` int8 values per window."""
    raw = path.read_bytes() if path.is_file() else b""
    row = np.dtype([("input", np.int8, input_size), ("out", np.int8, N_CLASSES), ("cls", "<i4"), ("invoke", "<u8"),
                    ("decode", "<u8")])
    need = n * row.itemsize + 32
    if len(raw) != need:
        raise EdgekdError(f"{path}: {len(raw)} bytes, expected {need} (the firmware stopped early)")
    rows = np.frombuffer(raw[:n * row.itemsize], row)
    used, smallest, calibration, stack = (int(v) for v in np.frombuffer(raw[n * row.itemsize:], "<u8"))
    return {"input": rows["input"].copy(), "out": rows["out"].copy(), "cls": rows["cls"].astype(np.int64),
            "invoke": rows["invoke"].astype(np.int64), "decode": rows["decode"].astype(np.int64),
            "arena_used": used, "arena_smallest": smallest, "calibration_ticks": calibration, "stack_bytes": stack}


def execute(exe: Path, target: Target, folder: Path) -> None:
    """Run the firmware in ``folder`` (it reads windows.bin and writes results.bin there)."""
    if target.cortex_m:
        qemu = shutil.which(QEMU)
        if qemu is None:
            raise EdgekdError(f"firmware target {target.name}: {QEMU} not found (apt-get install qemu-system-arm)")
        # -icount shift=0: the virtual clock advances one ns per instruction, so SysTick counts instructions.
        cmd = [qemu, "-M", target.machine, "-nographic", "-monitor", "none", "-serial", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(exe)]
    else:
        cmd = [str(exe)]
    try:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise EdgekdError(f"{exe}: no result after {RUN_TIMEOUT_S} s on {target.name}") from None
    if proc.returncode != 0:
        why = EXIT_CODES.get(proc.returncode) or build.one_line(proc.stderr or proc.stdout)
        raise EdgekdError(f"{exe}: exit {proc.returncode} on {target.name}: {why}")


def _decoder(art: Artifact) -> tuple[FusionConfig, TrackerConfig]:
    card = art.card
    card.require("fusion", "tracker")
    if "motion_g" not in card.fusion:  # its hr_spectral.c and model_data.h predate the gate
        raise EdgekdError(f"{card.path}: exported before the decoder's motion gate; re-export it with this edgekd")
    fusion = recorded_setting(card, "fusion", lambda d: FusionConfig(**d))
    tracker = recorded_setting(card, "tracker", lambda d: TrackerConfig(**d))
    assert fusion is not None and tracker is not None  # required above
    return fusion, tracker


def firmware_check(folder: Path, target_name: str, kernels: str | None = None, tflm: Path | None = None,
                   windows: int = 64, data: Path | None = None, cache: Path | None = None, cpi: float = 1.0,
                   clock_mhz: float | None = None, progress: bool = True, keep: Path | None = None) -> dict[str, Any]:
    """Build, run and compare; the benchmark record (also written to ``folder/bench/firmware-TARGET.json``)."""
    target = get_target(target_name)
    kernels = kernels or target.default_kernels
    if not cpi > 0 or (clock_mhz is not None and not clock_mhz > 0) or windows < 1:
        raise EdgekdError(f"--cpi and --clock-mhz must be positive and --windows at least 1, got {cpi}, {clock_mhz}, "
                          f"{windows}")
    art = load_artifact(folder)  # every file checked against the card's sha256
    for name in (TFLITE_INT8, MODEL_DATA_H, MODEL_DATA_CC, OPS_H, KERNEL_SOURCES, *TRACKER_FILES):
        art.path(name)
    art.card.require("c_identifier")
    ident = art.card.c_identifier
    fusion, tracker = _decoder(art)
    in_channels = art.spec["in_channels"]
    ws = select_windows(data, in_channels, windows)
    tools = build.toolchain(target)
    tree = build.find_tree(tflm, kernels)
    lib = build.build_library(art.folder, target, kernels, tree, tools, cache or build.default_cache(), progress)
    work = keep or build.temp_workdir()
    work.mkdir(parents=True, exist_ok=True)
    try:
        build.write_sources(art.folder, work, ident, target)
        exe = build.link(art.folder, work, lib, target, tools, size_build=False)
        sizes = None
        if target.cortex_m:
            build.link(art.folder, work, lib, target, tools, size_build=True)
            sizes = build.image_sizes(work / "size" / "firmware.map")
        write_windows(ws, exe.parent / "windows.bin")
        execute(exe, target, exe.parent)
        gin = arch.graph_input(art.spec)
        fw = read_results(exe.parent / "results.bin", len(ws), gin.channels * gin.length)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return _record(art, target, kernels, tree, tools, ws, fw, sizes, fusion, tracker, cpi,
                   target.clock_mhz if clock_mhz is None else clock_mhz, data)


def _record(art: Artifact, target: Target, kernels: str, tree: Path, tools: build.Toolchain, ws: WindowSet,
            fw: dict[str, Any],
            sizes: dict[str, dict[str, int]] | None, fusion: FusionConfig, tracker: TrackerConfig,
            cpi: float, clock_mhz: float,
            data: Path | None) -> dict[str, Any]:
    from edgekd.runtimes import TflmSession

    art.card.require("arena_bytes")
    model, arena = art.tflite_bytes(), art.card.arena_bytes
    session = TflmSession(model, arena)
    # The model's int8 input as Python computes it (the window, or edgekd.spectral_input.features: the NumPy
    # reference of the firmware's hr_spectral_features), against what the firmware fed Invoke().
    x_q = session.quantize_input(arch.to_graph_input(art.spec, ws.x))
    q_py = session.run_quantized(x_q)
    out_q = session.out_scale, session.out_zp
    evidence, motion = spectral_evidence(ws), window_motion(ws)
    bpm_py = decode_recordings(fuse(dequantize(q_py, *out_q), evidence, fusion, motion), ws.recording, "causal",
                               tracker)
    bpm_py_on_fw = decode_recordings(fuse(dequantize(fw["out"], *out_q), evidence, fusion, motion), ws.recording,
                                     "causal", tracker)
    bpm_fw = (fw["cls"] + BPM_MIN).astype(np.float32)
    figures: dict[str, Any] = {
        "windows": len(ws),
        "input_mismatches": int((fw["input"] != x_q.reshape(len(ws), -1)).sum()),
        "input_values": int(x_q.size),
        "int8_mismatches": int((fw["out"] != q_py).sum()),
        "int8_values": int(q_py.size),
        "int8_max_abs_diff": int(np.abs(fw["out"].astype(int) - q_py.astype(int)).max()),
        "argmax_mismatches": int((fw["out"].argmax(1) != q_py.argmax(1)).sum()),
        "bpm_mismatches": int((bpm_fw != bpm_py).sum()),
        "decoder_mismatches": int((bpm_fw != bpm_py_on_fw).sum()),
        "mae_fused_bpm": float(np.abs(bpm_fw - ws.hr).mean()),
        "arena_bytes": fw["arena_smallest"],
        "arena_used_bytes": fw["arena_used"],
        "arena_reserved_bytes": arena,
        "flatbuffer_bytes": len(model),
    }
    if sizes is not None:
        figures.update({"flash_bytes": sum(sizes["flash"].values()), "ram_bytes": sum(sizes["ram"].values()),
                        "flash_by_component": dict(sorted(sizes["flash"].items())),
                        "ram_by_component": dict(sorted(sizes["ram"].items()))})
    if target.cortex_m:
        ticks = np.concatenate([fw["invoke"], fw["decode"], [fw["calibration_ticks"]]])
        # A counter that went backwards wraps to ~2^64: refuse it rather than report ~0 instructions.
        if not (0 < ticks).all() or not (ticks < 2 ** 40).all():
            raise EdgekdError(f"{target.name}: implausible instruction counter readings (min {ticks.min()}, max "
                              f"{ticks.max()} ticks); QEMU without -icount?")
        per_tick = CALIBRATION_INSTRUCTIONS / fw["calibration_ticks"]
        invoke, decode = fw["invoke"] * per_tick, fw["decode"] * per_tick
        window = float(np.median(invoke + decode))
        figures.update({
            "instructions_per_inference": float(np.median(invoke)),  # Invoke() alone
            "instructions_per_decode": float(np.median(decode)),  # evidence (or features) + fuse + tracker update
            "instructions_per_window": window,  # what one heart-rate reading costs: model + decoder
            "instructions_per_window_max": float((invoke + decode).max()),
            "instructions_per_tick": per_tick,
            "stack_bytes": fw["stack_bytes"],
            "latency_ms_estimate": {"ms": window * cpi / (clock_mhz * 1e3), "clock_mhz": clock_mhz, "cpi": cpi,
                                    "note": "estimate: QEMU instructions per window (Invoke + decoder) x CPI / clock; "
                                            "no caches, wait states or memory stalls modelled"}})
    settings = {"target": target.name, "kernels": kernels, "machine": target.machine, "tflm_tree": str(tree),
                "compiler": build.compiler_version(tools), "cpu_flags": list(target.cpu_flags),
                "optimisation": {"core": build.CORE_OPT, "kernels": build.KERNEL_OPT},
                "windows_from": str(data) if data else "synthetic default",
                "size_build": "newlib-nano, no stdio, one inference (--gc-sections)" if target.cortex_m else None,
                "stack": "high-water mark of the run build (semihosting stdio included)" if target.cortex_m else None}
    device = records.host_device() if not target.cortex_m else {"kind": "qemu", "name": target.machine,
                                                                "core": target.name}
    return records.make_record(art.describe(), f"firmware-{target.name}", device, settings, figures)
