"""edgekd gate: pass, each kind of fail, and fail-closed cases (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edgekd.budget import load_budget
from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.gate import CARD_KEYS

MCU_TABLE = """
[targets.test-m4]
clock_mhz = 100
cycles_per_mac = 2.0
"""
# 2 M MACs at 2 cycles/MAC and 100 MHz = 40 ms.
GOOD = {"flash_bytes": 100 * 1024, "arena_bytes": 50 * 1024, "macs": 2_000_000, "mae_fp32": 7.0, "mae_int8": 7.4}
LIMITS = {"flash_kb": 200, "arena_kb": 64, "latency_ms": 50, "mae_bpm": 8.0, "int8_mae_drop_bpm": 0.5}


def _card(values: dict[str, float]) -> dict:
    """A card.json built through CARD_KEYS, so the test follows the field names the gate reads."""
    card: dict = {"name": "test-student"}
    for field, value in values.items():
        node = card
        *parents, leaf = CARD_KEYS[field]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return card


def _artifact(root: Path, name: str, values: dict[str, float]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "card.json").write_text(json.dumps(_card(values)))
    return folder


def _budget(root: Path, limits: dict[str, float] = LIMITS, extra: str = 'mcu = "test-m4"\n') -> Path:
    path = root / "budget.toml"
    path.write_text('name = "t"\n' + extra + "[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
    return path


@pytest.fixture
def mcu(tmp_path: Path) -> Path:
    path = tmp_path / "mcu.toml"
    path.write_text(MCU_TABLE)
    return path


def _gate(budget: Path, arts: list[Path], mcu: Path, *extra: str) -> int:
    return main(["gate", str(budget), *map(str, arts), "--mcu-targets", str(mcu), *extra])


def test_all_limits_pass_and_reports_written(tmp_path, mcu, capsys):
    art = _artifact(tmp_path, "ok", GOOD)
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    assert _gate(_budget(tmp_path), [art], mcu, "--junit", str(junit), "--markdown", str(md)) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "40.000" in out  # latency = 2e6 MACs * 2 / 100 MHz
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "5" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "PASS" in md.read_text()


@pytest.mark.parametrize("field,value,limit", [
    ("flash_bytes", 300 * 1024, "flash_kb"),
    ("arena_bytes", 65 * 1024, "arena_kb"),
    ("macs", 3_000_000, "latency_ms"),
    ("mae_fp32", 9.0, "mae_bpm"),
    ("mae_int8", 7.6, "int8_mae_drop_bpm"),
])
def test_each_limit_can_fail(tmp_path, mcu, capsys, field, value, limit):
    art = _artifact(tmp_path, "bad", {**GOOD, field: value})
    junit = tmp_path / "gate.xml"
    assert _gate(_budget(tmp_path), [art], mcu, "--json", "--junit", str(junit)) == 1
    report = json.loads(capsys.readouterr().out)
    failed = [c["limit"] for c in report["checks"] if c["verdict"] == "fail"]
    assert failed == [limit]
    cases = ET.parse(junit).getroot().findall("testcase")
    assert [c.get("name") for c in cases if c.find("failure") is not None] == [limit]


def test_one_bad_artifact_fails_the_gate(tmp_path, mcu):
    good = _artifact(tmp_path, "good", GOOD)
    bad = _artifact(tmp_path, "bad", {**GOOD, "flash_bytes": 10**6})
    assert _gate(_budget(tmp_path), [good, bad], mcu) == 1


def test_missing_artifact_fails_closed(tmp_path, mcu, capsys):
    good = _artifact(tmp_path, "good", {**GOOD, "flash_bytes": 10**6})  # a failure must not hide the error
    md = tmp_path / "gate.md"
    assert _gate(_budget(tmp_path), [good, tmp_path / "nope"], mcu, "--markdown", str(md)) == 2
    assert "ERROR" in capsys.readouterr().out and "ERROR" in md.read_text()


def test_corrupt_card_fails_closed(tmp_path, mcu):
    art = tmp_path / "broken"
    art.mkdir()
    (art / "card.json").write_text('{"flash_bytes": 12')
    assert _gate(_budget(tmp_path), [art], mcu) == 2


def test_card_missing_a_needed_value_fails_closed(tmp_path, mcu, capsys):
    values = {k: v for k, v in GOOD.items() if k != "arena_bytes"}
    assert _gate(_budget(tmp_path), [_artifact(tmp_path, "a", values)], mcu, "--json") == 2
    checks = json.loads(capsys.readouterr().out)["checks"]
    assert [c["limit"] for c in checks if c["verdict"] == "error"] == ["arena_kb"]


def test_malformed_toml_fails_closed(tmp_path, mcu, capsys):
    bad = tmp_path / "b.toml"
    bad.write_text("[limits\nflash_kb = 1\n")
    assert _gate(bad, [_artifact(tmp_path, "a", GOOD)], mcu) == 2
    assert "malformed TOML" in capsys.readouterr().err


def test_unknown_metric_fails_closed(tmp_path, mcu, capsys):
    budget = _budget(tmp_path, {**LIMITS, "flash_mb": 1})
    assert _gate(budget, [_artifact(tmp_path, "a", GOOD)], mcu) == 2
    assert "unknown limit 'flash_mb'" in capsys.readouterr().err


def test_unknown_mcu_and_missing_budget_fail_closed(tmp_path, mcu):
    art = _artifact(tmp_path, "a", GOOD)
    assert _gate(_budget(tmp_path, extra='mcu = "m99"\n'), [art], mcu) == 2
    assert _gate(tmp_path / "absent.toml", [art], mcu) == 2


def test_budget_validation_messages(tmp_path):
    with pytest.raises(EdgekdError, match="needs 'mcu"):
        load_budget(_budget(tmp_path, extra=""))
    with pytest.raises(EdgekdError, match="non-negative number"):
        load_budget(_budget(tmp_path, {"flash_kb": "\"big\""}))
    with pytest.raises(EdgekdError, match="unknown key"):
        load_budget(_budget(tmp_path, extra='mcu = "x"\nflash = 3\n'))


@pytest.mark.parametrize("name", ["wearable.toml", "wearable-firmware.toml", "cortex-m4-tight.toml"])
def test_shipped_budgets_parse(name):
    budget = load_budget(Path(__file__).resolve().parent.parent / "models" / "budgets" / name)
    assert budget.limits and budget.mcu
