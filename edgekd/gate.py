"""The CI size-budget gate: check artifacts against a budget; fail closed.

The gate trusts the card only as far as the files prove it: every file card.json lists must be present
with its recorded size and sha256 (edgekd.layout), the flatbuffer limit is its own size on disk, the arena is
re-measured by allocating the flatbuffer in TFLM when ``tflite-micro`` is installed (the card's figure
otherwise, and the card may never claim less than TFLM needs), and MACs are recomputed from the
architecture. Accuracy limits read the card (measuring them needs the data). With a budget's [firmware]
table, arena and latency come from the record `edgekd firmware` wrote for that target instead (the arena measured
on the target, measured instructions / the MCU clock), and so does flash, which is only ever the linked image:
missing, stale (another flatbuffer) or not bit-exact, and those limits are errors, never the estimate in its
place.

Verdicts per (artifact, limit): ``pass``, ``fail`` (value over the limit) or ``error`` (the gate could
not evaluate: missing, modified or corrupt artifact files, a value the card lacks or that is not a
positive number). Exit codes follow: 0 all pass, 1 some limit failed, 2 anything could not be evaluated
(an error outranks a failure, so a broken artifact never passes as "only over budget"). An unknown MCU
in the budget stops the gate before any artifact is read (exit 2).

edgekd must not import ``export``: the card is read as edgekd.model_card's typed ModelCard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from edgekd.budget import (ACCURACY_LIMITS, DEFAULT_MCU_TARGETS, KB, LIMITS, Budget, McuTarget, check_firmware_mcu,
                           mcu_target)
from edgekd.errors import EdgekdError
from edgekd.layout import (CONFIG, MODEL_DATA_H, TFLITE_INT8, read_firmware_record, read_flatbuffer, read_json_object,
                           reserved_arena, verify_artifact)
from edgekd.model_card import ModelCard, read_card
from edgekd import arch
from edgekd.checkpoint import checked_spec

# Limits that need the INT8 flatbuffer to be part of the artifact.
NEEDS_FLATBUFFER = ("flatbuffer_kb", "flash_kb", "arena_kb", "latency_ms", "int8_mae_bpm", "int8_mae_drop_bpm")
# Limits a budget's [firmware] table judges on the firmware record instead of the card and the estimate.
FIRMWARE_LIMITS = ("flash_kb", "arena_kb", "latency_ms")

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2
NO_RESERVED_ARENA = f"no {MODEL_DATA_H} with an _ARENA_SIZE in the artifact: the firmware's arena is unknown"


@dataclass(frozen=True)
class Check:
    artifact: str
    limit: str
    label: str
    value: float | None
    threshold: float
    verdict: str  # pass | fail | error
    detail: str = ""


@dataclass(frozen=True)
class Evidence:
    """What the gate established from an artifact's files (all sha256-checked against the card)."""

    card: ModelCard
    flatbuffer: bytes | None
    arena: tuple[int, int] | None  # (minimum, recommended) measured by TFLM; None when not installed
    reserved_arena: int | None  # NAME_ARENA_SIZE of model_data.h: what the firmware really reserves
    architecture: dict[str, int] | None  # config.json's "model" entry (card.json itself is not hashed)
    firmware: dict[str, Any] | None = None  # figures of the budget's firmware record
    firmware_error: str = ""  # why that record cannot be used (its limits become errors)


def collect_evidence(folder: Path, card: ModelCard, limits: dict[str, float],
                     firmware: dict[str, str] | None = None) -> Evidence:
    """Verify the files against the card and measure what the limits need (EdgekdError on any mismatch)."""
    needs_fb = any(k in limits for k in NEEDS_FLATBUFFER)
    files = verify_artifact(folder, card.doc, required=(TFLITE_INT8,) if needs_fb else ())
    flatbuffer = read_flatbuffer(files[TFLITE_INT8]) if TFLITE_INT8 in files else None
    arena = None
    if flatbuffer is not None and "arena_kb" in limits:
        arena = measured_arena(flatbuffer, files[TFLITE_INT8])
    reserved = reserved_arena(files[MODEL_DATA_H]) if MODEL_DATA_H in files else None
    architecture = None
    if CONFIG in files:
        model = read_json_object(files[CONFIG]).get("model")
        architecture = model if isinstance(model, dict) else None
    record, why = None, ""
    if firmware is not None and any(k in limits for k in FIRMWARE_LIMITS):
        try:
            record = read_firmware_record(folder, card.doc, firmware["target"], firmware.get("kernels"))
        except EdgekdError as exc:
            why = str(exc)
    return Evidence(card, flatbuffer, arena, reserved, architecture, record, why)


