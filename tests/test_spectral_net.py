"""The spectral student family (edgekd.spectral_net on edgekd.spectral_input): its front end against the
C-order NumPy reference, the properties that make it transfer, and the places a student goes."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd import arch, spectral_net
from edgekd.bpm import bin_bpms, decode_argmax
from edgekd.errors import EdgekdError
from edgekd.fusion import MOTION_GATED, spectral_evidence
from edgekd.runs import RunConfig, model_entry
from edgekd.spectral_input import EVIDENCE, FLOOR, N_FEATURES, TorchFeatures, features, log32

SPEC = {"family": "spectral", "blocks": 3, "width": 16, "in_channels": 4, "n_classes": 180}


def test_torch_front_end_equals_the_c_order_reference(small_synth):
    """The network's own spectra (matrix products) and the NumPy Goertzel reference agree to float rounding,
    ACC suppression included; PPG-only windows and zero-filled ACC (a merged PPG-only set) give the constant
    ACC channels and an unsuppressed evidence."""
    ref = features(small_synth.x, small_synth.acc_channels)
    got = TorchFeatures(4)(torch.tensor(small_synth.x)).numpy()
    assert ref.shape == got.shape == (len(small_synth), N_FEATURES, 180)
    assert np.abs(ref - got).max() < 1e-3
    # the evidence channel is the fusion's evidence, the one the decoder and firmware use
    np.testing.assert_allclose(ref[:, EVIDENCE], np.log(FLOOR + spectral_evidence(small_synth)), atol=1e-6)
    ppg = small_synth.x[:, :1]
    only = features(ppg, [])
    assert np.all(only[:, 3:6] == np.float32(np.log(np.float32(FLOOR))))
    assert np.abs(only - TorchFeatures(1)(torch.tensor(ppg)).numpy()).max() < 1e-3
    zero_acc = np.concatenate([ppg, np.zeros_like(small_synth.x[:, 1:])], axis=1)
    np.testing.assert_allclose(features(zero_acc, [1, 2, 3]), only, atol=1e-6)
    assert np.abs(TorchFeatures(4)(torch.tensor(zero_acc)).numpy() - only).max() < 1e-3


def test_suppression_hits_the_cadence_and_its_harmonic():
    """An ACC oscillation at 120 BPM (2 Hz) suppresses the evidence around 120 and 240 (out of range) BPM,
    exactly as edgekd.baseline.acc_suppression does for the decoder."""
    t = np.arange(200) / 25.0
    x = np.zeros((1, 4, 200), np.float32)
    x[0, 0] = np.sin(2 * np.pi * 1.5 * t) + np.sin(2 * np.pi * 2.0 * t)  # pulse at 90 BPM + motion leak at 120
    x[0, 1] = np.sin(2 * np.pi * 2.0 * t)
    ev = TorchFeatures(4)(torch.tensor(x))[0, EVIDENCE].numpy()
    bpm = bin_bpms()
    assert bpm[ev.argmax()] == pytest.approx(90, abs=1)
    assert ev[np.abs(bpm - 120) <= 5].max() < ev.max() - 2  # attenuated x 0.1 (log space)
    np.testing.assert_allclose(ev, features(x, [1, 2, 3])[0, EVIDENCE], atol=1e-4)


def test_an_untrained_correction_is_the_spectrum_and_every_bpm_is_treated_alike():
    """With the head at zero the logits are the evidence channel (the model starts from the spectrum); and the
    learned part is a convolution along frequency: shifting its input by k bins shifts the correction by k
    (away from the edges), so the network holds no prior over absolute heart rate."""
    torch.manual_seed(0)
    model = arch.build(SPEC).eval()
    f = torch.randn(2, N_FEATURES, 180)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        assert torch.equal(model.from_spectra(f)[0], f[:, EVIDENCE])
        torch.nn.init.normal_(model.head.weight)
        k = 20
        a = model.from_spectra(f)[0] - f[:, EVIDENCE]
        b = model.from_spectra(torch.roll(f, k, dims=-1))[0] - torch.roll(f, k, dims=-1)[:, EVIDENCE]
    edge = 4 * (spectral_net.KERNEL // 2)  # stem + 3 blocks
    np.testing.assert_allclose(b[:, k + edge:180 - edge], a[:, edge:180 - k - edge], atol=1e-5)


def test_spec_label_run_name_and_costs(tmp_path):
    cfg = RunConfig(family="spectral", blocks=3, width=16, in_channels=4)
    cfg.validate()
    assert model_entry(cfg) == {"family": "spectral", "width": 16, "blocks": 3, "in_channels": 4, "n_classes": 180}
    assert arch.student_label(SPEC) == "spec:3x16" and arch.parse_student("spec:3x16") == {
        "family": "spectral", "blocks": 3, "width": 16}
    assert arch.size_tag(SPEC) == "spec3x16" and arch.describe(SPEC) == "spectral CNN 3 blocks x 16 channels"
    model = arch.build(SPEC)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert arch.macs(SPEC) == sum(180 * m.out_channels * m.in_channels * m.kernel_size[0] for m in convs)
    assert arch.params(SPEC) == sum(p.numel() for p in model.parameters())  # the front end has none
    with pytest.raises(EdgekdError, match="blocks must be an integer 1..8"):
        RunConfig(family="spectral", blocks=9).validate()
    with pytest.raises(EdgekdError, match="in_channels must be one of 1, 4 for a spectral CNN student, got 2"):
        RunConfig(family="spectral", in_channels=2).validate()
    from edgekd.checkpoint import checked_spec

    with pytest.raises(EdgekdError, match="config.json: model in_channels must be one of 1, 4 for a spectral CNN"):
        checked_spec({**SPEC, "in_channels": 2}, Path("config.json"))
    RunConfig(family="spectral", width=4).validate()
    RunConfig(blocks=8, width=4).validate()  # a teacher copied from a narrow student: its width is never read
    with pytest.raises(ValueError, match="spec:DEPTHxWIDTH"):
        arch.parse_student("spec:3")
    from edgekd.sweep import load_sweep_config, plan

    grid = tmp_path / "grid.toml"
    grid.write_text('teachers = [2]\nstudents = [1, "spec:2x8"]\nstrategies = ["scratch", "soft"]\nfolds = 2\n'
                    '[train]\nin_channels = 4\nepochs = 1\n')
    spec_runs = [r for r in plan(load_sweep_config(grid), tmp_path / "runs", "data") if r.config.family == "spectral"]
    assert len(spec_runs) == 4 and all(r.name.startswith("spec2x8-") and r.config.width == 8 for r in spec_runs)


def test_trains_distils_and_reloads(tmp_path, small_synth):
    from edgekd.checkpoint import load_model
    from edgekd.distill import DistillPlan, distill

    student = RunConfig(family="spectral", blocks=2, width=8, in_channels=4, epochs=1, strategy="dkd")
    rows = distill(small_synth, DistillPlan(student=student, teacher_blocks=1, teacher_in_channels=4, scratch=False),
                   tmp_path, progress=False)
    row = next(r for r in rows if r["model"] == "dkd student")
    assert row["family"] == "spectral" and row["macs"] == arch.macs({**SPEC, "blocks": 2, "width": 8})
    model = load_model(tmp_path / "student")
    assert model.config() == {**SPEC, "blocks": 2, "width": 8}
    logits = model(torch.tensor(small_synth.x[:4]))
    assert logits.shape == (4, 180) and torch.isfinite(logits).all()
    cfg = json.loads((tmp_path / "student" / "config.json").read_text())
    assert cfg["model"]["family"] == "spectral"
    from edgekd.personalize import trainable_modules

    with pytest.raises(EdgekdError, match="fine-tunes the last layers of a ResNet1D student, not a spectral CNN"):
        trainable_modules(model, 1)


def test_the_front_end_transfers_a_pulse_where_the_waveform_is_new():
    """What the family is for, on a toy: windows of a pure tone at an HR the training never had still put
    the untrained-head model's argmax on that HR (the time-domain students regress to their training range)."""
    model = arch.build({**SPEC, "in_channels": 1}).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    t = np.arange(200) / 25.0
    x = np.stack([np.sin(2 * np.pi * bpm / 60 * t)[None] for bpm in (45.0, 180.0)]).astype(np.float32)
    with torch.no_grad():
        got = decode_argmax(model(torch.tensor(x))).numpy()
    np.testing.assert_allclose(got, [45.0, 180.0], atol=1)


