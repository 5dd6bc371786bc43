"""Spectral fusion (edgekd.fusion) and the firmware C version (export/tracker/hr_spectral.c) that must agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from edgekd.baseline import BaselineConfig
from edgekd.bpm import BPM_MIN, N_CLASSES, bin_bpms
from edgekd.errors import EdgekdError
from edgekd.fusion import (ACC_BPM, MODEL_ONLY, MOTION_GATED, SPECTRUM_ONLY, FusionConfig, decoder_label, fuse, plain,
                           spectral_evidence, spectral_quality, spectral_track, window_motion)
from edgekd.geometry import FS, WINDOW
from edgekd.tracking import causal_track, decode_recordings
from edgekd.windowset import WindowSet
from export.tracker_tables import TABLES_FILE, tables_source
from c_harness import TRACKER_DIR, compile_tracker_harness


# Test main: argv = weight floor T in_logits.bin in_windows.bin out.bin ppg|acc model_weight clear_quality
# unclear_weight motion_g. Windows are T x 4 x 200 float32 (PPG, ACC x, y, z) or T x 1 x 200 when argv[7] is "ppg";
# writes T x 180 float32 evidence, T float32 motions, then T int32 classes of the causal tracker (sigma 3, T 1,
# Gaussian, floor 1e-3) on the fused logits.
HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hr_spectral.h"
int main(int argc, char **argv) {
    if (argc != 12) return 3;
    float weight = strtof(argv[1], NULL), floor_p = strtof(argv[2], NULL), model_weight = strtof(argv[8], NULL);
    float clear_quality = strtof(argv[9], NULL), unclear_weight = strtof(argv[10], NULL);
    float motion_g = strtof(argv[11], NULL);
    int T = atoi(argv[3]), ppg_only = strcmp(argv[7], "ppg") == 0, C = ppg_only ? 1 : 4, t;
    FILE *fl = fopen(argv[4], "rb"), *fw = fopen(argv[5], "rb"), *out = fopen(argv[6], "wb");
    if (!fl || !fw || !out) return 5;
    static float ev[100000][HR_TRACKER_N_CLASSES], motion[100000];
    static int32_t cls[100000];
    hr_tracker_t tr;
    if (T > 100000 || hr_tracker_init(&tr, 3.0f, 1.0f, HR_TRACKER_GAUSSIAN, 1e-3f) != 0) return 4;
    for (t = 0; t < T; ++t) {
        float z[HR_TRACKER_N_CLASSES], x[4][HR_SPECTRAL_N];
        if (fread(z, 4, HR_TRACKER_N_CLASSES, fl) != HR_TRACKER_N_CLASSES) return 6;
        if (fread(x, 4, (size_t)C * HR_SPECTRAL_N, fw) != (size_t)C * HR_SPECTRAL_N) return 6;
        if (ppg_only) {
            hr_spectral_evidence(x[0], NULL, NULL, NULL, ev[t]);
            motion[t] = hr_spectral_motion(NULL, NULL, NULL);
        } else {
            hr_spectral_evidence(x[0], x[1], x[2], x[3], ev[t]);
            motion[t] = hr_spectral_motion(x[1], x[2], x[3]);
        }
        hr_spectral_fuse(z, ev[t], motion[t], model_weight, weight, floor_p, clear_quality, unclear_weight, motion_g);
        cls[t] = hr_tracker_update_f32(&tr, z);
    }
    fwrite(ev, 4, (size_t)T * HR_TRACKER_N_CLASSES, out);
    fwrite(motion, 4, (size_t)T, out);
    fwrite(cls, 4, (size_t)T, out);
    fclose(fl); fclose(fw); fclose(out);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_fusion(tmp_path_factory) -> Path:
    return compile_tracker_harness(tmp_path_factory.mktemp("fusion"), HARNESS, ("hr_spectral.c", "hr_tracker.c"))


def _run_c(exe: Path, tmp: Path, logits: np.ndarray, x: np.ndarray, cfg: FusionConfig) -> tuple[np.ndarray, ...]:
    """(evidence [T, 180], motion [T], tracker classes [T]) as the C computes them."""
    (tmp / "logits.bin").write_bytes(np.ascontiguousarray(logits, np.float32).tobytes())
    (tmp / "x.bin").write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
    subprocess.run([str(exe), repr(cfg.weight), repr(cfg.floor), str(len(x)), str(tmp / "logits.bin"),
                    str(tmp / "x.bin"), str(tmp / "out.bin"), "ppg" if x.shape[1] == 1 else "acc",
                    repr(cfg.model_weight), repr(cfg.clear_quality), repr(cfg.unclear_weight), repr(cfg.motion_g)],
                   check=True)
    raw = np.fromfile(tmp / "out.bin", dtype=np.float32)
    t = len(x)
    return (raw[:t * N_CLASSES].reshape(t, N_CLASSES), raw[t * N_CLASSES:t * (N_CLASSES + 1)],
            raw[t * (N_CLASSES + 1):].view(np.int32))


def _windows(hr_bpm: float, motion_bpm: float | None, n: int = 1, motion_gain: float = 3.0) -> WindowSet:
    """PPG = a pulse at hr_bpm (+ a stronger motion component at motion_bpm); ACC = the motion alone."""
    t = np.arange(WINDOW) / FS
    ppg = np.sin(2 * np.pi * hr_bpm / 60 * t)
    acc = np.zeros((3, WINDOW))
    if motion_bpm is not None:
        ppg = ppg + motion_gain * np.sin(2 * np.pi * motion_bpm / 60 * t)
        acc[0] = np.sin(2 * np.pi * motion_bpm / 60 * t)
        acc[1] = 0.5 * np.cos(2 * np.pi * motion_bpm / 60 * t)
    x = np.tile(np.concatenate([ppg[None], acc])[None], (n, 1, 1)).astype(np.float32)
    return WindowSet(x=x, hr=np.full(n, hr_bpm), subject=["s"] * n, recording=["r"] * n,
                     channels=("ppg", "acc_x", "acc_y", "acc_z"))


def test_evidence_peaks_at_the_pulse_of_a_clean_window():
    ev = spectral_evidence(_windows(84.0, None))
    assert ev.shape == (1, N_CLASSES) and ev.dtype == np.float32
    assert ev.max() == pytest.approx(1.0)
    assert abs(bin_bpms()[ev[0].argmax()] - 84.0) <= 1


def test_motion_suppression_moves_the_peak_from_the_cadence_to_the_pulse():
    ws = _windows(75.0, 130.0)
    with_acc = spectral_evidence(ws)[0]
    ppg_only = spectral_evidence(ws.ppg_only())[0]
    assert abs(bin_bpms()[ppg_only.argmax()] - 130.0) <= 1   # the motion dominates the raw PPG spectrum ...
    assert abs(bin_bpms()[with_acc.argmax()] - 75.0) <= 1    # ... until the ACC frequencies are attenuated


def test_fusion_weight_zero_is_the_model_and_spectrum_can_overrule_it(rng):
    ws = _windows(90.0, None, n=3)
    ev = spectral_evidence(ws)
    logits = rng.normal(0, 0.1, (3, N_CLASSES)).astype(np.float32)
    logits[:, 120 - BPM_MIN] += 2.0  # the model says 120
    np.testing.assert_array_equal(fuse(logits, ev, MODEL_ONLY), logits)
    fused = bin_bpms()[fuse(logits, ev, plain(1.0, 2.0)).argmax(1)]
    assert (np.abs(fused - 90) <= 2).all()  # the spectral peak is broad (8 s window), the noise moves it a little


def test_fusion_rejects_bad_settings_and_shapes():
    with pytest.raises(EdgekdError, match="weight"):
        FusionConfig(weight=-1.0)
    with pytest.raises(EdgekdError, match="floor"):
        FusionConfig(floor=0.0)
    with pytest.raises(EdgekdError, match=r"\[N, 180\]"):
        fuse(np.zeros((2, N_CLASSES)), np.zeros((3, N_CLASSES)))


def test_c_matches_python_on_synthetic_recordings(c_fusion, tmp_path, small_synth, rng):
    ws = small_synth.subset(np.flatnonzero(small_synth.recording == small_synth.recording[0]))
    # Model-like logits: a bump near the label on most windows, a wrong one elsewhere on a quarter of them.
    truth = np.round(ws.hr).astype(int) - BPM_MIN
    logits = rng.normal(0, 0.5, (len(ws), N_CLASSES)).astype(np.float32)
    logits[np.arange(len(ws)), truth] += 3.0
    wrong = rng.random(len(ws)) < 0.25
    logits[wrong, rng.integers(0, N_CLASSES, wrong.sum())] += 5.0
    for cfg, data in ((plain(1.0, 2.0), ws), (plain(1.0, 2.0), ws.ppg_only()), (plain(0.25, 1.0), ws),
                      (FusionConfig(weight=1.0, model_weight=0.25, clear_quality=0.3, unclear_weight=0.25, motion_g=0.0),
                       ws),
                      (FusionConfig(weight=1.0, model_weight=0.5, clear_quality=0.0, unclear_weight=0.0,
                                    motion_g=0.1), ws),
                      (FusionConfig(weight=1.0, model_weight=0.5, clear_quality=0.0, unclear_weight=0.0,
                                    motion_g=0.1), ws.ppg_only()),
                      (FusionConfig(), ws)):
        ev, motion = spectral_evidence(data), window_motion(data)
        c_ev, c_motion, c_cls = _run_c(c_fusion, tmp_path, logits, data.x, cfg)
        np.testing.assert_array_equal(c_ev, ev)  # bit-exact: same float32 operations in the same order
        np.testing.assert_array_equal(c_motion, motion)
        np.testing.assert_array_equal(c_cls, causal_track(fuse(logits, ev, cfg, motion)))


def test_c_header_agrees_with_python_constants():
    header = (TRACKER_DIR / "hr_spectral.h").read_text()
    defines = dict(re.findall(r"#define HR_SPECTRAL_(\w+) ([0-9.]+)f?\b", header))
    cfg = BaselineConfig()
    assert float(defines["ACC_TOL_BPM"]) == cfg.acc_tol_bpm
    assert int(defines["ACC_HARMONICS"]) == cfg.acc_harmonics
    assert float(defines["ACC_ATTENUATION"]) == cfg.acc_attenuation
    assert int(defines["ACC_PEAKS"]) == cfg.acc_peaks
    assert float(defines["ACC_PROMINENCE"]) == cfg.acc_prominence
    assert int(defines["ACC_MIN_BPM"]) == ACC_BPM[0] and int(defines["N"]) == WINDOW
    assert {f.name for f in fields(BaselineConfig) if f.name.startswith("acc_")} == {
        "acc_tol_bpm", "acc_harmonics", "acc_attenuation", "acc_peaks", "acc_prominence"}


def test_c_tables_are_what_python_generates():
    """The const tables hr_spectral.c reads are edgekd.fusion's float32 values (FS, window, BPM grid inside)."""
    assert (TRACKER_DIR / TABLES_FILE).read_text() == tables_source(), \
        "export/tracker/hr_spectral_tables.h is stale: run python -m export.tracker_tables"