def measured_arena(flatbuffer: bytes, path: Path) -> tuple[int, int] | None:
    """(minimum, recommended) arena from TFLM itself, or None when tflite-micro is not installed."""
    import importlib

    try:
        importlib.import_module("tflite_micro")  # the optional package the measurement needs
    except ImportError:
        return None
    from edgekd.tflm_host import arena_bytes

    try:
        return arena_bytes(flatbuffer)
    except EdgekdError as exc:
        raise EdgekdError(f"{path}: TFLM cannot allocate this model ({exc})") from None


def _thin_evidence(card: ModelCard, evidence: dict[str, int]) -> str:
    """Why the card's MAE cannot back an accuracy limit ('' when it can)."""
    for field, key in (("eval_windows", "min_windows"), ("eval_subjects", "min_subjects")):
        v = getattr(card, field)
        if v is None:
            return card.why(field) + " (re-export with this edgekd)"
        if v < evidence[key]:
            return (f"the card's MAE was measured on {v} {field.split('_')[1]}, fewer than the budget's "
                    f"[evidence] {key} = {evidence[key]}")
    return ""


def _measure(ev: Evidence, limit: str, mcu: McuTarget | None, evidence: dict[str, int]
             ) -> tuple[float | None, str]:
    """(value in the limit's unit, where it came from or why it is missing)."""
    card = ev.card
    if limit in ACCURACY_LIMITS and (thin := _thin_evidence(card, evidence)):
        return None, thin
    if limit in FIRMWARE_LIMITS and (ev.firmware is not None or ev.firmware_error):
        return _measured(ev, limit, mcu)
    if limit == "flatbuffer_kb":
        assert ev.flatbuffer is not None  # collect_evidence requires the flatbuffer for this limit
        return len(ev.flatbuffer) / KB, "INT8 flatbuffer bytes on disk (sha256 checked)"
    if limit == "flash_kb":  # load_budget refuses it without [firmware]; a Budget built in code gets this row
        return None, "flash is the linked firmware image: the budget needs a [firmware] table"
    if limit == "arena_kb":
        recorded = card.arena_bytes
        if recorded is None:
            return None, card.why("arena_bytes")
        if ev.reserved_arena is None:
            return None, NO_RESERVED_ARENA
        if ev.reserved_arena != recorded:
            return None, f"card's arena {recorded:.0f} B is not the {ev.reserved_arena} B model_data.h reserves"
        if ev.arena is None:
            return recorded / KB, "what model_data.h reserves (install tflite-micro to check it allocates)"
        minimum = ev.arena[0]
        if recorded < minimum:
            return None, f"card's arena {recorded:.0f} B is less than the {minimum} B TFLM needs"
        return recorded / KB, f"what model_data.h reserves; TFLM needs {minimum} B"
    if limit == "latency_ms":
        if why := card.why("blocks", "in_channels", "macs"):
            return None, why
        blocks, in_ch = card.blocks, card.in_channels
        recorded_arch = ev.architecture or {}
        if (recorded_arch.get("blocks"), recorded_arch.get("in_channels")) != (blocks, in_ch):
            return None, (f"card's architecture ({blocks} blocks, {in_ch} channels) is not config.json's "
                          f"({recorded_arch.get('blocks')} blocks, {recorded_arch.get('in_channels')} channels)")
        try:  # config.json is hashed: its architecture, not the card's, says what the MACs are
            spec = checked_spec(recorded_arch, Path(CONFIG))
        except EdgekdError:
            return None, f"{CONFIG}'s architecture is not a student's"
        computed = arch.macs(spec)
        recorded = card.macs
        if recorded != computed:
            return None, f"card's MACs {recorded} disagree with its architecture ({computed})"
        assert mcu is not None  # load_budget guarantees an mcu with latency_ms; gate() resolves it
        return mcu.latency_ms(computed), f"MACs x cycles/MAC estimate on {mcu.name} (+-2x)"
    if limit in ("mae_bpm", "int8_mae_bpm"):
        field = "mae_fp32" if limit == "mae_bpm" else "mae_int8"
        v = getattr(card, field)
        if v is None:
            return None, card.why(field)
        return v, "card.json: fused decoder"
    if limit == "int8_mae_drop_bpm":
        fp32, int8 = card.mae_fp32, card.mae_int8
        if fp32 is None or int8 is None:
            return None, card.why("mae_fp32", "mae_int8")
        return int8 - fp32, "from card.json"
    raise EdgekdError(f"unknown limit '{limit}'")


