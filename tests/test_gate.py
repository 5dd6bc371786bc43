"""edgekd gate on a real exported artifact: pass, each kind of fail, and fail-closed cases (exit 2).

The gate measures from the artifact's files, so these tests change files and cards of a copy of
conftest's ``tiny_artifact`` and check that nothing but an intact artifact passes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edgekd.budget import KB, load_budget
from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.model_card import FIELDS, ModelCard

MCU_TABLE = """
[targets.test-m4]
core = "Cortex-M4"
clock_mhz = 100
cycles_per_mac = 2.0

[targets.test-m7]
core = "Cortex-M7"
clock_mhz = 200
cycles_per_mac = 1.0
"""
LIMITS = ("flatbuffer_kb", "arena_kb", "latency_ms", "mae_bpm", "int8_mae_bpm", "int8_mae_drop_bpm")
# tiny_artifact is scored on 2 subjects; the evidence refusal has its own test below
SMALL_EVIDENCE = "min_windows = 1\nmin_subjects = 1\n"


@pytest.fixture
def mcu(tmp_path: Path) -> Path:
    path = tmp_path / "mcu.toml"
    path.write_text(MCU_TABLE)
    return path


def _copy(tiny_artifact: Path, root: Path, name: str = "art") -> Path:
    return Path(shutil.copytree(tiny_artifact, root / name))


def _card(art: Path) -> dict:
    return json.loads((art / "card.json").read_text())


def card_value(card: dict, field: str):
    """A typed card field of a card document (None when absent or of the wrong kind)."""
    return getattr(ModelCard.parse(card, "card.json"), field)


def _edit_card(art: Path, field: str, value) -> None:
    card = _card(art)
    node = card
    *parents, leaf = FIELDS[field].path
    for part in parents:
        node = node[part]
    node[leaf] = value
    (art / "card.json").write_text(json.dumps(card))


def _generous(art: Path) -> dict[str, float]:
    """Limits twice what the artifact needs: an intact copy passes them all."""
    card = _card(art)
    flash = card_value(card, "flatbuffer_bytes") / KB
    arena = card_value(card, "arena_bytes") / KB
    latency = card_value(card, "macs") * 2.0 / 100e6 * 1e3
    return {"flatbuffer_kb": 2 * flash, "arena_kb": 2 * arena, "latency_ms": 2 * latency,
            "mae_bpm": 2 * card_value(card, "mae_fp32") + 1, "int8_mae_bpm": 2 * card_value(card, "mae_int8") + 1,
            "int8_mae_drop_bpm": 5.0}


def _budget(root: Path, limits: dict[str, float], extra: str = 'mcu = "test-m4"\n',
            evidence: str = SMALL_EVIDENCE) -> Path:
    path = root / "budget.toml"
    path.write_text('name = "t"\n' + extra + "[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
                    + "[evidence]\n" + evidence)
    return path


def _gate(budget: Path, arts: list[Path], mcu: Path, *extra: str) -> int:
    return main(["gate", str(budget), *map(str, arts), "--mcu-targets", str(mcu), *extra])


def _errors(capsys) -> list[dict]:
    return [c for c in json.loads(capsys.readouterr().out)["checks"] if c["verdict"] == "error"]


def test_all_limits_pass_with_measured_values_and_reports_written(tiny_artifact, tmp_path, mcu, capsys):
    art = _copy(tiny_artifact, tmp_path)
    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    assert _gate(_budget(tmp_path, _generous(art)), [art], mcu, "--junit", str(junit), "--markdown", str(md)) == 0
    assert "PASS" in capsys.readouterr().out
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == str(len(LIMITS)) and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "PASS" in md.read_text()
    assert _gate(_budget(tmp_path, _generous(art)), [art], mcu, "--json") == 0
    checks = {c["limit"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["flatbuffer_kb"]["value"] == (art / "model_int8.tflite").stat().st_size / KB
    assert "TFLM needs" in checks["arena_kb"]["detail"]
    assert checks["arena_kb"]["value"] == _card(art)["tflm"]["arena_bytes"] / KB  # what model_data.h reserves


@pytest.mark.parametrize("limit", LIMITS)
def test_each_limit_can_fail(tiny_artifact, tmp_path, mcu, capsys, limit):
    art = _copy(tiny_artifact, tmp_path)
    limits = _generous(art)
    if limit == "int8_mae_drop_bpm":
        _edit_card(art, "mae_int8", card_value(_card(art), "mae_fp32") + 1.0)  # accuracy is the card's word
        limits[limit] = 0.5
    elif limit in ("mae_bpm", "int8_mae_bpm"):  # the fused MAE on synthetic windows is well under 1 BPM
        limits[limit] = card_value(_card(art), "mae_fp32" if limit == "mae_bpm" else "mae_int8") / 2
    else:
        limits[limit] = limits[limit] / 4
    junit = tmp_path / "gate.xml"
    assert _gate(_budget(tmp_path, limits), [art], mcu, "--json", "--junit", str(junit)) == 1
    report = json.loads(capsys.readouterr().out)
    assert [c["limit"] for c in report["checks"] if c["verdict"] == "fail"] == [limit]
    cases = ET.parse(junit).getroot().findall("testcase")
    assert [c.get("name") for c in cases if c.find("failure") is not None] == [limit]


@pytest.mark.parametrize("deleted", ["model_int8.tflite", "model.onnx", "model_int8.onnx", "model.safetensors"])
def test_deleted_model_files_fail_closed(tiny_artifact, tmp_path, mcu, capsys, deleted):
    art = _copy(tiny_artifact, tmp_path)
    budget = _budget(tmp_path, _generous(art))
    (art / deleted).unlink()
    assert _gate(budget, [art], mcu, "--json") == 2
    errors = _errors(capsys)
    assert len(errors) == len(LIMITS) and all(f"{deleted}: missing" in c["detail"] for c in errors)


def test_grown_or_swapped_flatbuffer_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    art = _copy(tiny_artifact, tmp_path)
    budget = _budget(tmp_path, _generous(art))
    with open(art / "model_int8.tflite", "ab") as fh:
        fh.write(b"\x00" * 2_000_000)
    assert _gate(budget, [art], mcu, "--json") == 2
    assert all("card.json records" in c["detail"] for c in _errors(capsys))
    data = bytearray((tiny_artifact / "model_int8.tflite").read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes
    (art / "model_int8.tflite").write_bytes(bytes(data))
    assert _gate(budget, [art], mcu, "--json") == 2
    assert all("sha256 differs" in c["detail"] for c in _errors(capsys))


@pytest.mark.parametrize("size", [-999_999_999, 0, 12])
def test_card_sizes_that_disagree_with_the_files_fail_closed(tiny_artifact, tmp_path, mcu, capsys, size):
    art = _copy(tiny_artifact, tmp_path)
    budget = _budget(tmp_path, _generous(art))
    _edit_card(art, "flatbuffer_bytes", size)
    assert _gate(budget, [art], mcu, "--json") == 2
    assert len(_errors(capsys)) == len(LIMITS)


def test_edited_arena_macs_and_architecture_fail_closed(tiny_artifact, tmp_path, mcu, capsys):
    """card.json itself is not hashed: what it claims must agree with the hashed files."""
    art = _copy(tiny_artifact, tmp_path)
    budget = _budget(tmp_path, _generous(art))
    _edit_card(art, "arena_bytes", 1024)
    _edit_card(art, "macs", 1000)
    assert _gate(budget, [art], mcu, "--json") == 2
    errors = {c["limit"]: c["detail"] for c in _errors(capsys)}
    assert set(errors) == {"arena_kb", "latency_ms"}
    assert "model_data.h reserves" in errors["arena_kb"] and "disagree" in errors["latency_ms"]
    _edit_card(art, "blocks", 2)  # a smaller claim, consistently edited
    from edgekd.model import macs
    _edit_card(art, "macs", macs(2, 1))
    assert _gate(budget, [art], mcu, "--json") == 2
    assert "not config.json's" in {c["limit"]: c["detail"] for c in _errors(capsys)}["latency_ms"]
    _edit_card(art, "arena_bytes", -5)
    assert _gate(budget, [art], mcu, "--json") == 2
    assert "not a positive integer" in {c["limit"]: c["detail"] for c in _errors(capsys)}["arena_kb"]


def test_card_from_before_file_hashes_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    art = _copy(tiny_artifact, tmp_path)
    card = _card(art)
    card["files"] = {k: v["bytes"] for k, v in card["files"].items()}  # edgekd 0.1's card layout
    (art / "card.json").write_text(json.dumps(card))
    assert _gate(_budget(tmp_path, {"mae_bpm": 100}), [art], mcu, "--json") == 2
    assert "re-export" in _errors(capsys)[0]["detail"]


def test_one_bad_artifact_fails_the_gate(tiny_artifact, tmp_path, mcu):
    good, bad = _copy(tiny_artifact, tmp_path, "good"), _copy(tiny_artifact, tmp_path, "bad")
    _edit_card(bad, "mae_fp32", 1000.0)
    assert _gate(_budget(tmp_path, _generous(good)), [good, bad], mcu) == 1


def test_missing_artifact_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    over = _copy(tiny_artifact, tmp_path)
    limits = {**_generous(over), "flatbuffer_kb": 0.001}  # a failure must not hide the error
    md = tmp_path / "gate.md"
    assert _gate(_budget(tmp_path, limits), [over, tmp_path / "nope"], mcu, "--markdown", str(md)) == 2
    assert "ERROR" in capsys.readouterr().out and "ERROR" in md.read_text()


def test_corrupt_card_fails_closed(tmp_path, mcu):
    art = tmp_path / "broken"
    art.mkdir()
    (art / "card.json").write_text('{"flash_bytes": 12')
    assert _gate(_budget(tmp_path, {"flatbuffer_kb": 1}), [art], mcu) == 2


def test_card_missing_a_needed_value_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    art = _copy(tiny_artifact, tmp_path)
    budget = _budget(tmp_path, _generous(art))
    card = _card(art)
    del card["accuracy"]
    (art / "card.json").write_text(json.dumps(card))
    assert _gate(budget, [art], mcu, "--json") == 2
    assert [c["limit"] for c in _errors(capsys)] == ["mae_bpm", "int8_mae_bpm", "int8_mae_drop_bpm"]


def test_malformed_toml_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    bad = tmp_path / "b.toml"
    bad.write_text("[limits\nflatbuffer_kb = 1\n")
    assert _gate(bad, [tiny_artifact], mcu) == 2
    assert "malformed TOML" in capsys.readouterr().err


def test_unknown_metric_fails_closed(tiny_artifact, tmp_path, mcu, capsys):
    assert _gate(_budget(tmp_path, {"flatbuffer_kb": 500, "flash_mb": 1}), [tiny_artifact], mcu) == 2
    assert "unknown limit 'flash_mb'" in capsys.readouterr().err


def test_unknown_mcu_fails_closed_even_without_a_latency_limit(tiny_artifact, tmp_path, mcu, capsys):
    assert _gate(_budget(tmp_path, {"flatbuffer_kb": 500}, extra='mcu = "nosuch"\n'), [tiny_artifact], mcu) == 2
    err = capsys.readouterr().err
    assert "unknown MCU 'nosuch'" in err and err.startswith(f"edgekd: error: {tmp_path / 'budget.toml'}: mcu")
    assert _gate(tmp_path / "absent.toml", [tiny_artifact], mcu) == 2


def test_accuracy_limits_need_enough_evaluation_windows_and_subjects(tiny_artifact, tmp_path, mcu, capsys):
    """A card scored on too few windows or subjects cannot back an accuracy limit (exit 2, not a pass);
    size limits are still checked."""
    art = _copy(tiny_artifact, tmp_path)
    on = _card(art)["accuracy"]["measured_on"]
    limits = _generous(art)
    for evidence, short in ((f"min_windows = {on['windows'] + 1}\nmin_subjects = 1\n", "windows"),
                            (f"min_windows = 1\nmin_subjects = {on['subjects'] + 1}\n", "subjects")):
        assert _gate(_budget(tmp_path, limits, evidence=evidence), [art], mcu, "--json") == 2
        checks = {c["limit"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
        for key in ("mae_bpm", "int8_mae_bpm", "int8_mae_drop_bpm"):
            assert checks[key]["verdict"] == "error" and "fewer than the budget's [evidence]" in checks[key]["detail"]
            assert short in checks[key]["detail"]
        assert checks["flatbuffer_kb"]["verdict"] == "pass"
    # the defaults (200 windows, 3 subjects) apply when a budget says nothing
    path = tmp_path / "default.toml"
    path.write_text(f'mcu = "test-m4"\n[limits]\nmae_bpm = {limits["mae_bpm"]}\n')
    assert _gate(path, [art], mcu, "--json") == 2


def test_flash_is_only_ever_the_linked_image(tiny_artifact, tmp_path, mcu, capsys):
    """flash_kb without a [firmware] table would judge the flatbuffer under the image's name: refused (exit 2)."""
    assert _gate(_budget(tmp_path, {"flash_kb": 500}), [tiny_artifact], mcu) == 2
    err = capsys.readouterr().err
    assert "limit 'flash_kb' is the linked firmware image" in err and "flatbuffer_kb" in err