@pytest.mark.parametrize("source", ["hr_spectral.c", "hr_tracker.c"])
def test_firmware_c_is_single_precision(tmp_path, source):
    """No double arithmetic (gcc -Wdouble-promotion) and no double libm call: a Cortex-M4F has no double unit."""
    cc = shutil.which("cc") or shutil.which("gcc")
    obj = tmp_path / "x.o"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wdouble-promotion", "-Wfloat-conversion",
                    f"-I{TRACKER_DIR}", "-c", str(TRACKER_DIR / source), "-o", str(obj)], check=True)
    undefined = set(subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True, check=True).stdout.split())
    assert undefined - {"U"} <= {"logf", "expf", "fabsf", "ceilf", "frexpf", "sqrtf"}, undefined


def test_model_weight_zero_is_the_spectral_baseline(small_synth, rng):
    logits = rng.normal(0, 3.0, (len(small_synth), N_CLASSES)).astype(np.float32)
    ev = spectral_evidence(small_synth)
    fused = fuse(logits, ev, SPECTRUM_ONLY)
    np.testing.assert_array_equal(decode_recordings(fused, small_synth.recording), spectral_track(small_synth))
    with pytest.raises(EdgekdError, match="model_weight"):
        FusionConfig(model_weight=-0.5)


def test_clear_spectrum_decides_alone_and_unclear_windows_ask_the_model(rng):
    clean = _windows(100.0, None)
    noise = WindowSet(x=rng.normal(size=(1, 4, WINDOW)).astype(np.float32), hr=np.array([100.0]),
                      subject=np.array(["s"]), recording=np.array(["r"]), channels=("ppg", "acc_x", "acc_y", "acc_z"))
    ev = np.concatenate([spectral_evidence(clean), spectral_evidence(noise)])
    q = spectral_quality(ev)
    assert q[0] > 0.5 > 0.2 > q[1] > 0.0
    logits = rng.normal(0, 3.0, (2, N_CLASSES)).astype(np.float32)
    cfg = FusionConfig(weight=1.0, model_weight=0.5, clear_quality=0.3, unclear_weight=0.25, motion_g=0.0)
    fused = fuse(logits, ev, cfg)
    log_ev = np.log(np.float32(cfg.floor) + ev)
    np.testing.assert_array_equal(fused[0], (np.float32(1.0) * log_ev[0]).astype(np.float32))  # model ignored
    np.testing.assert_array_equal(fused[1], (np.float32(0.5) * logits[1] + np.float32(0.25) * log_ev[1]))
    # clear_quality 0 is the plain formula on every window
    np.testing.assert_array_equal(fuse(logits, ev, plain(0.5, 1.0)),
                                  np.float32(0.5) * logits + np.float32(1.0) * log_ev)
    with pytest.raises(EdgekdError, match="clear_quality"):
        FusionConfig(clear_quality=1.5)