def _measured(ev: Evidence, limit: str, mcu: McuTarget | None) -> tuple[float | None, str]:
    """A firmware limit from the record `edgekd firmware` wrote (the budget's [firmware] target)."""
    if ev.firmware is None:
        return None, ev.firmware_error
    fw = ev.firmware
    where = f"{Path(fw['path']).name}, {fw['kernels']} kernels"
    if limit == "flash_kb":
        return fw["flash_bytes"] / KB, f"linked image ({where}); flatbuffer {fw.get('flatbuffer_bytes')} B"
    if limit == "arena_kb":  # what the image reserves is what the part must have; the target's need must fit it
        if ev.reserved_arena is None:
            return None, NO_RESERVED_ARENA
        if ev.reserved_arena < fw["arena_bytes"]:
            return None, (f"model_data.h reserves {ev.reserved_arena} B, less than the {fw['arena_bytes']:.0f} B the "
                          f"target needs ({where})")
        return ev.reserved_arena / KB, (f"what model_data.h reserves; the target needs {fw['arena_bytes']:.0f} B "
                                        f"({where})")
    assert mcu is not None  # load_budget guarantees an mcu with latency_ms
    ms = fw["instructions_per_window"] / mcu.clock_hz * 1e3
    return ms, (f"{fw['instructions_per_window'] / 1e6:.2f} M instructions per window (model + decoder) measured "
                f"({where}) at CPI 1 on {mcu.name}'s {mcu.clock_hz / 1e6:g} MHz (estimate)")


def gate(budget: Budget, artifacts: list[str | Path], mcu_targets: str | Path = DEFAULT_MCU_TARGETS) -> list[Check]:
    """Every (artifact, limit) check. Problems with one artifact become 'error' rows, not exceptions,
    so the report shows all artifacts; a bad budget, MCU table or unknown MCU raises (nothing can be
    evaluated)."""
    if not artifacts:
        raise EdgekdError("gate needs at least one artifact")
    try:  # an unknown MCU fails closed, naming the budget that asks for it
        mcu = mcu_target(budget.mcu, mcu_targets) if budget.mcu else None
    except EdgekdError as exc:
        raise EdgekdError(f"{budget.path or budget.name}: mcu '{budget.mcu}': {exc}") from None
    check_firmware_mcu(budget, mcu)
    checks: list[Check] = []
    for art in artifacts:
        name = str(art)
        path = Path(art)
        folder = path if path.is_dir() else path.parent
        try:
            card = read_card(art)
            ev = collect_evidence(folder, card, budget.limits, budget.firmware)
        except EdgekdError as exc:
            checks += [Check(name, k, LIMITS[k], None, t, "error", str(exc)) for k, t in budget.limits.items()]
            continue
        for key, threshold in budget.limits.items():
            value, detail = _measure(ev, key, mcu, budget.evidence)
            if value is None:
                checks.append(Check(name, key, LIMITS[key], None, threshold, "error", detail))
            else:
                checks.append(Check(name, key, LIMITS[key], value, threshold,
                                    "pass" if value <= threshold else "fail", detail))
    return checks


def exit_code(checks: list[Check]) -> int:
    if any(c.verdict == "error" for c in checks):
        return EXIT_ERROR
    return EXIT_FAIL if any(c.verdict == "fail" for c in checks) else EXIT_PASS


def to_rows(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def junit_xml(budget: Budget, checks: list[Check]) -> str:
    """JUnit XML: one testcase per (artifact, limit); over-limit -> <failure>, unevaluable -> <error>."""
    suite = ET.Element("testsuite", name=f"edgekd gate {budget.name}", tests=str(len(checks)),
                       failures=str(sum(c.verdict == "fail" for c in checks)),
                       errors=str(sum(c.verdict == "error" for c in checks)))
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=c.artifact, name=c.limit)
        if c.verdict == "fail":
            ET.SubElement(case, "failure", message=f"{c.label}: {c.value:.3f} > {c.threshold:g}").text = c.detail
        elif c.verdict == "error":
            ET.SubElement(case, "error", message=f"{c.label}: cannot evaluate").text = c.detail
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def markdown(budget: Budget, checks: list[Check]) -> str:
    """A Markdown summary for CI job pages and pull-request comments."""
    verdict = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_ERROR: "ERROR (could not evaluate)"}[exit_code(checks)]
    lines = [f"## edgekd gate: {budget.name}: {verdict}", ""]
    if budget.description:
        lines += [budget.description, ""]
    lines += ["| artifact | limit | value | max | verdict | note |", "|---|---|---:|---:|---|---|"]
    for c in checks:
        value = "-" if c.value is None else f"{c.value:.3f}"
        mark = {"pass": "pass", "fail": "**FAIL**", "error": "**ERROR**"}[c.verdict]
        lines.append(f"| {c.artifact} | {c.label} | {value} | {c.threshold:g} | {mark} | {c.detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
