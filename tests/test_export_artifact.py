"""The export artifact end to end: one INT8 export per test session (a 1-block model, briefly trained on
small synthetic windows), then every file and runtime checked against PyTorch."""

from __future__ import annotations

import errno
import hashlib
import json
import subprocess
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.atomic import write_json
from edgekd.bpm import bpm_to_class, decode_argmax
from edgekd.checkpoint import save_weights
from edgekd.errors import DataError, EdgekdError
from edgekd.fusion import FusionConfig
from edgekd.model import ResNet1D
from edgekd.runtimes import SCORED

FILES = ("model.safetensors", "config.json", "model.onnx", "model_int8.onnx", "model_int8.tflite",
         "model_data.cc", "model_data.h", "model_data.hpp", "ops.h", "kernel_sources.txt", "hr_tracker.c",
         "hr_tracker.h", "hr_spectral.c", "hr_spectral.h", "hr_spectral_tables.h", "card.json", "card.md")


def make_run(folder: Path, ws, blocks: int = 1, steps: int = 40) -> Path:
    """A run folder with a model trained for a few Adam steps (peaked enough that argmax is meaningful)."""
    torch.manual_seed(0)
    model = ResNet1D(blocks)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    x, y = torch.from_numpy(ws.x[:, :1]), bpm_to_class(torch.from_numpy(ws.hr))
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,))
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    folder.mkdir(parents=True)
    save_weights(model.eval(), folder / "model.safetensors")
    write_json(folder / "config.json", {"model": model.config()})
    return folder


@pytest.fixture(scope="session")
def split_files(tmp_path_factory, small_synth):
    """Calibration (3 subjects) and evaluation (1 held-out subject) WindowSet files."""
    root = tmp_path_factory.mktemp("windows")
    held_out = small_synth.subject == small_synth.subjects()[-1]
    calib = small_synth.subset(np.flatnonzero(~held_out)).save(root / "calib.npz")
    evaluate = small_synth.subset(np.flatnonzero(held_out)).save(root / "eval.npz")
    return calib, evaluate


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, small_synth) -> Path:
    return make_run(tmp_path_factory.mktemp("run") / "r1", small_synth)


@pytest.fixture(scope="session")
def artifact(tmp_path_factory, run_dir, split_files) -> Path:
    from export.artifact import export_artifact

    out = tmp_path_factory.mktemp("models") / "tiny-hr.v1"
    export_artifact(run_dir, out, int8=True, calib=split_files[0], evaluate=split_files[1], progress=False)
    return out