def test_budget_validation_messages(tmp_path):
    with pytest.raises(EdgekdError, match="needs 'mcu"):
        load_budget(_budget(tmp_path, {"latency_ms": 5}, extra=""))
    with pytest.raises(EdgekdError, match="non-negative number"):
        load_budget(_budget(tmp_path, {"flatbuffer_kb": "\"big\""}))
    with pytest.raises(EdgekdError, match="unknown key"):
        load_budget(_budget(tmp_path, {"flatbuffer_kb": 1}, extra='mcu = "x"\nflash = 3\n'))
    with pytest.raises(EdgekdError, match="unknown \\[evidence\\] key"):
        load_budget(_budget(tmp_path, {"flatbuffer_kb": 1}, evidence="min_window = 3\n"))
    with pytest.raises(EdgekdError, match="positive integer"):
        load_budget(_budget(tmp_path, {"flatbuffer_kb": 1}, evidence="min_windows = 0\n"))


@pytest.mark.parametrize("name", ["wearable.toml", "wearable-firmware.toml", "cortex-m4-tight.toml"])
def test_shipped_budgets_parse(name):
    budget = load_budget(Path(__file__).resolve().parent.parent / "models" / "budgets" / name)
    assert budget.limits and budget.mcu


FIRMWARE = 'mcu = "test-m4"\n[firmware]\ntarget = "cortex-m4"\nkernels = "cmsis-nn"\n'


