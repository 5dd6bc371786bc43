"""Rank students by MAE against deployment cost: the Pareto front, and what fits a budget.

Candidates are the (teacher, student, strategy) groups of a sweep's results with MAE averaged over folds and
seeds, or of leave-one-dataset-out study records (edgekd.lodo) averaged over held-out data sets and seeds, there
``mae_fused`` being the decoder chosen nested. A student's cost depends only on its architecture, so costs are
looked up by its label (edgekd.arch.student_label):

- ``flash``: the INT8 flatbuffer bytes from an artifact's card.json (``--bench DIR``), else the size
  table's INT8 weight-bytes estimate (edgekd.model.size_table: the flatbuffer adds a few KB of graph).
- ``arena``: the TFLM arena bytes from card.json (needs ``--bench DIR``).
- ``mcu-latency``: MACs x cycles/MAC / clock on an MCU from edgekd/mcu_targets.toml (``--mcu`` or the budget's).
- ``latency``: measured median per-window latency from benchmark records (``--bench DIR``; runtime tflm by default).
- ``instructions``: instructions per window measured in firmware (``--bench DIR --firmware TARGET``).

With ``--firmware TARGET`` the records `edgekd firmware` wrote replace the estimates where an artifact has one:
flash is the linked image, arena the target's, and mcu-latency measured instructions / the MCU clock (CPI 1).
A stale or not bit-exact record is an error, not skipped.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from edgekd.budget import DEFAULT_MCU_TARGETS, KB, Budget, mcu_target
from edgekd.errors import EdgekdError
from edgekd.layout import BENCH_SCHEMA, CARD, firmware_record_path, read_firmware_record, verify_artifact
from edgekd.model_card import read_card
from edgekd import arch
from edgekd.model import size_table
from edgekd.study_report import read_record, record_kind
from edgekd.sweep import read_results

# Each size has one name: weights = INT8 weight bytes from the size table (no artifact needed), flatbuffer = the
# exported .tflite (card.json), flash = the linked firmware image (`edgekd firmware` records only).
COSTS: dict[str, tuple[str, str]] = {  # cost name -> (row column, axis label)
    "weights": ("weights_kb", "INT8 weights (KB, estimate)"),
    "flatbuffer": ("flatbuffer_kb", "INT8 flatbuffer (KB)"),
    "flash": ("flash_kb", "flash, linked firmware image (KB)"),
    "arena": ("arena_kb", "TFLM arena (KB)"),
    "mcu-latency": ("mcu_latency_ms", "MCU latency per window (ms, est.)"),
    "latency": ("latency_ms", "measured latency per window (ms)"),
    "instructions": ("mcu_instructions_m", "instructions per window (M, measured in firmware)"),
}
# Benchmark records (firmware_bench/records.py): schema tag, and where the per-window latency sits.
BENCH_LATENCY = ("figures", "batch_1", "median_ms")
BENCH_BLOCKS = ("artifact", "blocks")
# Budget limit -> the candidate column it bounds (mae_bpm bounds the ranked metric; INT8 drop needs cards).
LIMIT_COLUMNS = {"flatbuffer_kb": "flatbuffer_kb", "flash_kb": "flash_kb", "arena_kb": "arena_kb",
                 "latency_ms": "mcu_latency_ms"}


def read_sources(paths: list[Path]) -> tuple[list[dict[str, Any]], str]:
    """The rows to rank and what they are (``"sweep"`` or ``"lodo"``): sweep results tables (or folders), or
    leave-one-dataset-out study records, one kind at a time (their MAEs are measured on different data), and
    records only over the same held-out sets (a mean over other sets is another number)."""
    per: dict[Path, list[dict[str, Any]]] = {}
    kinds, sets = set(), {}
    if len(set(paths)) < len(paths):
        raise EdgekdError(f"rank: {next(p for p in paths if paths.count(p) > 1)} is given twice; give each study once")
    for path in paths:
        if _is_study_record(path):
            record = read_record(path)
            if record["study"] != "lodo":
                raise EdgekdError(f"{path}: a {record['study']} record has no MAE per student to rank; give a "
                                  f"leave-one-dataset-out record (edgekd lodo) or a sweep's results")
            mine = lodo_rows(record, path)
            kinds.add("lodo")
            sets[path] = sorted(map(str, record.get("sets") or []))
        else:
            mine = read_results(path)
            kinds.add("sweep")
        per[path] = mine
    if len(kinds) > 1:
        raise EdgekdError("rank: give sweep results or leave-one-dataset-out records, not both (their MAEs are "
                          "measured on different data)")
    if len({tuple(v) for v in sets.values()}) > 1:
        listed = "; ".join(f"{p}: {', '.join(v)}" for p, v in sets.items())
        raise EdgekdError(f"rank: the study records hold out different data sets ({listed})")
    rows: list[dict[str, Any]] = []
    seen: dict[Any, Path] = {}
    for path, mine in per.items():
        for r in mine:  # one measurement counted once: the same file twice, or two studies of one student
            key = r.get("run") or (r["student"], r.get("teacher"), r["strategy"], r["fold"], r["seed"])
            if seen.get(key, path) != path:
                raise EdgekdError(f"rank: {path} and {seen[key]} both hold {r['student']} {r['strategy']} fold "
                                  f"{r['fold']} seed {r['seed']}; give each study of a student once")
            seen[key] = path
        rows += mine
    return rows, kinds.pop()


def _is_study_record(path: Path) -> bool:
    if path.suffix != ".json":
        return False
    try:
        return record_kind(path) is not None
    except EdgekdError:
        return False  # read_results names the problem


def lodo_rows(record: dict[str, Any], source: Path) -> list[dict[str, Any]]:
    """A leave-one-dataset-out record's rows as results rows: one per student, strategy, seed and held-out set
    (its fold), scored argmax, by the causal tracker, and fused with the decoder chosen nested (``mae_fused``)."""
    def number(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{v!r} is not a number")
        return float(v)

    try:
        if not isinstance(record["sets"], list) or not record["rows"]:
            raise ValueError("no held-out sets or no rows")
        teacher = int(record["settings"]["teacher_blocks"])
        return [{"student": arch.student_label(r["spec"]), "teacher": None if r["strategy"] == "scratch" else teacher,
                 "strategy": str(r["strategy"]), "fold": str(r["held_out"]), "seed": int(r["seed"]), "in_channels": 4,
                 "mae_argmax": number(r["argmax"]), "mae_causal": number(r["causal"]),
                 "mae_fused": number(r["nested"]), "mae_hmm": number(r["hmm"])} for r in record["rows"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgekdError(f"{source}: incomplete lodo record ({type(exc).__name__}: {exc})") from None


def candidates(rows: list[dict[str, Any]], metric: str = "mae_argmax") -> list[dict[str, Any]]:
    """Mean (and spread) of ``metric`` per (teacher, student, strategy, in_channels, role) over folds and seeds; a
    sweep's teacher-only runs (role "teacher", trained with its [teacher] settings) are their own candidates."""
    groups: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in rows:
        if r.get(metric) is not None:
            student = arch.student_label({**arch.parse_student(r["student"]), "in_channels": 1})
            groups[(r.get("teacher"), student, str(r["strategy"]), int(r.get("in_channels") or 1),
                    r.get("role") or None)].append(float(r[metric]))
    if not groups:
        raise EdgekdError(f"no runs with '{metric}' in the results")
    out = []
    for (teacher, student, strategy, chans, role), vals in groups.items():
        size = f"{student}b" if isinstance(student, int) else str(student)
        name = (f"{size} {strategy}" + ("" if teacher is None else f" <- {teacher}b")
                + (f" ({role})" if role else ""))
        out.append({"name": name, "teacher": teacher, "student": student, "strategy": strategy, "in_channels": chans,
                    metric: mean(vals), f"{metric}_std": stdev(vals) if len(vals) > 1 else None, "runs": len(vals)})
    return out


