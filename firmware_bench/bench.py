"""Benchmark one artifact on the asked runtimes; returns one record per runtime plus a ``static`` record.

Runtimes:  torch (PyTorch FP32 on CPU), cuda (PyTorch FP32 on the GPU), onnx (ORT CPU FP32),
onnx-int8 (ORT CPU INT8), litert (LiteRT INT8 on the CPU), tflm (TFLite Micro INT8 on the host).
The ``static`` record holds flash/RAM/params/MACs and the MCU estimates (no runtime measures those).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.layout import TFLITE_INT8
from edgekd.runtimes import RUNTIMES, TflmSession, open_artifact
from edgekd import tflm_host
from firmware_bench import mcu, records, vela
from firmware_bench.artifact import Artifact, load_artifact


def default_runtimes(artifact: Artifact) -> list[str]:
    """Every runtime whose file the artifact has; cuda only when torch sees a GPU."""
    import torch

    return [r for r in RUNTIMES if artifact.has(RUNTIMES[r].file) and (r != "cuda" or torch.cuda.is_available())]


def _check_runtimes(artifact: Artifact, runtimes: list[str]) -> None:
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise EdgekdError(f"unknown runtime {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    for r in runtimes:
        artifact.path(RUNTIMES[r].file)  # a clean error naming the missing file, before any work starts


def verify_card_arena(model: bytes, card_arena: int, card: str = "card.json") -> dict[str, Any]:
    """The card's arena must allocate and run under TFLM; half of it must be refused (cleanly)."""
    try:
        tflm_host.check_runs(model, card_arena)
    except EdgekdError as exc:
        raise EdgekdError(f"{card}: the recorded arena ({card_arena} bytes) is too small for the model: {exc}") \
            from None
    half = tflm_host.align(card_arena // 2)
    try:
        tflm_host.interpreter(model, half)
    except EdgekdError as exc:
        return {"card_arena_bytes": card_arena, "card_arena_runs": True, "half_arena_bytes": half,
                "half_arena_refused": True, "half_arena_message": str(exc)}
    return {"card_arena_bytes": card_arena, "card_arena_runs": True, "half_arena_bytes": half,
            "half_arena_refused": False, "half_arena_message": None}


def _measure(artifact: Artifact, runtime: str, repeat: int, threads: int, large_batch: int
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(device, figures) of one runtime, timed by its edgekd.runtimes adapter."""
    if runtime != "tflm":
        session = open_artifact(artifact.folder, runtime, threads)
        info = session.device()
        device = info if info.get("kind") == "cuda" else records.host_device(**info)
        return device, session.time(repeat, large_batch)
    # tflm: single-threaded by design (as on the MCU), timed in the measured minimum arena (the card's
    # arena_min_bytes); the card's own arena is verified to run, and half of it to be refused
    model_bytes = artifact.tflite_bytes()
    arena = tflm_host.arena_bytes(model_bytes)[0]
    figures: dict[str, Any] = {**TflmSession(model_bytes, arena).time(repeat, large_batch),
                               "arena_bytes_measured": arena,
                               "kernels": "TFLM kernels built for this host CPU: not MCU time (see static.mcu)"}
    card_arena = artifact.card.get("arena_bytes")
    if card_arena is not None:
        figures.update(verify_card_arena(model_bytes, card_arena, str(artifact.folder / "card.json")))
    return records.host_device(threads=1), figures


def run_bench(folder: str | Path, runtimes: list[str] | None = None, mcu_targets: list[str] | None = None,
              repeat: int = 200, threads: int = 1, large_batch: int = 256,
              progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure an artifact; the records are returned, not written (see ``records.write_records``)."""
    from firmware_bench.static import static_costs

    if threads < 1 or large_batch < 1 or repeat < 1:
        raise EdgekdError("--threads, --batch and --repeat must be >= 1")
    artifact = load_artifact(folder)
    runtimes = list(runtimes) if runtimes else default_runtimes(artifact)
    _check_runtimes(artifact, runtimes)
    targets = mcu.select(mcu_targets)
    ident = artifact.describe()
    settings = {"repeat": repeat, "threads": threads, "large_batch": large_batch,
                "input": "seeded random windows (timing does not depend on values)"}
    out = []
    for runtime in runtimes:
        if progress:
            progress(runtime)
        device, figures = _measure(artifact, runtime, repeat, threads, large_batch)
        run_settings = {**settings, "threads": 1} if runtime == "tflm" else settings
        out.append(records.make_record(ident, runtime, device, run_settings, figures))
    if progress:
        progress("static")
    costs = static_costs(artifact)
    estimates = [mcu.estimate(costs["macs"], t) for t in targets]
    out.append(records.make_record(ident, "static", records.host_device(), {"mcu_table": str(mcu.TARGETS_FILE)},
                                   {**costs, "mcu": estimates, "mcu_source": targets[0].source if targets else "",
                                    "ethos_u": vela.estimate(artifact.tflite_bytes()) if artifact.has(TFLITE_INT8)
                                    else {"status": f"no {TFLITE_INT8}: no Ethos-U estimate"}}))
    return out
