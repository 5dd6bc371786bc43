"""The CI size-budget gate: check artifacts' card.json against a budget; fail closed.

Verdicts per (artifact, limit): ``pass``, ``fail`` (value over the limit) or ``error`` (the gate could
not evaluate: missing or corrupt artifact, a value the card lacks, an unknown MCU). Exit codes follow:
0 all pass, 1 some limit failed, 2 anything could not be evaluated (an error outranks a failure, so a
broken artifact never passes as "only over budget").

edgekd must not import ``export``: the card.json keys the gate reads are named here, once.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from edgekd.budget import DEFAULT_MCU_TARGETS, KB, LIMITS, Budget, McuTarget, mcu_target
from edgekd.errors import EdgekdError

CARD_FILE = "card.json"
# The card.json entries the gate and `edgekd rank` read (written by export/artifact.py), as key paths.
# flash = the INT8 flatbuffer's size; arena = the TFLM arena the exporter recorded; INT8 MAE = the TFLM
# host interpreter's (the kernels the device runs), FP32 MAE = PyTorch's, on the same held-out windows.
CARD_KEYS: dict[str, tuple[str, ...]] = {
    "flash_bytes": ("files", "model_int8.tflite"),
    "arena_bytes": ("tflm", "arena_bytes"),
    "macs": ("architecture", "macs"),
    "blocks": ("architecture", "blocks"),
    "mae_fp32": ("accuracy", "mae_bpm", "fp32"),
    "mae_int8": ("accuracy", "mae_bpm", "tflite_int8_tflm"),
}

EXIT_PASS, EXIT_FAIL, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True)
class Check:
    artifact: str
    limit: str
    label: str
    value: float | None
    threshold: float
    verdict: str  # pass | fail | error
    detail: str = ""


def card_entry(card: dict[str, Any], field: str) -> Any:
    """The entry ``CARD_KEYS[field]`` names in a card, as stored, or None when the card lacks it."""
    node: Any = card
    for part in CARD_KEYS[field]:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def card_value(card: dict[str, Any], field: str) -> float | None:
    """The number ``CARD_KEYS[field]`` names in a card, or None when absent or not a finite number."""
    node = card_entry(card, field)
    if node is None or isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        return None
    return float(node)


def read_card(artifact: str | Path) -> dict[str, Any]:
    """card.json of an artifact folder (or the card file itself); EdgekdError when missing or corrupt."""
    path = Path(artifact)
    card_path = path / CARD_FILE if path.is_dir() else path
    if not card_path.is_file():
        raise EdgekdError(f"{card_path}: no {CARD_FILE} (is {artifact} an exported artifact?)")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgekdError(f"{card_path}: corrupt card ({exc})") from None
    if not isinstance(card, dict):
        raise EdgekdError(f"{card_path}: a card must be a JSON object")
    return card


def _missing(*fields: str) -> str:
    return "card lacks " + " or ".join("/".join(CARD_KEYS[f]) for f in fields)


def _measure(card: dict[str, Any], limit: str, mcu: McuTarget | None) -> tuple[float | None, str]:
    """(value in the limit's unit, why it is missing)."""
    if limit == "flash_kb":
        v = card_value(card, "flash_bytes")
        return (None, _missing('flash_bytes')) if v is None else (v / KB, "")
    if limit == "arena_kb":
        v = card_value(card, "arena_bytes")
        return (None, _missing('arena_bytes')) if v is None else (v / KB, "")
    if limit == "latency_ms":
        v = card_value(card, "macs")
        if v is None:
            return None, _missing('macs')
        assert mcu is not None  # load_budget guarantees an mcu with latency_ms; gate() resolves it
        return mcu.latency_ms(v), f"on {mcu.name}"
    if limit == "mae_bpm":
        v = card_value(card, "mae_fp32")
        return (None, _missing('mae_fp32')) if v is None else (v, "")
    if limit == "int8_mae_drop_bpm":
        fp32, int8 = card_value(card, "mae_fp32"), card_value(card, "mae_int8")
        if fp32 is None or int8 is None:
            return None, _missing('mae_fp32', 'mae_int8')
        return int8 - fp32, ""
    raise EdgekdError(f"unknown limit '{limit}'")


def gate(budget: Budget, artifacts: list[str | Path], mcu_targets: str | Path = DEFAULT_MCU_TARGETS) -> list[Check]:
    """Every (artifact, limit) check. Problems with one artifact become 'error' rows, not exceptions,
    so the report shows all artifacts; a bad budget or MCU table raises (nothing can be evaluated)."""
    if not artifacts:
        raise EdgekdError("gate needs at least one artifact")
    mcu = mcu_target(budget.mcu, mcu_targets) if "latency_ms" in budget.limits and budget.mcu else None
    checks: list[Check] = []
    for art in artifacts:
        name = str(art)
        try:
            card = read_card(art)
        except EdgekdError as exc:
            checks += [Check(name, k, LIMITS[k], None, t, "error", str(exc)) for k, t in budget.limits.items()]
            continue
        for key, threshold in budget.limits.items():
            value, detail = _measure(card, key, mcu)
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