# Test main: argv = T in_windows.bin out.bin ppg|acc; windows T x C x 200 float32 (C = 1 or 4); writes per window
# the features [7][180] then the evidence [180] (float32).
FEATURES_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hr_spectral.h"
int main(int argc, char **argv) {
    if (argc != 5) return 3;
    int T = atoi(argv[1]), C = strcmp(argv[4], "ppg") == 0 ? 1 : 4, t;
    FILE *in = fopen(argv[2], "rb"), *out = fopen(argv[3], "wb");
    static float x[4 * HR_SPECTRAL_N], f[HR_SPECTRAL_N_FEATURES * HR_TRACKER_N_CLASSES], ev[HR_TRACKER_N_CLASSES];
    if (!in || !out) return 4;
    for (t = 0; t < T; ++t) {
        if (fread(x, sizeof(float), (size_t)(C * HR_SPECTRAL_N), in) != (size_t)(C * HR_SPECTRAL_N)) return 5;
        if (C == 1) hr_spectral_features(x, NULL, NULL, NULL, f, ev);
        else hr_spectral_features(x, x + HR_SPECTRAL_N, x + 2 * HR_SPECTRAL_N, x + 3 * HR_SPECTRAL_N, f, ev);
        fwrite(f, sizeof f, 1, out);
        fwrite(ev, sizeof ev, 1, out);
    }
    fclose(in);
    return fclose(out) == 0 ? 0 : 6;
}
"""


def _c_features(exe: Path, tmp: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import subprocess

    (tmp / "x.bin").write_bytes(np.ascontiguousarray(x, np.float32).tobytes())
    subprocess.run([str(exe), str(len(x)), str(tmp / "x.bin"), str(tmp / "out.bin"),
                    "ppg" if x.shape[1] == 1 else "acc"], check=True)
    raw = np.fromfile(tmp / "out.bin", np.float32).reshape(len(x), N_FEATURES + 1, 180)
    return raw[:, :N_FEATURES], raw[:, N_FEATURES]


def test_c_front_end_is_bit_exact_with_the_numpy_reference(tmp_path, small_synth, wrist_root):
    """hr_spectral_features() (what firmware feeds a spectral student) against edgekd.spectral_input.features,
    bit for bit (same float32 operations in the same order, log32 = the C's log_portable), and its evidence
    against the fusion's: synthetic windows, a real wrist recording, PPG only and zero-filled ACC."""
    from dataclasses import replace

    from c_harness import compile_tracker_harness
    from edgekd.data import load_dataset

    import platform

    exe = compile_tracker_harness(tmp_path, FEATURES_HARNESS, ("hr_spectral.c",))
    # an integrator's build that asks the compiler to fuse multiply-adds (FMA on x86-64) gets the same bits
    fused = compile_tracker_harness(tmp_path / "fused", FEATURES_HARNESS, ("hr_spectral.c",),
                                    ("-ffp-contract=fast",) + (("-mfma",) if platform.machine() == "x86_64" else ()))
    wrist = load_dataset("wrist-exercise", wrist_root)
    walk = wrist.subset(np.flatnonzero(wrist.recording == "s2_walk"))
    zero_acc = replace(small_synth, x=np.concatenate([small_synth.x[:, :1], np.zeros_like(small_synth.x[:, 1:])], 1))
    for ws in (small_synth, walk.first_channels(4), small_synth.ppg_only(), zero_acc):
        for binary in (exe, fused):
            f, ev = _c_features(binary, tmp_path, ws.x)
            np.testing.assert_array_equal(f, features(ws.x, ws.acc_channels))
            np.testing.assert_array_equal(ev, spectral_evidence(ws))


def test_log32_is_an_accurate_log():
    x = np.linspace(0.005, 1.02, 200_001, dtype=np.float32)
    rel = np.abs(log32(x).astype(np.float64) - np.log(x.astype(np.float64)))
    assert rel.max() < 4 * np.spacing(np.float32(4.6))


@pytest.fixture(scope="module")
def spectral_artifact(tmp_path_factory) -> Path:
    """`edgekd train --family spectral` (2 x 8, PPG + ACC, 2 epochs on a small synthetic set) -> `export --int8`."""
    from edgekd.cli.main import main
    from edgekd.data.synthetic import generate

    root = tmp_path_factory.mktemp("spectral")
    data = root / "syn.npz"
    generate(subjects=4, minutes=2.0, seed=1).save(data)
    assert main(["train", "--family", "spectral", "--blocks", "2", "--width", "8", "--in-channels", "4", "--epochs",
                 "2", "--data", str(data), "--out", str(root / "run"), "--quiet", "--json"]) == 0
    assert main(["export", str(root / "run"), "--int8", "--data", str(data), "--out", str(root / "art")]) == 0
    return root / "art"


def test_spectral_student_exports_to_a_tflm_int8_flatbuffer_on_its_features(spectral_artifact):
    """The exported graphs read the front end's features [N, 7, 180] (channels-last [1, 180, 7] in int8), computed
    by hr_spectral_features() in firmware; only TFLM builtins, and every runtime scores the same decoder."""
    from edgekd.runtimes import artifact_logits as predict_logits

    card = json.loads((spectral_artifact / "card.json").read_text())
    a = card["architecture"]
    assert (a["family"], a["blocks"], a["width"], a["in_channels"]) == ("spectral", 2, 8, 4)
    assert a["model_input"] == {"name": "spectra", "shape": [N_FEATURES, 180], "computed_by": "hr_spectral_features",
                                "front_end_macs": 200 * (390 + 3 * 390)}  # distinct frequencies: PPG, each ACC axis
    assert card["tflite"]["input"]["shape"] == [1, 180, N_FEATURES]
    assert set(card["tflm"]["ops"]) == {"ADD", "CONV_2D", "EXPAND_DIMS", "RESHAPE"}
    assert card["tflite"]["keras_mirror_max_abs_diff"] < 1e-4
    assert card["files"]["model_int8.tflite"]["bytes"] < 16 * 1024
    header = (spectral_artifact / "model_data.h").read_text()
    for define in ("ART_SPECTRAL_INPUT 1", "ART_MODEL_INPUT_LENGTH 180", f"ART_MODEL_INPUT_CHANNELS {N_FEATURES}",
                   "ART_INPUT_CHANNELS 4", "ART_WINDOW_LENGTH 200"):
        assert f"#define {define}" in header
    assert "hr_spectral_features(ppg, acc_x, acc_y, acc_z, features, evidence)" in (spectral_artifact / "card.md").read_text()
    # No decoder flags: the spectral family's shipped decoder, motion gate included (the firmware tests below run
    # it on walking windows, which its gate hands to the model)
    assert card["accuracy"]["decoder"]["fusion"] == asdict(MOTION_GATED)
    assert "#define ART_FUSION_MOTION_G 0.05f" in header
    mae = card["accuracy"]["mae_bpm"]
    assert set(mae) == {"torch", "onnx", "onnx-int8", "litert", "tflm"}
    assert abs(mae["tflm"]["mae_fused"] - mae["torch"]["mae_fused"]) < 3.0
    # Every runtime is fed through edgekd.arch.to_graph_input: ONNX on NumPy features = PyTorch on its own front end.
    from edgekd.data import load_windows

    ws = load_windows(spectral_artifact.parent / "syn.npz").first_channels(4)
    x = ws.x[:16]
    torch_logits, onnx_logits = (predict_logits(spectral_artifact, r, x) for r in ("torch", "onnx"))
    assert np.abs(torch_logits - onnx_logits).max() < 1e-3
    tflm = predict_logits(spectral_artifact, "tflm", x)
    assert (tflm.argmax(1) == torch_logits.argmax(1)).mean() > 0.5


def test_spectral_artifact_is_bit_exact_in_host_firmware(spectral_artifact, shared_tflm):
    """The firmware computes the features in C, quantises them and runs TFLM: its int8 input, int8 outputs and
    decoded BPM equal Python's (NumPy features, TFLM interpreter, decoder) window for window."""
    from firmware_bench.firmware.run import firmware_check

    rec = firmware_check(spectral_artifact, "host", tflm=shared_tflm, windows=12,
                         data=spectral_artifact.parent / "syn.npz", progress=False)
    f = rec["figures"]
    assert f["input_values"] == 12 * 180 * N_FEATURES and f["input_mismatches"] == 0
    assert f["int8_mismatches"] == 0 and f["bpm_mismatches"] == 0 and f["decoder_mismatches"] == 0


def test_spectral_artifact_is_bit_exact_on_a_cortex_m4(spectral_artifact, shared_tflm, cortex_m_tier):
    """The same on a Cortex-M4 under QEMU (newlib, CMSIS-NN): the C front end gives the device the bits NumPy
    gives the host (log_portable, not libm's logf); its instructions are counted with the decoder's."""
    from firmware_bench.firmware.run import firmware_check

    rec = firmware_check(spectral_artifact, "cortex-m4", tflm=shared_tflm, windows=6,
                         data=spectral_artifact.parent / "syn.npz", progress=False)
    f = rec["figures"]
    assert f["input_mismatches"] == 0 and f["int8_mismatches"] == 0 and f["bpm_mismatches"] == 0
    # features (about 0.31 M multiply-adds) + fusion + tracker: more than a window model's evidence-only decoder
    assert 4e5 < f["instructions_per_decode"] < 2e7
    assert f["flash_by_component"]["model"] == json.loads((spectral_artifact / "card.json").read_text())[
        "files"]["model_int8.tflite"]["bytes"]