def test_artifact_has_every_file_and_a_consistent_card(artifact):
    for name in FILES:
        assert (artifact / name).is_file(), name
    assert not [p for p in artifact.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    card = json.loads((artifact / "card.json").read_text())
    for name, rec in card["files"].items():
        assert (artifact / name).stat().st_size == rec["bytes"], name
        assert hashlib.sha256((artifact / name).read_bytes()).hexdigest() == rec["sha256"], name
    assert set(card["files"]) | {"card.json", "card.md"} >= set(FILES)
    assert card["architecture"]["blocks"] == 1 and card["architecture"]["params"] == 16_628
    assert card["onnx"]["max_abs_diff_vs_torch"] < 1e-4
    assert card["tflite"]["keras_mirror_max_abs_diff"] < 1e-4
    assert set(card["accuracy"]["mae_bpm"]) == set(SCORED)  # the runtime names evaluate and bench use
    assert card["per_layer_quantization_error"] and all(r["rmse_over_scale"] >= 0
                                                        for r in card["per_layer_quantization_error"])
    assert card["data"]["calibration"]["subjects"] != card["data"]["evaluation"]["subjects"]
    md = (artifact / "card.md").read_text()
    assert card["accuracy"]["decoder"]["fusion"] == asdict(FusionConfig())
    d = FusionConfig()
    values = ", ".join(f"{float(v)!r}f" for v in (d.model_weight, d.weight, d.floor, d.clear_quality, d.unclear_weight,
                                                  d.motion_g))
    assert "TINY_HR_V1_FUSION_MODEL_WEIGHT" in md and f"/* {values} */" in md


def test_card_scores_the_shipped_decoder_per_runtime(artifact, split_files):
    """The card's accuracy is mae_report (fused = hr_spectral + hr_tracker) of each runtime's own outputs on
    the evaluation windows, and says what it was measured on."""
    from edgekd.evaluate import mae_report
    from edgekd.windowset import WindowSet
    from edgekd.runtimes import artifact_logits as predict_logits

    ws = WindowSet.load(split_files[1]).ppg_only()  # the 1-channel model: evidence without ACC suppression
    acc = json.loads((artifact / "card.json").read_text())["accuracy"]
    assert acc["measured_on"] == {"windows": len(ws), "subjects": 1, "recordings": len(set(ws.recording)),
                                  "datasets": ws.datasets()}
    shipped = FusionConfig(**acc["decoder"]["fusion"])
    for runtime in ("torch", "tflm"):
        report = mae_report(predict_logits(artifact, runtime, ws.x), ws, shipped)
        assert acc["mae_bpm"][runtime]["mae_fused"] == pytest.approx(report["mae_fused"], abs=1e-6), runtime
        assert acc["mae_bpm"][runtime]["mae_argmax"] == pytest.approx(report["mae_argmax"], abs=1e-6), runtime
    assert acc["mae_bpm"]["torch"]["mae_fused"] != acc["mae_bpm"]["torch"]["mae_argmax"]


def test_artifact_reloads_and_all_runtimes_agree(artifact, split_files):
    from edgekd.runtimes import artifact_logits as predict_logits
    from edgekd.windowset import WindowSet

    x = WindowSet.load(split_files[1]).x[:, :1]
    ref = predict_logits(artifact, "torch", x)
    assert np.abs(predict_logits(artifact, "onnx", x) - ref).max() < 1e-4
    for runtime in ("onnx-int8", "litert", "tflm"):
        got = predict_logits(artifact, runtime, x)
        assert got.shape == ref.shape
        agree = (got.argmax(1) == ref.argmax(1)).mean()
        assert agree > 0.7, f"{runtime}: argmax agrees with PyTorch on only {agree:.0%} of windows"


def test_litert_and_tflm_give_the_same_int8_outputs(artifact, split_files):
    from edgekd.runtimes import LiteRTSession, TflmSession
    from edgekd.windowset import WindowSet

    card = json.loads((artifact / "card.json").read_text())
    model = (artifact / "model_int8.tflite").read_bytes()
    x = WindowSet.load(split_files[1]).x[:, :1]
    lite = LiteRTSession(model).int8_outputs(x)
    micro = TflmSession(model, card["tflm"]["arena_bytes"]).int8_outputs(x)
    identical = (lite == micro).mean()
    print(f"LiteRT vs TFLM identical int8 outputs: {identical:.4f}")
    assert identical > 0.9
    assert np.abs(lite.astype(int) - micro.astype(int)).max() <= 2  # kernels differ only in rounding


def test_tflite_int8_tracks_pytorch_on_real_ieee_windows(artifact, ieee_root):
    from edgekd.data import load_dataset
    from edgekd.runtimes import artifact_logits as predict_logits

    ws = load_dataset("ieee-spc2015", ieee_root)
    idx = np.random.default_rng(0).choice(len(ws), 150, replace=False)
    x, hr = ws.x[idx, :1], ws.hr[idx]
    ref, got = predict_logits(artifact, "torch", x), predict_logits(artifact, "litert", x)
    agree = (ref.argmax(1) == got.argmax(1)).mean()
    mae_fp32, mae_int8 = (float(np.abs(decode_argmax(v) - hr).mean()) for v in (ref, got))
    print(f"IEEE SPC: argmax agreement {agree:.3f}, MAE FP32 {mae_fp32:.2f} vs INT8 {mae_int8:.2f}")
    assert agree > 0.6


def test_arena_is_the_bisected_minimum_plus_margin(artifact):
    from edgekd.tflm_host import ALIGN, check_runs

    card = json.loads((artifact / "card.json").read_text())
    model = (artifact / "model_int8.tflite").read_bytes()
    lo, arena = card["tflm"]["arena_min_bytes"], card["tflm"]["arena_bytes"]
    assert arena % ALIGN == 0 and arena >= lo
    check_runs(model, lo)
    with pytest.raises(EdgekdError):
        check_runs(model, lo - ALIGN)


def test_c_array_round_trips_through_a_c_and_a_cpp_compiler(artifact, tmp_path):
    """model_data.h is plain C (a C99 main reads the array and the constants); model_data.hpp gives C++ the
    same values; the decoder constants are the card's."""
    card = json.loads((artifact / "card.json").read_text())
    ident = card["tflm"]["c_identifier"]
    assert ident == "tiny_hr_v1"
    p = ident.upper()
    (tmp_path / "main.c").write_text(f"""#include <stdio.h>
#include <stdint.h>
#include "model_data.h"
int main(int argc, char** argv) {{
  (void)argc;
  if ((uintptr_t)g_{ident}_model_data % 16 != 0) return 3;
  FILE* f = fopen(argv[1], "wb");
  fwrite(g_{ident}_model_data, 1, g_{ident}_model_data_size, f);
  fclose(f);
  printf("%u %d %d %d %.9g %.9g %.9g %.9g %.9g %.9g %d", {p}_ARENA_SIZE, (int){p}_INPUT_ZERO_POINT, {p}_BPM_MIN,
         {p}_NUM_CLASSES, (double){p}_FUSION_MODEL_WEIGHT, (double){p}_FUSION_WEIGHT, (double){p}_FUSION_CLEAR_QUALITY,
         (double){p}_FUSION_UNCLEAR_WEIGHT, (double){p}_FUSION_MOTION_G, (double){p}_TRACKER_SIGMA_BPM,
         {p}_TRACKER_KIND);
  return 0;
}}
""")
    (tmp_path / "check.cc").write_text(f"""#include "model_data.hpp"
static_assert({ident}::kNumClasses == 180, "classes");
static_assert({ident}::kArenaSize == {card["tflm"]["arena_bytes"]}u, "arena");
const unsigned char* first_byte() {{ return {ident}::ModelData(); }}
""")
    exe = tmp_path / "dump"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-c", f"-I{artifact}", str(tmp_path / "main.c"),
                    "-o", str(tmp_path / "main.o")], check=True)
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Werror", "-c", f"-I{artifact}", str(tmp_path / "check.cc"),
                    "-o", str(tmp_path / "check.o")], check=True)
    subprocess.run(["g++", "-std=c++17", f"-I{artifact}", str(tmp_path / "main.o"), str(tmp_path / "check.o"),
                    str(artifact / "model_data.cc"), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe), str(tmp_path / "bytes.bin")], check=True, capture_output=True, text=True)
    assert (tmp_path / "bytes.bin").read_bytes() == (artifact / "model_int8.tflite").read_bytes()
    arena, zp, bpm_min, classes, a, w, q, u, m, sigma, kind = out.stdout.split()
    assert int(arena) == card["tflm"]["arena_bytes"] and int(zp) == card["tflite"]["input"]["zero_point"]
    assert (int(bpm_min), int(classes)) == (30, 180)
    fusion, tracker = card["accuracy"]["decoder"]["fusion"], card["accuracy"]["decoder"]["tracker"]
    assert [np.float32(float(v)) for v in (a, w, q, u, m, sigma)] == [np.float32(v) for v in (
        fusion["model_weight"], fusion["weight"], fusion["clear_quality"], fusion["unclear_weight"], fusion["motion_g"],
        tracker["sigma_bpm"])]
    assert int(kind) == {"gaussian": 0, "laplace": 1}[tracker["kind"]]
    ops_h = (artifact / "ops.h").read_text()
    assert "MicroMutableOpResolver<kNumOps>" in ops_h and f"kNumOps = {len(card['tflm']['ops'])}" in ops_h
    for call in ("AddConv2D()", "AddExpandDims()", "AddReshape()", "AddFullyConnected()", "AddMean()"):
        assert call in ops_h
    sources = (artifact / "kernel_sources.txt").read_text()
    assert "tensorflow/lite/micro/kernels/conv.cc" in sources and "kernels/cmsis_nn/conv.cc" in sources


