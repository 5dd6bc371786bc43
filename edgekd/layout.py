"""What a run folder and an artifact folder hold, by file name, and the checks that they really hold it.

A run folder (:mod:`edgekd.runs`) is complete only when ``metrics.json`` exists; it records the sha256 of
the weights it scored, so a re-run killed after rewriting ``config.json`` or the weights is caught. An
artifact folder (``edgekd export``) is described by ``card.json``, whose ``files`` entry records the size
and sha256 of every file beside it: whoever reads an artifact (gate, bench, evaluate, export) checks the
files it uses against the card first, so a deleted, truncated or swapped file is refused by name. What the card's
readers take from it is typed in :mod:`edgekd.model_card`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.tflm_ops import KERNEL_SETS

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
METRICS = "metrics.json"
LOG = "log.jsonl"
CARD = "card.json"
CARD_MD = "card.md"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model_int8.onnx"
TFLITE_INT8 = "model_int8.tflite"
MODEL_DATA_H = "model_data.h"
MODEL_DATA_CC = "model_data.cc"
MODEL_DATA_HPP = "model_data.hpp"
OPS_H = "ops.h"
KERNEL_SOURCES = "kernel_sources.txt"
# The decoder C export copies into every artifact (package data of export/tracker/).
TRACKER_FILES = ("hr_tracker.c", "hr_tracker.h", "hr_spectral.c", "hr_spectral.h", "hr_spectral_tables.h")
BENCH_DIR = "bench"  # benchmark and firmware records of an artifact: ARTIFACT/bench/RUNTIME.json
TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier at bytes 4..8
# Written after the card (they describe it), so the card cannot record their hashes.
NOT_IN_CARD = (CARD, CARD_MD)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """What a card records of one file: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def verify_artifact(folder: str | Path, card: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Path]:
    """Check every file ``card["files"]`` lists against the folder: present, same size, same sha256.

    ``required`` names files the caller is about to use; the card must list them. Returns name -> path.
    Raises EdgekdError naming the first file that is missing or differs.
    """
    folder = Path(folder)
    card_path = folder / CARD
    files = card.get("files")
    if not isinstance(files, dict) or not files:
        raise EdgekdError(f"{card_path}: card lists no files (not an edgekd artifact?)")
    out: dict[str, Path] = {}
    for name, rec in files.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("sha256"), str) \
                or isinstance(rec.get("bytes"), bool) or not isinstance(rec.get("bytes"), int):
            raise EdgekdError(f"{card_path}: no size and sha256 recorded for {name} (card written by an older "
                              f"edgekd, or edited); re-export the artifact")
        if rec["bytes"] <= 0:
            raise EdgekdError(f"{card_path}: {name} has a recorded size of {rec['bytes']} bytes; refusing it")
        path = folder / name
        if Path(name).name != name or name in NOT_IN_CARD:
            raise EdgekdError(f"{card_path}: bad file name {name!r} in 'files'")
        if not path.is_file():
            raise EdgekdError(f"{path}: missing from the artifact (card.json lists it); re-export")
        size = path.stat().st_size
        if size != rec["bytes"]:
            raise EdgekdError(f"{path}: {size} bytes, card.json records {rec['bytes']} (corrupt or modified); "
                              f"re-export")
        if sha256_file(path) != rec["sha256"]:
            raise EdgekdError(f"{path}: sha256 differs from card.json (corrupt or modified); re-export")
        out[name] = path
    for name in required:
        if name not in out:
            raise EdgekdError(f"{folder / name}: not part of this artifact (card.json does not list it; "
                              f"export with --int8 for the INT8 files)")
    return out


def read_flatbuffer(path: Path) -> bytes:
    """The bytes of a TFLite flatbuffer file; EdgekdError naming it when it lacks the 'TFL3' identifier."""
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != TFLITE_MAGIC:
        raise EdgekdError(f"{path}: not a TFLite flatbuffer (no 'TFL3' identifier); the file is corrupt")
    return data


def reserved_arena(model_data_h: Path) -> int | None:
    """The arena a firmware reserves: ``NAME_ARENA_SIZE`` of an artifact's model_data.h (a hashed file, unlike the
    card), or None when it defines none."""
    found = re.search(r"^#define \w+_ARENA_SIZE (\d+)$", model_data_h.read_text(errors="replace"), re.M)
    return int(found.group(1)) if found else None


