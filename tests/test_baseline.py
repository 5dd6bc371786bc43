"""The classical spectral-tracking baseline (edgekd.baseline) and `edgekd baseline`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.baseline import BaselineConfig, estimate, mae_report, run_baseline
from edgekd.cli.main import main
from edgekd.data import load_dataset
from edgekd.errors import EdgekdError
from edgekd.fusion import spectral_track
from edgekd.geometry import FS
from edgekd.windowset import CHANNEL_NAMES_PPG_ACC, WindowSet, concat


def _sine_windows(hr_bpm: np.ndarray, cadence_bpm: float | None, rng: np.random.Generator,
                  name: str = "r") -> WindowSet:
    """Windows of a pure pulse at ``hr_bpm`` plus (optionally) a stronger motion tone seen by the ACC."""
    t = np.arange(200) / FS
    ppg = np.sin(2 * np.pi * hr_bpm[:, None] / 60 * t) + rng.normal(0, 0.2, (len(hr_bpm), 200))
    acc = np.zeros((len(hr_bpm), 3, 200))
    if cadence_bpm is not None:
        motion = np.sin(2 * np.pi * cadence_bpm / 60 * t)
        ppg = ppg + 2.0 * motion
        acc[:] = motion * np.array([0.5, 0.3, 0.1])[:, None]
    x = np.concatenate([ppg[:, None], acc], axis=1).astype(np.float32)
    n = len(hr_bpm)
    return WindowSet(x=x, hr=hr_bpm, subject=np.full(n, name), recording=np.full(n, name),
                     channels=CHANNEL_NAMES_PPG_ACC)


def test_clean_pulse_is_found_within_a_bpm(rng):
    hr = np.linspace(70, 95, 40)
    est = estimate(_sine_windows(hr, None, rng))
    assert np.abs(est - hr).max() < 1.0


def test_acc_suppression_removes_the_motion_peak(rng):
    hr = np.linspace(120, 130, 40)
    ws = _sine_windows(hr, cadence_bpm=80.0, rng=rng)  # motion is twice the pulse amplitude
    with_acc = np.abs(estimate(ws) - hr).mean()
    ppg_only = np.abs(estimate(ws.ppg_only()) - hr).mean()
    assert ppg_only > 20  # without ACC the tracker follows the motion tone
    assert with_acc < 2


def test_tracking_stays_near_previous_estimate(rng):
    # A second, slightly stronger peak 40 BPM away appears mid-recording for two windows: tracking ignores it.
    hr = np.full(30, 80.0)
    ws = _sine_windows(hr, None, rng)
    t = np.arange(200) / FS
    ws.x[10:12, 0] += 1.3 * np.sin(2 * np.pi * 120 / 60 * t).astype(np.float32)
    est = estimate(ws, BaselineConfig(reset_after=3))
    assert np.abs(est - 80).max() < 1.0


def test_recordings_are_tracked_independently(rng):
    a = _sine_windows(np.full(20, 70.0), None, rng)
    b = _sine_windows(np.full(20, 150.0), None, rng, name="r2")
    est = estimate(concat([a, b]))
    assert np.abs(est[:20] - 70).max() < 1 and np.abs(est[20:] - 150).max() < 1


def test_report_has_overall_and_per_subject(small_synth):
    pred, report = run_baseline(small_synth)
    err = np.abs(pred - small_synth.hr)
    assert report["mae"] == pytest.approx(float(err.mean()))
    assert set(report["per_subject"]) == set(small_synth.subjects())
    assert report["uses_acc"] is True
    # ACC suppression must help on the synthetic corpus, whose artefacts are correlated with its ACC.
    assert report["mae"] < run_baseline(small_synth.ppg_only())[1]["mae"]


def test_empty_windowset_raises(small_synth):
    with pytest.raises(EdgekdError, match="no windows"):
        estimate(small_synth.subset(np.array([], dtype=int)))


def test_cli_json_and_table(tmp_path, small_synth, capsys):
    path = small_synth.save(tmp_path / "s.npz")
    assert main(["baseline", "--data", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["windows"] == len(small_synth) and report["mae"] > 0
    assert main(["baseline", "--data", str(path)]) == 0
    assert "ALL" in capsys.readouterr().out
    assert main(["baseline", "--data", str(path), "--method", "hmm", "--json"]) == 0
    hmm = json.loads(capsys.readouterr().out)
    assert hmm["method"] == "hmm" and hmm["uses_acc"] and hmm["windows"] == len(small_synth) and hmm["mae"] > 0
    with pytest.raises(SystemExit) as exc:
        main(["baseline", "--data", str(path), "--method", "nope"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["baseline", "--data", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_real_ieee_spc(ieee_root):
    """On the 13 IEEE SPC recordings the ACC-suppressed tracker must beat the PPG-only one by a wide margin
    (measured 4.8 vs 9.1 BPM); TROIKA reports 2.34 BPM with a far more elaborate method."""
    ws = load_dataset("ieee-spc2015", ieee_root)
    _, report = run_baseline(ws)
    _, ppg_only = run_baseline(ws.ppg_only())
    assert report["mae"] < 7.0
    assert report["mae"] < 0.75 * ppg_only["mae"]
    # The causal HMM tracker on the firmware's 1-BPM spectral evidence does better still (measured 3.45 BPM).
    hmm = mae_report(ws, spectral_track(ws))
    assert hmm["mae"] < report["mae"]