def test_refuses_an_existing_output_folder(artifact, run_dir):
    from export.artifact import export_artifact

    before = (artifact / "model_int8.tflite").read_bytes()
    with pytest.raises(EdgekdError, match="already exists"):
        export_artifact(run_dir, artifact, progress=False)
    assert (artifact / "model_int8.tflite").read_bytes() == before


def test_disk_full_leaves_no_partial_artifact_and_keeps_the_old_one(tmp_path, run_dir, split_files, monkeypatch,
                                                                    artifact):
    import export.artifact as art

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(art, "write_json", full)
    out = tmp_path / "models" / "m"
    with pytest.raises(EdgekdError, match="disk full"):
        art.export_artifact(run_dir, out, int8=False, calib=split_files[0], evaluate=split_files[1], progress=False)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    before = sorted(p.name for p in artifact.iterdir())
    with pytest.raises(EdgekdError, match="disk full"):
        art.export_artifact(run_dir, artifact, int8=False, calib=split_files[0], evaluate=split_files[1],
                            force=True, progress=False)
    assert sorted(p.name for p in artifact.iterdir()) == before
    assert not [p for p in artifact.parent.iterdir() if p.name.startswith(".")]


def test_rejects_a_checkpoint_of_another_architecture(tmp_path, run_dir):
    from export.artifact import export_artifact

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes((run_dir / "model.safetensors").read_bytes())
    write_json(bad / "config.json", {"model": {"blocks": 2, "in_channels": 1, "n_classes": 180}})
    with pytest.raises(EdgekdError, match="do not fit ResNet1D"):
        export_artifact(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_rejects_bad_calibration_sets(tmp_path, run_dir, small_synth, split_files):
    from export.artifact import export_artifact

    few = small_synth.subset(np.arange(10)).save(tmp_path / "few.npz")
    with pytest.raises(DataError, match="at least 32"):
        export_artifact(run_dir, tmp_path / "o1", int8=True, calib=few, evaluate=split_files[1], progress=False)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((64, 1, 100), np.float32), hr=np.full(64, 70.0, np.float32),
             subject=np.array(["a"] * 64), recording=np.array(["r"] * 64))
    with pytest.raises(DataError, match="wrong.npz"):
        export_artifact(run_dir, tmp_path / "o2", int8=True, calib=wrong, evaluate=split_files[1], progress=False)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli_exports_onnx_only_and_reports_errors(tmp_path, run_dir, split_files, capsys, artifact):
    from edgekd.cli.main import main

    out = tmp_path / "fp32"
    rc = main(["export", str(run_dir), "--out", str(out), "--calib", str(split_files[0]), "--eval",
               str(split_files[1]), "--fixed-batch", "--json"])
    assert rc == 0
    card = json.loads(capsys.readouterr().out)
    assert card["onnx"]["dynamic_batch"] is False and "tflm" not in card
    assert sorted(p.name for p in out.iterdir()) == sorted(["card.json", "card.md", "config.json", "model.onnx",
                                                            "model.safetensors"])
    assert main(["export", str(run_dir), "--out", str(artifact)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_default_windows_follow_the_runs_fold_and_data_hash(tmp_path, small_synth):
    from edgekd.windowset import identity_hash
    from export.windows import select

    data = small_synth.save(tmp_path / "data.npz")
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "config.json", {"model": {"blocks": 1, "in_channels": 1, "n_classes": 180}, "fold": "1/2",
                                     "data": {"dataset": "synthetic", "hash": identity_hash(small_synth)}})
    cal, ev = select(run, 1, data, None, None)
    assert cal.x.shape[1:] == (1, 200) and not set(cal.description["subjects"]) & set(ev.description["subjects"])
    assert len(cal.x) + len(ev.x) == len(small_synth)
    write_json(run / "config.json", {"model": {"blocks": 1, "in_channels": 1, "n_classes": 180},
                                     "data": {"dataset": "ieee-spc2015", "hash": "0123456789abcdef"}})
    with pytest.raises(DataError, match="not the data the run"):
        select(run, 1, data, None, None)
    # the same windows with corrected labels are other data: the run's fold and metrics do not carry over
    relabelled = small_synth.subset(np.arange(len(small_synth)))
    relabelled.hr = relabelled.hr + 1.0
    write_json(run / "config.json", {"model": {"blocks": 1, "in_channels": 1, "n_classes": 180}, "fold": "1/2",
                                     "data": {"dataset": "synthetic", "hash": identity_hash(relabelled)}})
    with pytest.raises(DataError, match="not the data the run"):
        select(run, 1, data, None, None)
