"""firmware_bench on one tiny exported artifact (conftest's ``tiny_artifact``, built once per session)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.model import deployed_param_count, macs
from edgekd import tflm_host
from firmware_bench import records, vela
from edgekd.layout import TFLITE_INT8
from firmware_bench.artifact import load_artifact
from firmware_bench.bench import RUNTIMES, run_bench, verify_card_arena

REPEAT = 5  # a few calls prove each path runs; timings themselves are never asserted


@pytest.fixture(scope="session")
def artifact(tiny_artifact: Path) -> Path:
    return tiny_artifact


@pytest.fixture(scope="module")
def bench_records(artifact: Path) -> list[dict]:
    return run_bench(artifact, ["torch", "onnx", "onnx-int8", "litert", "tflm"], ["m4-64-cmsisnn"],
                     repeat=REPEAT, threads=1, large_batch=8)


def _by_runtime(recs: list[dict]) -> dict[str, dict]:
    return {r["runtime"]: r for r in recs}


def test_records_have_sane_fields(bench_records: list[dict], artifact: Path, tmp_path: Path) -> None:
    recs = _by_runtime(bench_records)
    assert set(recs) == {"torch", "onnx", "onnx-int8", "litert", "tflm", "static"}
    for name in ("torch", "onnx", "onnx-int8", "litert", "tflm"):
        rec = recs[name]
        t = rec["figures"]["batch_1"]
        assert t["median_ms"] > 0 and t["p90_ms"] >= t["median_ms"] * 0.999 and t["n"] == REPEAT
        assert rec["versions"]["onnxruntime"] and rec["versions"]["tflite-micro"]
        assert rec["artifact"]["blocks"] == 1 and rec["settings"]["repeat"] == REPEAT
    for name in ("torch", "onnx", "onnx-int8"):  # dynamic batch axis: the large batch ran too
        assert recs[name]["figures"]["batch_8"]["batch"] == 8
    static = recs["static"]["figures"]
    tflite = artifact / TFLITE_INT8
    assert static["flatbuffer_bytes"] == tflite.stat().st_size
    assert static["flash_bytes_est"] > static["flatbuffer_bytes"]
    assert static["arena_bytes"] > 0 and static["arena_bytes"] % tflm_host.ALIGN == 0
    assert static["ram_bytes"] == static["arena_bytes"] + static["io_bytes"]
    assert static["io_bytes"] == 200 + 180  # int8 window in, int8 logits out
    assert static["params"] == deployed_param_count(1) and static["macs"] == macs(1)
    assert "CONV_2D" in static["ops"]
    paths = records.write_records(bench_records, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{r}.json" for r in recs)
    assert json.loads((tmp_path / "tflm.json").read_text())["schema"] == records.SCHEMA


def test_static_record_has_vela_s_ethos_u55_estimate(bench_records: list[dict]) -> None:
    """Vela (the ethos extra, which make installs) compiles the flatbuffer for an Ethos-U55: every op on the NPU."""
    ethos = _by_runtime(bench_records)["static"]["figures"]["ethos_u"]
    if not vela.installed():
        assert "not installed" in ethos["status"]
        return
    assert ethos["accelerator"] == "Ethos_U55_128" and ethos["cpu_ops"] == 0 and ethos["npu_ops"] > 0
    assert ethos["sram_bytes"] > 0 and ethos["flash_bytes"] > 0 and ethos["cycles_total"] > 0
    assert ethos["macs"] == pytest.approx(macs(1), rel=0.05)  # Vela counts the graph's MACs itself


def test_tflm_verifies_the_card_arena(bench_records: list[dict], artifact: Path) -> None:
    f = _by_runtime(bench_records)["tflm"]["figures"]
    card_arena = load_artifact(artifact).card.arena_bytes
    assert f["card_arena_bytes"] == card_arena and f["card_arena_runs"]
    assert f["arena_bytes_measured"] <= card_arena  # the exporter recorded at least what TFLM needs
    assert f["half_arena_refused"] and "arena" in f["half_arena_message"]


def test_half_arena_is_refused_with_a_clear_error(artifact: Path) -> None:
    model = (artifact / TFLITE_INT8).read_bytes()
    card_arena = load_artifact(artifact).card.arena_bytes
    tflm_host.check_runs(model, card_arena)  # the recorded arena allocates and runs
    half = tflm_host.align(card_arena // 2)
    with pytest.raises(EdgekdError, match=rf"cannot allocate the model in a {half}-byte arena"):
        tflm_host.interpreter(model, half)
    assert verify_card_arena(model, card_arena)["half_arena_refused"]
    # an arena no model fits crashes the host interpreter instead of refusing: refused before TFLM sees it
    with pytest.raises(EdgekdError, match="too small for any model"):
        tflm_host.interpreter(model, 256)


def test_a_card_arena_that_is_not_the_firmware_s_is_refused(artifact: Path, tmp_path: Path) -> None:
    """card.json is not hashed; model_data.h is: the TFLM adapter runs the arena the firmware reserves."""
    import json
    import shutil

    from edgekd.runtimes import open_artifact

    art = Path(shutil.copytree(artifact, tmp_path / "a"))
    card = json.loads((art / "card.json").read_text())
    card["tflm"]["arena_bytes"] = 64
    (art / "card.json").write_text(json.dumps(card))
    with pytest.raises(EdgekdError, match="not the .* B model_data.h reserves"):
        open_artifact(art, "tflm")


def test_measured_arena_is_the_minimum(artifact: Path) -> None:
    model = (artifact / TFLITE_INT8).read_bytes()
    need, recommended = tflm_host.arena_bytes(model)
    tflm_host.check_runs(model, need)
    with pytest.raises(EdgekdError):  # 16 bytes less either fails to allocate or to run
        tflm_host.check_runs(model, need - tflm_host.ALIGN)
    assert recommended == tflm_host.align(int(need * tflm_host.MARGIN))


def test_missing_and_corrupt_artifacts_give_clean_errors(artifact: Path, tmp_path: Path, capsys) -> None:
    assert main(["bench", str(tmp_path / "nope")]) == 2
    assert "no such artifact folder" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "card.json").write_text("{not json")
    assert main(["bench", str(broken)]) == 2
    assert "corrupt card" in capsys.readouterr().err
    card = json.loads((artifact / "card.json").read_text())
    card["tflm"]["arena_bytes"] //= 2
    (broken / "card.json").write_text(json.dumps(card))
    assert main(["bench", str(broken), "--runtimes", "tflm", "--repeat", "2", "--out", str(tmp_path / "o")]) == 2
    assert "recorded arena" in capsys.readouterr().err
    (broken / TFLITE_INT8).write_bytes(b"\x00" * 64)
    assert main(["bench", str(broken), "--runtimes", "tflm", "--out", str(tmp_path / "o")]) == 2
    assert "model_int8.tflite: 64 bytes, card.json records" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written for a failed bench
    shutil.copy(artifact / TFLITE_INT8, broken / TFLITE_INT8)
    (broken / "model.onnx").unlink()
    with pytest.raises(EdgekdError, match="model.onnx: missing"):
        run_bench(broken, ["onnx"], repeat=1)
    with pytest.raises(EdgekdError, match="unknown runtime"):
        run_bench(artifact, ["tensorrt"], repeat=1)


def test_cli_prints_tables_and_json(artifact: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "records"
    assert main(["bench", str(artifact), "--runtimes", "onnx,tflm", "--mcu", "m4-64-cmsisnn", "m7-216-plumerai",
                 "--repeat", "3", "--batch", "4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "static costs" in text and "m7-216-plumerai" in text and "half" in text
    assert sorted(p.name for p in out.iterdir()) == ["onnx.json", "static.json", "tflm.json"]
    assert main(["bench", str(artifact), "--runtimes", "onnx", "--mcu", "m4-64-cmsisnn", "--repeat", "2",
                 "--batch", "2", "--out", str(tmp_path / "j"), "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert [r["runtime"] for r in recs] == ["onnx", "static"]
    assert recs[1]["figures"]["mcu"][0]["target"] == "m4-64-cmsisnn"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_runtime_refused_without_gpu(artifact: Path) -> None:
    assert "cuda" in RUNTIMES
    with pytest.raises(EdgekdError, match="no CUDA device"):
        run_bench(artifact, ["cuda"], repeat=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runtime_measures_peak_memory(artifact: Path) -> None:
    rec = _by_runtime(run_bench(artifact, ["cuda"], repeat=REPEAT, large_batch=64))["cuda"]
    assert rec["device"]["kind"] == "cuda" and rec["device"]["name"]
    assert rec["figures"]["batch_64"]["peak_memory_bytes"] > 4 * deployed_param_count(1)