def read_json_object(path: Path, problem: str = "not valid JSON") -> dict[str, Any]:
    """A JSON object from ``path``; EdgekdError "PATH: PROBLEM (why)" when unreadable or not an object."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgekdError(f"{path}: {problem} ({exc})") from None
    if not isinstance(doc, dict):
        raise EdgekdError(f"{path}: must hold a JSON object")
    return doc


def check_model_folder(folder: str | Path) -> None:
    """Refuse a folder whose weights cannot be trusted: an interrupted run, or an artifact whose files
    differ from its card. A folder with only weights (and maybe a config without a training fold) passes."""
    folder = Path(folder)
    if (folder / CARD).is_file():
        verify_artifact(folder, read_json_object(folder / CARD), required=(WEIGHTS,))
        return
    cfg_path = folder / CONFIG
    if not cfg_path.is_file() or "fold" not in read_json_object(cfg_path):
        return  # a bare checkpoint, not a training run
    metrics = folder / METRICS
    if not metrics.is_file():
        raise EdgekdError(f"run {folder} is incomplete (training was interrupted); re-run or delete it")
    recorded = read_json_object(metrics).get("weights_sha256")
    weights = folder / WEIGHTS
    if recorded is not None and (not weights.is_file() or sha256_file(weights) != recorded):
        raise EdgekdError(f"run {folder}: {WEIGHTS} is not the model its {METRICS} scored (a later run was "
                          f"interrupted); re-run or delete it")


# Benchmark records (firmware_bench writes them; rank and the gate read them).
BENCH_SCHEMA = "edgekd.bench/1"
FIRMWARE_FIGURES = ("flash_bytes", "ram_bytes", "arena_bytes", "instructions_per_window")
MIN_FIRMWARE_WINDOWS = 4  # a record must have compared at least this many windows to stand for the model


def files_sha256(card: dict[str, Any]) -> str:
    """One hash of every file the card lists (names, sizes, sha256s): a record made from these files, and no
    other export of them (a new decoder C, another kernel list), carries it."""
    return hashlib.sha256(json.dumps(card.get("files"), sort_keys=True).encode()).hexdigest()


def firmware_record_path(folder: str | Path, target: str) -> Path:
    return Path(folder) / BENCH_DIR / f"firmware-{target}.json"


def read_firmware_record(folder: str | Path, card: dict[str, Any], target: str,
                         kernels: str | None = None) -> dict[str, Any]:
    """The figures of ``ARTIFACT/bench/firmware-TARGET.json`` (`edgekd firmware`), refused unless the record
    was made from exactly this artifact's files (the card's hashes, which the caller verified against the files),
    with a known kernel set (``kernels`` when given), compared at least MIN_FIRMWARE_WINDOWS windows with zero
    model-input, int8 and heart-rate mismatches, and holds positive figures (an image no smaller than the flatbuffer)."""

    path = firmware_record_path(folder, target)
    if not path.is_file():
        raise EdgekdError(f"{path}: no firmware record (run `edgekd firmware {folder} --target {target}`)")
    rec = read_json_object(path, "corrupt firmware record")
    fb = card.get("files", {}).get(TFLITE_INT8, {}) if isinstance(card.get("files"), dict) else {}
    art = rec.get("artifact") if isinstance(rec.get("artifact"), dict) else {}
    settings = rec.get("settings") if isinstance(rec.get("settings"), dict) else {}
    figures = rec.get("figures") if isinstance(rec.get("figures"), dict) else {}
    if rec.get("schema") != BENCH_SCHEMA or rec.get("runtime") != f"firmware-{target}":
        raise EdgekdError(f"{path}: not an edgekd firmware record for {target}")
    if not fb.get("sha256") or art.get("tflite_sha256") != fb.get("sha256") \
            or art.get("files_sha256") != files_sha256(card):
        raise EdgekdError(f"{path}: made from other files than this artifact's (stale record; re-run `edgekd "
                          f"firmware`)")
    if settings.get("kernels") not in KERNEL_SETS or (kernels is not None and settings.get("kernels") != kernels):
        raise EdgekdError(f"{path}: built with {settings.get('kernels')!r} kernels, the budget asks for "
                          f"{kernels or ' or '.join(KERNEL_SETS)}")
    windows = figures.get("windows")
    if type(windows) is not int or windows < MIN_FIRMWARE_WINDOWS:
        raise EdgekdError(f"{path}: compared {windows!r} windows; a record needs at least {MIN_FIRMWARE_WINDOWS}")
    for key in ("input_mismatches", "int8_mismatches", "bpm_mismatches"):
        if type(figures.get(key)) is not int or figures[key] != 0:
            raise EdgekdError(f"{path}: {key} = {figures.get(key)!r}: the firmware does not reproduce the Python "
                              f"interpreter, so its figures cannot stand for the model")
    for key in FIRMWARE_FIGURES:
        v = figures.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise EdgekdError(f"{path}: figures/{key} = {v!r}, not a positive number")
    if figures["flash_bytes"] < fb.get("bytes", 0):
        raise EdgekdError(f"{path}: an image of {figures['flash_bytes']} B cannot hold the {fb.get('bytes')} B "
                          f"flatbuffer")
    return {**figures, "kernels": settings["kernels"], "path": str(path)}