def test_c_switch_matches_python_on_a_real_wrist_recording(c_fusion, tmp_path, wrist_root, rng):
    """The clear/unclear switch on real spectra (walking: windows on both sides of the threshold) picks the
    same windows in C as in NumPy, so the tracker's classes agree."""
    from edgekd.data import load_dataset

    ws = load_dataset("wrist-exercise", wrist_root)
    ws = ws.subset(np.flatnonzero(ws.recording == "s2_walk"))
    logits = rng.normal(0, 2.0, (len(ws), N_CLASSES)).astype(np.float32)
    ev = spectral_evidence(ws)
    cfg = FusionConfig(weight=1.0, model_weight=0.25, clear_quality=0.2, unclear_weight=0.25, motion_g=0.0)
    assert 0.2 < (spectral_quality(ev) >= np.float32(0.2)).mean() < 0.8
    c_ev, _, c_cls = _run_c(c_fusion, tmp_path, logits, ws.x, cfg)
    np.testing.assert_array_equal(c_ev, ev)
    np.testing.assert_array_equal(c_cls, causal_track(fuse(logits, ev, cfg)))


def test_c_motion_gate_matches_python_on_real_wrist_recordings(c_fusion, tmp_path, wrist_root, rng):
    """The motion gate on real accelerometers (cycling stays under 0.1 g, walking and running go over it):
    hr_spectral_motion is bit-exact with window_motion and the gate picks the same windows, so the classes agree."""
    from edgekd.data import load_dataset

    ws = load_dataset("wrist-exercise", wrist_root)
    ws = ws.subset(np.flatnonzero(np.isin(ws.recording, ["s2_walk", "s2_low_resistance_bike"])))
    logits = rng.normal(0, 2.0, (len(ws), N_CLASSES)).astype(np.float32)
    ev, motion = spectral_evidence(ws), window_motion(ws)
    assert 0.2 < (motion >= np.float32(0.1)).mean() < 0.8  # both sides of the gate
    for cfg in (FusionConfig(weight=1.0, model_weight=0.25, clear_quality=0.0, unclear_weight=0.0, motion_g=0.1),
                FusionConfig(weight=1.0, model_weight=0.25, clear_quality=0.2, unclear_weight=0.25, motion_g=0.1)):
        c_ev, c_motion, c_cls = _run_c(c_fusion, tmp_path, logits, ws.x, cfg)
        np.testing.assert_array_equal(c_motion, motion)
        np.testing.assert_array_equal(c_cls, causal_track(fuse(logits, ev, cfg, motion)))


