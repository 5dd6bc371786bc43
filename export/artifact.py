"""`edgekd export`: build a verified artifact folder models/<name>/ from a run or checkpoint.

Everything is built in a hidden temporary folder beside the target and renamed into place at the end, so a
failure at any step (a check, a converter error, a full disk) leaves no partial artifact and an existing
artifact replaced with --force stays intact until the new one is complete.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edgekd import __version__
from edgekd.atomic import NO_SPACE, WriteError, disk_full, ensure_dir, public_mode, write_bytes, write_error, write_json, write_text
from edgekd.bpm import BPM_MIN
from edgekd.checkpoint import (CONFIG, WEIGHTS, load_model, model_folder, save_weights, shipped_decoder,
                               shipped_tracker)
from edgekd.errors import EdgekdError
from edgekd.evaluate import MAE_KEYS, mae_report
from edgekd.fusion import FusionConfig, spectral_evidence
from edgekd.layout import (CARD, CARD_MD, KERNEL_SOURCES, MODEL_DATA_CC, MODEL_DATA_H, MODEL_DATA_HPP, ONNX_FP32,
                           ONNX_INT8, OPS_H, TFLITE_INT8, TRACKER_FILES, file_record)
from edgekd import arch
from edgekd.model import final_width, paper_param_count
from edgekd.model_card import FIELDS, FP32_FIELDS, ModelCard
from edgekd.runtimes import FP32_REFERENCE, LiteRTSession, OnnxSession, TflmSession, flatbuffer_ops, int8_io
from edgekd.tracking import TrackerConfig, dequantize
from edgekd.windowset import WindowSet

ONNX_TOLERANCE = 1e-4  # max abs logit difference PyTorch vs ONNX Runtime (FP32)
# Package data, so an installed wheel ships the C it copies (a folder on disk: setuptools installs folders).
TRACKER_DIR = Path(str(resources.files("export") / "tracker"))
PARTIAL = ".partial"  # suffix of the hidden folder an export is built in
DEBUG_WINDOWS = 32  # windows for the per-layer quantisation debugger (it runs float and int8 side by side)


def export_artifact(source: Path, out: Path, *, int8: bool = True, data: Path | None = None,
                    calib: Path | None = None, evaluate: Path | None = None, name: str | None = None,
                    force: bool = False, dynamic_batch: bool = True, progress: bool = True,
                    fusion: FusionConfig | None = None, tracker: TrackerConfig | None = None) -> dict[str, Any]:
    """Export the model in ``source`` (run/artifact folder or .safetensors) to ``out`` with the decoder
    ``fusion`` and ``tracker`` (None: what the source ships with, edgekd.checkpoint.shipped_decoder /
    shipped_tracker); returns the card."""
    source, out = Path(source), Path(out)
    if out.exists() and not force:
        raise EdgekdError(f"{out}: already exists (use --force to replace it)")
    model = load_model(source)
    folder = model_folder(source)
    if fusion is None:
        fusion = shipped_decoder(folder)
    if tracker is None:
        tracker = shipped_tracker(folder)
    name = name or out.name
    ensure_dir(out.parent)
    _remove_stale(out)
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=PARTIAL, dir=out.parent))
    except OSError as exc:
        raise write_error(out, exc) from None
    try:
        card = _build(model, folder, work, name, int8, data, calib, evaluate, dynamic_batch, progress, fusion,
                      tracker)
        public_mode(work)  # mkdtemp makes it 0700; the artifact gets the modes the umask asks for
        _replace(work, out)
    except WriteError as exc:
        shutil.rmtree(work, ignore_errors=True)
        if exc.no_space:
            raise EdgekdError(f"{out}: disk full while exporting; nothing was written") from None
        raise EdgekdError(str(exc).replace(str(work), str(out))) from None
    except EdgekdError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(work, ignore_errors=True)
        # Converters hide a full disk behind their own errors (a truncated ONNX file fails to parse).
        if getattr(exc, "errno", None) in NO_SPACE or disk_full(out.parent):
            raise EdgekdError(f"{out}: disk full while exporting; nothing was written") from None
        raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return card


def _remove_stale(out: Path) -> None:
    """Remove what an export of ``out`` killed mid-way left beside it: its hidden build folder (mkdtemp's
    8 random characters) and a replaced artifact not yet deleted; never another target's (``out.v2``)."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.(?:[a-z0-9_]{{8}}{re.escape(PARTIAL)}|old-\d+)$")
    for stale in out.parent.iterdir():
        if stale.is_dir() and pattern.match(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _replace(work: Path, out: Path) -> None:
    """Move the finished folder into place; an old artifact is removed only after the new one is there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{time.time_ns()}")
        out.rename(old)
    try:
        work.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)  # the previous artifact stays in place
        raise
    if old is not None:
        shutil.rmtree(old)


def _build(model: torch.nn.Module, folder: Path, work: Path, name: str, int8: bool, data: Path | None,
           calib: Path | None, evaluate: Path | None, dynamic_batch: bool, progress: bool,
           fusion: FusionConfig, tracker: TrackerConfig) -> dict[str, Any]:
    from export import windows
    from export.onnx_export import export_onnx, onnx_max_abs_diff

    t0 = time.perf_counter()
    steps = ["windows", "onnx"] + (["onnx-int8", "tflite", "arena", "firmware", "evaluate", "per-layer"]
                                   if int8 else ["evaluate"])
    bar = tqdm(total=len(steps), desc=f"export {name}", disable=None if progress else True, leave=False, dynamic_ncols=True)

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    cal, ev = windows.select(folder, model.in_channels, data, calib, evaluate)
    step("windows")
    save_weights(model, work / WEIGHTS)
    config = windows.source_config(folder) or {"model": model.config()}
    write_json(work / CONFIG, config)
    batch = None if dynamic_batch else 1
    spec = model.config()
    # What the exported graphs read: the window, or a spectral student's features (computed once, as the C would).
    cal_in, ev_in = arch.to_graph_input(spec, cal.x), arch.to_graph_input(spec, ev.x)
    export_onnx(model, work / ONNX_FP32, dynamic_batch)
    onnx_diff = onnx_max_abs_diff(model, work / ONNX_FP32, ev_in[:256], batch)
    if not onnx_diff < ONNX_TOLERANCE:
        raise EdgekdError(f"ONNX FP32 differs from PyTorch by {onnx_diff:.2e} (> {ONNX_TOLERANCE:g})")
    step("onnx")
    with torch.no_grad():
        fp32 = model(torch.from_numpy(ev.x)).numpy()
    logits = {"torch": fp32, "onnx": OnnxSession(work / ONNX_FP32, batch=batch).logits(ev_in)}  # edgekd.runtimes names
    card: dict[str, Any] = {
        "name": name, "edgekd_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {"path": str(folder), "config": config},
        "data": {"calibration": cal.description, "evaluation": ev.description},
        "architecture": _architecture(spec),
        "bpm_min": BPM_MIN,
        "onnx": {"dynamic_batch": dynamic_batch, "max_abs_diff_vs_torch": onnx_diff},
    }
    if int8:
        card.update(_build_int8(model, work, name, cal_in, ev_in, batch, logits, step, fusion, tracker))
    card["accuracy"] = _accuracy(logits, ev.ws, fusion, tracker)
    if int8:
        from export.tflite_int8 import layer_errors

        card["per_layer_quantization_error"] = layer_errors(model, cal_in, ev_in[:DEBUG_WINDOWS])
        step("per-layer")
    else:
        step("evaluate")
    # Size and sha256 of every file (card.json/.md come next): readers check the files against these.
    card["files"] = {p.name: file_record(p) for p in sorted(work.iterdir())}
    card["export_seconds"] = round(time.perf_counter() - t0, 2)
    # The card reads back as the ModelCard its readers (gate, rank, bench, firmware) expect, or nothing is written.
    ModelCard.parse(card, work / CARD).require(*(FIELDS if int8 else FP32_FIELDS))
    write_json(work / CARD, card)
    from export.card import card_md

    write_text(work / CARD_MD, card_md(card))
    bar.close()
    return card


def _build_int8(model: torch.nn.Module, work: Path, name: str, cal_in: np.ndarray, ev_in: np.ndarray,
                batch: int | None, logits: dict[str, np.ndarray], step, fusion: FusionConfig,
                tracker: TrackerConfig) -> dict[str, Any]:
    """The INT8 files, calibrated on ``cal_in`` and scored on ``ev_in`` (the graph's input of the calibration
    and evaluation windows)."""
    from export.c_arrays import QuantParams, c_identifier, model_data_cc, model_data_h, model_data_hpp, ops_h
    from edgekd.tflm_ops import sources_manifest
    from export.checks import check_tflm_ops
    from export.onnx_int8 import quantize_onnx
    from export.tflite_int8 import convert_int8
    from edgekd.tflm_host import arena_bytes

    quantize_onnx(work / ONNX_FP32, work / ONNX_INT8, cal_in, batch)
    logits["onnx-int8"] = OnnxSession(work / ONNX_INT8, batch=batch).logits(ev_in)
    step("onnx-int8")
    flatbuffer, mirror_diff = convert_int8(model, cal_in, ev_in[:64])
    ops = check_tflm_ops(flatbuffer_ops(flatbuffer), f"{name}/model_int8.tflite")
    write_bytes(work / TFLITE_INT8, flatbuffer)
    step("tflite")
    arena_min, arena = arena_bytes(flatbuffer)
    step("arena")
    (in_s, in_z), (out_s, out_z) = int8_io(flatbuffer)
    ident = c_identifier(name)
    gin = arch.graph_input(model.config())
    write_text(work / MODEL_DATA_H, model_data_h(ident, len(flatbuffer), arena, arena_min, model.in_channels, gin,
                                                   QuantParams(in_s, in_z, out_s, out_z), fusion, tracker))
    write_text(work / MODEL_DATA_HPP, model_data_hpp(ident))
    write_text(work / MODEL_DATA_CC, model_data_cc(ident, flatbuffer))
    write_text(work / OPS_H, ops_h(ident, ops))
    write_text(work / KERNEL_SOURCES, sources_manifest(ops))
    for f in TRACKER_FILES:  # an artifact without the decoder C is not the shipped decoder: fail, never skip
        if not (TRACKER_DIR / f).is_file():
            raise EdgekdError(f"{TRACKER_DIR / f}: missing from the edgekd installation; reinstall edgekd")
        write_bytes(work / f, (TRACKER_DIR / f).read_bytes())
    step("firmware")
    lite, micro = LiteRTSession(flatbuffer), TflmSession(flatbuffer, arena)
    q_lite, q_tflm = lite.int8_outputs(ev_in), micro.int8_outputs(ev_in)
    logits["litert"] = dequantize(q_lite, out_s, out_z)
    logits["tflm"] = dequantize(q_tflm, out_s, out_z)
    step("evaluate")
    return {
        "tflite": {"keras_mirror_max_abs_diff": mirror_diff, "ops": ops,
                   "input": {"shape": [1, gin.length, gin.channels], "dtype": "int8", "scale": in_s,
                             "zero_point": in_z, "name": gin.name, "computed_by": gin.front or "the window"},
                   "output": {"shape": [1, model.n_classes], "dtype": "int8", "scale": out_s, "zero_point": out_z}},
        "tflm": {"arena_bytes": arena, "arena_min_bytes": arena_min, "ops": ops, "c_identifier": ident,
                 "litert_tflm_identical_values": float((q_lite == q_tflm).mean()),
                 "litert_tflm_identical_windows": float((q_lite == q_tflm).all(axis=1).mean()),
                 "litert_tflm_argmax_agreement": float((q_lite.argmax(1) == q_tflm.argmax(1)).mean()),
                 "litert_tflm_max_abs_int8_diff": int(np.abs(q_lite.astype(int) - q_tflm.astype(int)).max())},
        "firmware_extras": list(TRACKER_FILES),

    }


def _architecture(spec: dict[str, Any]) -> dict[str, Any]:
    """The card's architecture entry: the spec, what it is, its deployed parameters and MACs per window."""
    gin = arch.graph_input(spec)
    out = {**spec, "family": arch.family(spec), "description": arch.describe(spec), "params": arch.params(spec),
           "macs": arch.macs(spec), "model_input": {"name": gin.name, "shape": [gin.channels, gin.length],
                                                   "computed_by": gin.front or "the window",
                                                   "front_end_macs": gin.front_macs}}
    if arch.family(spec) == "resnet":  # the paper's figures (WildPPG Table 1)
        out.update(final_width=final_width(spec["blocks"]), paper_params=paper_param_count(spec["blocks"],
                                                                                          spec["in_channels"]))
    return out


def _accuracy(logits: dict[str, np.ndarray], ev: WindowSet, fusion: FusionConfig, tracker: TrackerConfig
              ) -> dict[str, Any]:
    """Every decoding's MAE per runtime on the same held-out windows (``mae_fused`` is the decoder firmware
    runs: hr_spectral.c + hr_tracker.c with the recorded settings), what it was measured on, so a gate can
    refuse a number backed by a handful of windows, and argmax agreement with FP32."""
    ref = logits[FP32_REFERENCE].argmax(axis=1)
    evidence = spectral_evidence(ev)  # the same windows for every runtime: computed once
    per_runtime = {}
    for key, v in logits.items():
        report = mae_report(v, ev, fusion, evidence, tracker)
        per_runtime[key] = {m: report[m] for m in MAE_KEYS}
    return {
        "decoder": {"fusion": asdict(fusion), "tracker": asdict(tracker)},
        "measured_on": {"windows": len(ev), "subjects": len(ev.subjects()), "recordings": len(set(ev.recording)),
                        "datasets": ev.datasets()},
        "mae_bpm": per_runtime,
        "argmax_agreement_vs_fp32": {k: float((v.argmax(axis=1) == ref).mean()) for k, v in logits.items()
                                     if k != FP32_REFERENCE},
    }