def _firmware_record(art: Path, **figures) -> Path:
    """A record as `edgekd firmware --target cortex-m4` writes it (the real run is tested in test_firmware.py)."""
    from edgekd.layout import files_sha256

    card = _card(art)
    rec = {"schema": "edgekd.bench/1", "runtime": "firmware-cortex-m4",
           "artifact": {"tflite_sha256": card["files"]["model_int8.tflite"]["sha256"], "files_sha256": files_sha256(card)},
           "settings": {"target": "cortex-m4", "kernels": "cmsis-nn"},
           "figures": {"windows": 8, "input_mismatches": 0, "int8_mismatches": 0, "bpm_mismatches": 0,
                       "flash_bytes": 150_000, "ram_bytes": 40_000, "arena_bytes": card["tflm"]["arena_bytes"] - 1024,
                       "instructions_per_window": 12_000_000, "flatbuffer_bytes": 9, **figures}}
    path = art / "bench" / "firmware-cortex-m4.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def test_firmware_budget_judges_the_measured_image_arena_and_instructions(tiny_artifact, tmp_path, mcu, capsys):
    art = _copy(tiny_artifact, tmp_path)
    _firmware_record(art)
    limits = {"flash_kb": 200, "flatbuffer_kb": 200, "arena_kb": 64, "latency_ms": 200}
    assert _gate(_budget(tmp_path, limits, FIRMWARE), [art], mcu, "--json") == 0
    checks = {c["limit"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["flash_kb"]["value"] == 150_000 / KB and "linked image" in checks["flash_kb"]["detail"]
    # the flatbuffer keeps its own name and meaning beside the image
    assert checks["flatbuffer_kb"]["value"] == (art / "model_int8.tflite").stat().st_size / KB
    # The arena the image reserves (model_data.h) is judged; the target's smaller need is in the note.
    assert checks["arena_kb"]["value"] == _card(art)["tflm"]["arena_bytes"] / KB
    assert f"target needs {_card(art)['tflm']['arena_bytes'] - 1024} B" in checks["arena_kb"]["detail"]
    assert checks["latency_ms"]["value"] == pytest.approx(12e6 / 100e6 * 1e3)  # test-m4: 100 MHz, CPI 1
    assert "measured" in checks["latency_ms"]["detail"]
    assert _gate(_budget(tmp_path, {"flash_kb": 100}, FIRMWARE), [art], mcu) == 1  # the image, not the flatbuffer


@pytest.mark.parametrize("problem", ["missing", "stale", "other-files", "mismatch", "input-mismatch", "no-input-check",
                                     "bool", "kernels", "corrupt", "windows", "tiny-image", "arena"])
def test_firmware_budget_fails_closed_without_a_trustworthy_record(tiny_artifact, tmp_path, mcu, capsys, problem):
    art = _copy(tiny_artifact, tmp_path)
    path = _firmware_record(art)
    if problem == "missing":
        path.unlink()
    elif problem == "stale":
        rec = json.loads(path.read_text())
        rec["artifact"]["tflite_sha256"] = "0" * 64
        path.write_text(json.dumps(rec))
    elif problem == "other-files":  # same flatbuffer, another export of the rest (e.g. new decoder C)
        rec = json.loads(path.read_text())
        rec["artifact"]["files_sha256"] = "1" * 64
        path.write_text(json.dumps(rec))
    elif problem == "mismatch":
        _firmware_record(art, int8_mismatches=3)
    elif problem == "input-mismatch":  # the C front end fed the model other bits than NumPy's reference
        _firmware_record(art, input_mismatches=1)
    elif problem == "no-input-check":  # a record from before the input was compared
        rec = json.loads(path.read_text())
        del rec["figures"]["input_mismatches"]
        path.write_text(json.dumps(rec))
    elif problem == "bool":  # False == 0 in Python: a type check, not only a value check
        _firmware_record(art, bpm_mismatches=False)
    elif problem == "windows":
        _firmware_record(art, windows=0)
    elif problem == "tiny-image":
        _firmware_record(art, flash_bytes=1)
    elif problem == "kernels":
        rec = json.loads(path.read_text())
        rec["settings"]["kernels"] = "reference"
        path.write_text(json.dumps(rec))
    elif problem == "corrupt":
        path.write_text("{")
    else:  # the target needs more arena than model_data.h reserves: the firmware would not run
        _firmware_record(art, arena_bytes=_card(art)["tflm"]["arena_bytes"] + 16)
    limits = {"flash_kb": 10_000, "arena_kb": 10_000, "latency_ms": 10_000, "int8_mae_drop_bpm": 100}
    assert _gate(_budget(tmp_path, limits, FIRMWARE), [art], mcu, "--json") == 2
    errors = {c["limit"] for c in _errors(capsys)}
    assert errors == ({"arena_kb"} if problem == "arena" else {"flash_kb", "arena_kb", "latency_ms"})


def test_firmware_budget_needs_the_target_s_core(tiny_artifact, tmp_path, mcu, capsys):
    """M4 instructions divided by an M7's clock would be a number about no device: refused before any artifact."""
    art = _copy(tiny_artifact, tmp_path)
    _firmware_record(art)
    budget = _budget(tmp_path, {"latency_ms": 1000}, FIRMWARE.replace("test-m4", "test-m7"))
    assert _gate(budget, [art], mcu) == 2
    assert "is a Cortex-M4, but mcu 'test-m7' is a Cortex-M7" in capsys.readouterr().err


def test_firmware_table_validation(tmp_path):
    for body, match in (("[firmware]\nkernels = \"cmsis-nn\"\n", "with target"),
                        ("[firmware]\ntarget = \"cortex-m4\"\ncore = 1\n", "unknown \\[firmware\\] key"),
                        ("[firmware]\ntarget = \"host\"\n", "target must be one of cortex-m4"),
                        ("[firmware]\ntarget = \"cortex-m4\"\nkernels = \"fast\"\n", "kernels must be one of")):
        path = tmp_path / "b.toml"
        path.write_text("[limits]\nflash_kb = 1\n" + body)
        with pytest.raises(EdgekdError, match=match):
            load_budget(path)