def test_motion_gate_sends_moving_windows_to_the_model(rng):
    """A clear spectrum on a moving wrist is not trusted: with motion_g the window fuses the model, still windows
    keep the spectrum alone; data without accelerometer have motion 0; a gate without motions is refused."""
    still, moving = _windows(100.0, None), _windows(100.0, 150.0, motion_gain=0.2)
    ws_ev = np.concatenate([spectral_evidence(still), spectral_evidence(moving)])
    motion = np.concatenate([window_motion(still), window_motion(moving)])
    assert motion[0] == 0 and motion[1] > 0.5  # sin + 0.5 cos: RMS sqrt(0.5 + 0.125) g
    np.testing.assert_allclose(motion[1], np.sqrt(0.625), rtol=0.05)
    assert (spectral_quality(ws_ev) > 0.3).all()  # both look clear to the quality switch
    logits = rng.normal(0, 3.0, (2, N_CLASSES)).astype(np.float32)
    cfg = FusionConfig(weight=1.0, model_weight=0.5, clear_quality=0.3, unclear_weight=0.25, motion_g=0.1)
    fused = fuse(logits, ws_ev, cfg, motion)
    log_ev = np.log(np.float32(cfg.floor) + ws_ev)
    np.testing.assert_array_equal(fused[0], log_ev[0])  # still and clear: the spectrum alone
    np.testing.assert_array_equal(fused[1], np.float32(0.5) * logits[1] + np.float32(0.25) * log_ev[1])
    # without the gate the moving window counts as clear
    np.testing.assert_array_equal(fuse(logits, ws_ev, replace(cfg, motion_g=0.0))[1], log_ev[1])
    assert (window_motion(moving.ppg_only()) == 0).all()
    with pytest.raises(EdgekdError, match="motion"):
        fuse(logits, ws_ev, cfg)
    with pytest.raises(EdgekdError, match="motion_g"):
        FusionConfig(motion_g=-0.1)
    assert decoder_label(cfg) == "a=0.5 w=1 q=0.3 u=0.25 m=0.1"


def test_each_family_ships_its_decoder_and_a_flag_replaces_one_field():
    """export / evaluate without decoder flags use the student family's shipped decoder (window students: the
    quality switch; spectral students: the motion-gated one); a given flag replaces that field alone."""
    import argparse

    from edgekd.arch import default_decoder
    from edgekd.cli.args import add_decoder_args, decoder_config

    p = argparse.ArgumentParser()
    add_decoder_args(p)
    resnet = {"blocks": 2, "in_channels": 4, "n_classes": N_CLASSES}
    spectral = {"family": "spectral", "blocks": 4, "width": 7, "in_channels": 4, "n_classes": N_CLASSES}
    resnet, spectral = default_decoder(resnet), default_decoder(spectral)
    assert decoder_config(p.parse_args([]), resnet) == FusionConfig()
    assert decoder_config(p.parse_args([]), spectral) == MOTION_GATED and MOTION_GATED.motion_g > 0
    assert decoder_config(p.parse_args(["--motion-g", "0"]), spectral) == replace(MOTION_GATED, motion_g=0.0)
    assert decoder_config(p.parse_args(["--motion-g", "0.1", "--clear-quality", "0"]), resnet) == replace(
        FusionConfig(), motion_g=0.1, clear_quality=0.0)