def _dig(doc: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _visible(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` matching ``pattern``, skipping hidden files and folders: a killed export's
    ``.NAME.*.partial`` folder or an editor's backup is never averaged in."""
    return sorted(p for p in root.rglob(pattern) if not any(part.startswith(".") for part in p.relative_to(root).parts))


def bench_costs(bench_dir: str | Path, runtime: str = "tflm", firmware: str | None = None
                ) -> dict[int | str, dict[str, float]]:
    """student label (edgekd.arch) -> {flatbuffer_kb, arena_kb, latency_ms[, flash_kb, mcu_instructions_m]} from
    card.json files and benchmark records under ``bench_dir``; with ``firmware`` (a target), only artifacts with a
    firmware record for it count, and their arena is the one measured on the target."""
    root = Path(bench_dir)
    if not root.is_dir():
        raise EdgekdError(f"{root}: no such folder of artifacts / benchmark records")
    found: dict[int | str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for card_path in _visible(root, CARD):
        card = read_card(card_path)
        verify_artifact(card_path.parent, card.doc)  # a card is only as good as the files it describes
        card.require("blocks")
        student = _label(card.architecture, card_path)
        sizes = {"flatbuffer_kb": card.get("flatbuffer_bytes")}  # bytes
        if not firmware:
            sizes["arena_kb"] = card.get("arena_bytes")
        elif firmware_record_path(card_path.parent, firmware).is_file():
            fw = read_firmware_record(card_path.parent, card.doc, firmware)  # stale or not bit-exact: an error
            sizes.update(flash_kb=fw["flash_bytes"], arena_kb=fw["arena_bytes"])
            found[student]["mcu_instructions_m"].append(fw["instructions_per_window"] / 1e6)
        else:  # measured figures only: an artifact without a record for the target is left out, not mixed in
            continue
        for col, v in sizes.items():
            if v is not None:
                found[student][col].append(v / KB)
    for path in _visible(root, "*.json"):
        if path.name == CARD:
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EdgekdError(f"{path}: unreadable JSON ({exc})") from None
        if not isinstance(rec, dict) or rec.get("schema") != BENCH_SCHEMA or rec.get("runtime") != runtime:
            continue
        blocks, ms = _dig(rec, BENCH_BLOCKS), _dig(rec, BENCH_LATENCY)
        if isinstance(blocks, int) and isinstance(ms, (int, float)):
            found[_label(rec["artifact"], path)]["latency_ms"].append(float(ms))
    if firmware and not any("mcu_instructions_m" in cols for cols in found.values()):
        raise EdgekdError(f"{root}: no artifact has a bench/firmware-{firmware}.json (run `edgekd firmware ARTIFACT "
                          f"--target {firmware}`)")
    if not found:
        raise EdgekdError(f"{root}: no card.json or '{runtime}' benchmark records found")
    return {b: {k: mean(v) for k, v in cols.items()} for b, cols in found.items()}


def _label(architecture: Any, source: Path) -> int | str:
    try:
        return arch.student_label(architecture)
    except (KeyError, TypeError, ValueError):
        raise EdgekdError(f"{source}: card lacks a readable architecture (blocks, family, width)") from None


def add_costs(cands: list[dict[str, Any]], bench: dict[int | str, dict[str, float]] | None, mcu: str | None,
              mcu_targets: str | Path = DEFAULT_MCU_TARGETS) -> None:
    """Fill weights_kb, flatbuffer_kb, flash_kb, arena_kb, mcu_latency_ms, latency_ms (None where unknown) in
    place."""
    target = mcu_target(mcu, mcu_targets) if mcu else None
    sizes: dict[tuple[int | str, int], int] = {}
    for c in cands:
        key = (c["student"], c["in_channels"])
        spec = {**arch.parse_student(c["student"]), "in_channels": c["in_channels"]}
        if key not in sizes:  # INT8 weight bytes; a TCN's (no size table): one byte per parameter
            sizes[key] = (size_table((spec["blocks"],), key[1])[0]["int8_weight_bytes"] if arch.family(spec) == "resnet"
                          else arch.params(spec))
        c["macs"], c["params"] = arch.macs(spec), arch.params(spec)
        measured = (bench or {}).get(c["student"], {})
        instructions = measured.get("mcu_instructions_m")
        c["weights_kb"] = sizes[key] / KB
        c["flatbuffer_kb"] = measured.get("flatbuffer_kb")
        c["flash_kb"] = measured.get("flash_kb")
        c["arena_kb"] = measured.get("arena_kb")
        c["latency_ms"] = measured.get("latency_ms")
        c["mcu_instructions_m"] = instructions
        if target is None:
            c["mcu_latency_ms"] = None
        elif instructions:  # measured instructions at CPI 1 on the MCU's clock
            c["mcu_latency_ms"] = instructions * 1e6 / target.clock_hz * 1e3
        else:
            c["mcu_latency_ms"] = target.latency_ms(arch.macs(spec))


def pareto(cands: list[dict[str, Any]], cost_col: str, metric: str) -> None:
    """Mark ``pareto`` = no other candidate is at most as costly and as wrong, and strictly better in one."""
    for c in cands:
        c["pareto"] = c[cost_col] is not None and not any(
            o is not c and o[cost_col] is not None and o[cost_col] <= c[cost_col] and o[metric] <= c[metric]
            and (o[cost_col] < c[cost_col] or o[metric] < c[metric]) for o in cands)


def mark_budget(cands: list[dict[str, Any]], budget: Budget, metric: str) -> None:
    """``fits``: every limit that can be checked from the sweep passes; ``unchecked``: limits without data."""
    columns = {**LIMIT_COLUMNS, "mae_bpm": metric}
    for c in cands:
        unchecked = [k for k in budget.limits if k not in columns or c.get(columns[k]) is None]
        c["fits"] = all(c[columns[k]] <= v for k, v in budget.limits.items() if k not in unchecked)
        c["unchecked"] = ",".join(unchecked)


def rank(rows: list[dict[str, Any]], cost: str, metric: str = "mae_argmax", bench_dir: str | Path | None = None,
         budget: Budget | None = None, mcu: str | None = None, runtime: str = "tflm",
         mcu_targets: str | Path = DEFAULT_MCU_TARGETS, firmware: str | None = None) -> list[dict[str, Any]]:
    """Candidates with costs, Pareto flags and (with a budget) fits, sorted by cost then MAE."""
    if cost not in COSTS:
        raise EdgekdError(f"unknown cost '{cost}'; choose from {', '.join(COSTS)}")
    col = COSTS[cost][0]
    if cost in ("flatbuffer", "flash", "arena", "latency", "instructions") and bench_dir is None:
        raise EdgekdError(f"--cost {cost} needs --bench DIR (artifacts with card.json / benchmark records)")
    if firmware and bench_dir is None:
        raise EdgekdError("--firmware TARGET reads the firmware records of the artifacts under --bench DIR: give --bench")
    if cost in ("flash", "instructions") and not firmware:
        raise EdgekdError(f"--cost {cost} needs --firmware TARGET (records of `edgekd firmware`: flash is the "
                          f"linked image; --cost flatbuffer or weights sizes the model alone)")
    mcu = mcu or (budget.mcu if budget else None)
    if cost == "mcu-latency" and not mcu:
        raise EdgekdError("--cost mcu-latency needs --mcu NAME (or a --budget that names one)")
    cands = candidates(rows, metric)
    add_costs(cands, bench_costs(bench_dir, runtime, firmware) if bench_dir is not None else None, mcu, mcu_targets)
    if all(c[col] is None for c in cands):
        raise EdgekdError(f"no candidate has a '{cost}' cost (which student sizes do the artifacts cover?)")
    pareto(cands, col, metric)
    if budget is not None:
        mark_budget(cands, budget, metric)
    return sorted(cands, key=lambda c: (math.inf if c[col] is None else c[col], c[metric]))
