"""firmware_bench pieces that need no artifact: MCU arithmetic, timing statistics, code-size table, Table 3."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest
import torch

from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.model import ResNet1D, macs
from edgekd import timing
from edgekd.runtimes import TorchSession
from firmware_bench import mcu, static


def test_mcu_estimate_matches_a_hand_calculation_from_the_toml() -> None:
    doc = tomllib.loads(mcu.TARGETS_FILE.read_text())
    band = doc["band"]
    for name in ("m4-64-cmsisnn", "m7-216-plumerai"):
        entry = doc["targets"][name]
        n = macs(4)
        hand_ms = n * entry["cycles_per_mac"] / (entry["clock_mhz"] * 1e6) * 1e3
        row = mcu.estimate(n, mcu.select([name])[0])
        assert row["latency_ms"] == pytest.approx(hand_ms, rel=1e-12)
        assert row["latency_low_ms"] == pytest.approx(hand_ms / band)
        assert row["latency_high_ms"] == pytest.approx(hand_ms * band)
        if "power_mw" in entry:
            assert row["energy_mj"] == pytest.approx(entry["power_mw"] * hand_ms / 1e3)
        else:
            assert row["energy_mj"] is None
    # 4 blocks on the M4 @ 64 MHz, by hand: 4,645,760 MACs x 3.74 cycles / 64e6 Hz = 271.487 ms
    assert macs(4) == 4_645_760
    assert mcu.estimate(macs(4), mcu.select(["m4-64-cmsisnn"])[0])["latency_ms"] == pytest.approx(271.487, abs=1e-3)


def test_mcu_table_lists_the_reference_rows_and_rejects_bad_input(tmp_path) -> None:
    targets = mcu.load_targets()
    assert {t.core.cycles_per_mac for t in targets.values()} >= {3.74, 2.18, 1.66, 1.79, 1.12, 1.22, 0.33}
    assert all(t.source.startswith("MLPerf Tiny") for t in targets.values())
    with pytest.raises(EdgekdError, match="unknown MCU nope"):
        mcu.select(["nope"])
    with pytest.raises(EdgekdError, match="positive MAC"):
        mcu.estimate(0, targets["m4-64-cmsisnn"])
    bad = tmp_path / "t.toml"
    bad.write_text('[targets.x]\nclock_mhz = 10\ncycles_per_mac = 1.0\npower_mw = -3\n')
    with pytest.raises(EdgekdError, match="power_mw"):
        mcu.load_targets(bad)


def test_timing_statistics() -> None:
    t = timing.summarise([0.001, 0.002, 0.003, 0.004, 0.010], batch=4)
    assert t.median_ms == pytest.approx(3.0) and t.min_ms == pytest.approx(1.0) and t.n == 5
    assert t.p90_ms == pytest.approx(7.6)  # linear interpolation between 4 ms and 10 ms
    assert t.throughput == pytest.approx(4 / 0.003)
    with pytest.raises(EdgekdError):
        timing.summarise([])
    with pytest.raises(EdgekdError):
        timing.time_calls(lambda: None, repeat=0)
    calls = []
    t = timing.time_calls(lambda: calls.append(1), repeat=7, warmup=3, sync=lambda: calls.append(0))
    assert calls.count(1) == 10 and t.n == 7


def test_runtime_code_estimate_needs_every_op() -> None:
    code, unknown = static.runtime_code_bytes(["CONV_2D", "CONV_2D", "ADD"])
    assert code == static.TFLM_CORE_CODE_BYTES + static.TFLM_OP_CODE_BYTES["CONV_2D"] + \
        static.TFLM_OP_CODE_BYTES["ADD"]
    assert static.runtime_code_bytes(["CONV_2D", "LSTM"]) == (None, ["LSTM"])


def test_torch_cpu_path_and_its_probe() -> None:
    session = TorchSession(ResNet1D(1), "cpu")
    reset, peak, sync = session.memory_probe()
    reset()
    assert peak() is None and sync is None
    figures = session.time(repeat=3, large_batch=4)
    assert figures["batch_4"]["batch"] == 4 and figures["batch_1"]["median_ms"] > 0
    assert figures["batch_1"]["peak_memory_bytes"] is None
    assert session.logits(np.zeros((3, 1, 200), np.float32)).shape == (3, 180)
    with pytest.raises(EdgekdError, match="unknown torch device"):
        TorchSession(ResNet1D(1), "tpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_cuda_path() -> None:
    session = TorchSession(ResNet1D(2), "cuda")
    figures = session.time(repeat=10, large_batch=512)
    assert figures["batch_512"]["peak_memory_bytes"] > 0
    assert session.device()["name"]
    x = np.random.default_rng(0).standard_normal((8, 1, 200)).astype(np.float32)
    model = ResNet1D(2)
    cpu = TorchSession(model, "cpu").logits(x)
    assert np.abs(TorchSession(model, "cuda").logits(x) - cpu).max() < 1e-3  # FP32 on both: no autocast


def test_table3_cli_on_onnx_runtime(tmp_path, capsys) -> None:
    assert main(["bench", "--table3", "--blocks", "1", "3", "--windows", "64", "--batch", "32",
                 "--mcu", "m7-216-plumerai", "--out", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    rows = result["table3"]
    assert [(e["blocks"], e["target"]) for e in result["mcu"]] == [(1, "m7-216-plumerai"), (3, "m7-216-plumerai")]
    assert result["mcu"][1]["macs"] == macs(3)
    cpu = [r for r in rows if r["runtime"] == "onnx"]  # registry names (edgekd.runtimes)
    assert [r["blocks"] for r in cpu] == [1, 3]
    assert all(r["time_s"] > 0 and r["peak_memory_bytes"] > 0 and r["windows"] == 64 for r in cpu)
    assert len([r for r in rows if r["runtime"] == "cuda"]) == (2 if torch.cuda.is_available() else 0)
    saved = json.loads((tmp_path / "table3.json").read_text())
    assert saved["figures"] == result and saved["settings"]["windows"] == 64
    assert main(["bench", "--table3", "--blocks", "13"]) == 2
    assert main(["bench", "--table3", "--blocks", "1", "--mcu", "z80"]) == 2
    with pytest.raises(SystemExit) as exc:  # argparse refuses it before anything runs
        main(["bench", "--table3", "--windows", "0", "--blocks", "1"])
    assert exc.value.code == 2


def test_table3_table_is_a_study_record_report_regenerates(tmp_path, capsys) -> None:
    from edgekd.study_report import render

    table = tmp_path / "results" / "table3.md"
    assert main(["bench", "--table3", "--blocks", "1", "2", "--windows", "32", "--batch", "16",
                 "--mcu", "m4-64-cmsisnn", "--table", str(table)]) == 0
    text = table.read_text()
    assert text == render(table.with_suffix(".json"))
    assert "| blocks | 1 | 2 |" in text and "| 1 | m4-64-cmsisnn |" in text
    assert "Regenerate: `edgekd bench --table3 --blocks 1 2" in text
    capsys.readouterr()
    assert main(["bench", str(tmp_path), "--table", str(table)]) == 2  # --table is the --table3 study's
    assert "--table writes the --table3 study" in capsys.readouterr().err
