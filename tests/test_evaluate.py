"""MAE reports and `edgekd evaluate` / `edgekd train` on run folders."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest

from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.evaluate import mae_report
from edgekd.fusion import MODEL_ONLY, FusionConfig
from edgekd.windowset import WindowSet


def _ws(hr, subjects, recordings):
    n = len(hr)
    return WindowSet(x=np.zeros((n, 1, 200), np.float32), hr=np.asarray(hr, np.float32), subject=subjects,
                     recording=recordings, activity=np.array(["rest"] * (n - 1) + ["run"]))


def test_mae_report_by_hand():
    ws = _ws([60, 80, 100, 120], ["a", "a", "b", "b"], ["a1", "a2", "b1", "b1"])
    logits = np.full((4, 180), -50.0, np.float32)
    for i, bpm in enumerate([62, 80, 90, 125]):  # argmax errors 2, 0, 10, 5
        logits[i, bpm - 30] = 50.0
    r = mae_report(logits, ws, FusionConfig())
    assert r["mae_argmax"] == pytest.approx(17 / 4)
    assert r["mae_expectation"] == pytest.approx(17 / 4, abs=1e-3)  # one-hot: expectation = argmax
    assert r["per_subject"]["a"]["mae_argmax"] == pytest.approx(1.0)
    assert r["per_subject"]["b"]["mae_argmax"] == pytest.approx(7.5)
    assert r["per_recording"]["a2"]["mae_argmax"] == 0.0 and r["per_recording"]["b1"]["windows"] == 2
    assert r["per_activity"]["run"]["mae_argmax"] == pytest.approx(5.0)
    # Expectation decoding differs from argmax on a two-peaked distribution: halfway between the peaks.
    two = np.full((1, 180), -50.0, np.float32)
    two[0, [60 - 30, 80 - 30]] = 50.0
    r2 = mae_report(two, _ws([70], ["a"], ["a1"]), FusionConfig())
    assert r2["mae_expectation"] == pytest.approx(0.0, abs=1e-3) and r2["mae_argmax"] == pytest.approx(10.0)
    with pytest.raises(EdgekdError, match="2 predictions for 4 windows"):
        mae_report(logits[:2], ws, FusionConfig())


def test_tracked_mae_rejects_a_one_window_outlier():
    n = 30
    hr = np.full(n, 75.0)
    ws = _ws(hr, ["a"] * n, ["a1"] * n)
    logits = np.zeros((n, 180), np.float32)
    logits[:, 75 - 30] = 6.0
    logits[15, 75 - 30], logits[15, 150 - 30] = 0.0, 6.0  # a motion window whose peak jumps to 150 BPM
    r = mae_report(logits, ws, FusionConfig())
    assert r["mae_argmax"] == pytest.approx(75 / n)
    assert r["mae_causal"] < 0.5


def test_fused_mae_uses_the_ppg_spectrum_where_the_model_is_wrong():
    n = 20
    t = np.arange(200) / 25.0
    x = np.tile(np.sin(2 * np.pi * 80 / 60 * t)[None, None], (n, 1, 1)).astype(np.float32)  # pulse at 80 BPM
    ws = WindowSet(x=x, hr=np.full(n, 80.0), subject=["a"] * n, recording=["a1"] * n)
    logits = np.zeros((n, 180), np.float32)
    logits[:, 100 - 30] = 2.0  # a model that says 100 BPM, not very sure
    r = mae_report(logits, ws, FusionConfig())
    assert r["mae_causal"] == pytest.approx(20.0)
    assert r["mae_fused"] <= 2.0 and r["fusion"] == asdict(FusionConfig())
    assert mae_report(logits, ws, MODEL_ONLY)["mae_fused"] == pytest.approx(20.0)


def test_cli_train_then_evaluate(small_synth, tmp_path, capsys):
    data = small_synth.save(tmp_path / "ws.npz")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--blocks", "1", "--epochs", "1", "--quiet", "--json",
                 "--out", str(run)]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert (run / "metrics.json").exists() and trained["epochs_run"] == 1
    assert main(["evaluate", str(run), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["windows"] == len(small_synth)
    assert set(report["per_subject"]) == set(small_synth.subjects())
    assert set(report["per_recording"]) == set(small_synth.recording.tolist())
    assert main(["evaluate", str(run), "--data", str(data)]) == 0
    text = capsys.readouterr().out
    assert "per subject" in text and "per recording" in text and "fused@90%" in text
    assert main(["evaluate", str(run), "--data", str(data), "--fusion-weight", "0", "--model-weight", "1",
                 "--clear-quality", "0", "--motion-g", "0", "--json"]) == 0  # the model alone
    alone = json.loads(capsys.readouterr().out)
    assert alone["mae_fused"] == pytest.approx(alone["mae_causal"])
    # A 4-channel model on PPG-only data, and a folder that is no run: clean errors, exit 2.
    four = tmp_path / "four"
    assert main(["train", "--data", str(data), "--blocks", "1", "--in-channels", "4", "--epochs", "1", "--quiet",
                 "--out", str(four)]) == 0
    ppg = small_synth.ppg_only().save(tmp_path / "ppg.npz")
    capsys.readouterr()
    assert main(["evaluate", str(four), "--data", str(ppg)]) == 2
    assert "expects 4 input channels" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--data", str(data)]) == 2
    assert "not a run or artifact folder" in capsys.readouterr().err
