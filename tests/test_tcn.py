"""The MCU-lean TCN student family (edgekd.tcn) through the places a student goes: the spec, training,
distillation from a ResNet teacher, export to INT8 TFLM and the firmware build."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd import arch, tcn
from edgekd.errors import EdgekdError
from edgekd.runs import RunConfig, model_entry

SPEC = {"family": "tcn", "blocks": 4, "width": 16, "in_channels": 4, "n_classes": 180}


def _hooked_macs(model: torch.nn.Module, x: torch.Tensor) -> int:
    """MACs counted from the layers that ran: Conv1d (groups included) and Linear."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv1d):
            total += out.shape[-1] * mod.out_channels * (mod.in_channels // mod.groups) * mod.kernel_size[0]
        elif isinstance(mod, torch.nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Linear))]
    model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("blocks,width", [(1, 8), (4, 16), (6, 20)])
def test_tcn_shapes_macs_and_receptive_growth(blocks, width):
    spec = {**SPEC, "blocks": blocks, "width": width}
    model = arch.build(spec).eval()
    x = torch.randn(3, 4, 200)
    logits, feats, pooled = model.forward_features(x)
    assert logits.shape == (3, 180) and pooled.shape == (3, width)
    # The early strides: 200 -> 100 (stem) -> 50 -> 50 -> 25 -> 25 -> 13 ...
    assert [f.shape[1:] for f in feats] == [(width, n) for n in tcn.lengths(blocks)[1:]]
    assert tcn.lengths(6) == [100, 50, 50, 25, 25, 13, 13]
    assert arch.macs(spec) == _hooked_macs(model, x[:1]) == tcn.macs(blocks, width, 4)
    assert arch.stage_widths(spec) == [width] * blocks


def test_the_family_is_lean_next_to_the_resnet():
    """The point of the family: a fraction of the 1-block ResNet's MACs (2.2 M) and parameters."""
    resnet1 = {"blocks": 1, "in_channels": 4, "n_classes": 180}
    six = {**SPEC, "blocks": 6}
    assert arch.macs(six) < 0.4e6 < arch.macs(resnet1) / 5
    assert arch.params(six) < arch.params(resnet1) / 2


def test_run_config_records_the_family_and_leaves_resnet_runs_as_they_were():
    resnet = RunConfig(blocks=2)
    assert "family" not in resnet.to_dict() and "width" not in resnet.to_dict()  # same run names as before
    cfg = RunConfig(family="tcn", blocks=6, width=20, in_channels=4)
    cfg.validate()
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert model_entry(cfg) == {"family": "tcn", "width": 20, "blocks": 6, "in_channels": 4, "n_classes": 180}
    with pytest.raises(EdgekdError, match="family must be one of"):
        RunConfig(family="mlp").validate()
    with pytest.raises(EdgekdError, match="width must be an integer 8..64"):
        RunConfig(family="tcn", width=4).validate()


def test_feature_distillation_adapts_tcn_stages_to_a_resnet_teacher():
    from edgekd.losses import DistillLoss, StudentOut, TeacherBatch, resolve_params

    params = resolve_params({"student_stage": -1}, 10, ["feature"])
    loss = DistillLoss({"feature": 1.0}, params, arch.stage_widths(SPEC), 4)
    student = arch.build(SPEC)
    logits, feats, pooled = student.forward_features(torch.randn(8, 4, 200))
    from edgekd.model import block_specs

    width = block_specs(4)[loss.teacher_stage].out_ch
    assert width != SPEC["width"]
    teacher_stage = torch.randn(8, width, 50)  # a 4-block ResNet's stage: other width and length
    t = TeacherBatch(logits=torch.randn(8, 180), stage=teacher_stage, pooled=None)
    total, parts = loss(StudentOut(logits, feats, pooled), t, torch.randint(0, 180, (8,)), 0)
    total.backward()
    assert set(parts) == {"ce", "feature"} and torch.isfinite(total)
    assert student.layers[-1].pointwise.weight.grad is not None


def test_a_tcn_teacher_is_refused(tmp_path, small_synth):
    from edgekd.checkpoint import save_weights
    from edgekd.atomic import write_json
    from edgekd.train import train_run

    teacher = tmp_path / "tcn-teacher"
    save_weights(arch.build(SPEC), teacher / "model.safetensors")
    write_json(teacher / "config.json", {"model": SPEC})
    cfg = RunConfig(blocks=1, in_channels=4, strategy="dkd", teachers=[str(teacher)], epochs=1)
    with pytest.raises(EdgekdError, match="a teacher must be a ResNet1D, not a TCN 4 blocks x 16"):
        train_run(small_synth, cfg, tmp_path / "student", progress=False)


@pytest.fixture(scope="module")
def tcn_artifact(tmp_path_factory) -> Path:
    """`edgekd train --family tcn` (2 epochs on a small synthetic set) -> `edgekd export --int8`."""
    from edgekd.cli.main import main
    from edgekd.data.synthetic import generate

    root = tmp_path_factory.mktemp("tcn")
    data = root / "syn.npz"
    generate(subjects=4, minutes=2.0, seed=1).save(data)
    assert main(["train", "--family", "tcn", "--blocks", "4", "--width", "16", "--epochs", "2", "--data", str(data),
                 "--out", str(root / "run"), "--quiet", "--json"]) == 0
    assert main(["export", str(root / "run"), "--int8", "--data", str(data), "--out", str(root / "art")]) == 0
    return root / "art"


def test_tcn_trains_and_exports_to_a_tflm_int8_flatbuffer(tcn_artifact, capsys):
    card = json.loads((tcn_artifact / "card.json").read_text())
    a = card["architecture"]
    assert (a["family"], a["blocks"], a["width"], a["description"]) == ("tcn", 4, 16, "TCN 4 blocks x 16 channels")
    assert a["macs"] == arch.macs(SPEC) and a["params"] == arch.params(SPEC)
    # A 2-D graph: one EXPAND_DIMS at the input, no EXPAND_DIMS/RESHAPE pair around every convolution.
    assert set(card["tflm"]["ops"]) == {"ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS", "FULLY_CONNECTED", "MEAN"}
    assert card["tflite"]["keras_mirror_max_abs_diff"] < 1e-4
    assert "TCN 4 blocks x 16 channels" in (tcn_artifact / "card.md").read_text()
    flatbuffer = (tcn_artifact / "model_int8.tflite").read_bytes()
    assert b"tcn_4x16" not in flatbuffer  # tensor names stripped: TFLM never reads them
    # INT8 stays close to float layer by layer (0.29 = rounding alone), and so the shipped decoder's MAE.
    worst = max(r["rmse_over_scale"] for r in card["per_layer_quantization_error"])
    mae = card["accuracy"]["mae_bpm"]
    assert worst < 3.0
    assert abs(mae["tflm"]["mae_fused"] - mae["torch"]["mae_fused"]) < 3.0


def test_tcn_artifact_is_bit_exact_in_host_firmware(tcn_artifact, shared_tflm):
    from firmware_bench.firmware.run import firmware_check

    rec = firmware_check(tcn_artifact, "host", tflm=shared_tflm, windows=8,
                         data=tcn_artifact.parent / "syn.npz", progress=False)
    f = rec["figures"]
    assert f["int8_mismatches"] == 0 and f["bpm_mismatches"] == 0
    assert rec["artifact"]["blocks"] == 4 and np.isfinite(f["mae_fused_bpm"])


def test_distill_trains_a_resnet_teacher_for_a_tcn_student(tmp_path, small_synth):
    from edgekd.distill import DistillPlan, distill

    student = RunConfig(family="tcn", blocks=2, width=8, in_channels=4, epochs=1, strategy={"dkd": 1.0, "feature": 1.0})
    rows = distill(small_synth, DistillPlan(student=student, teacher_blocks=1, teacher_in_channels=4, scratch=False),
                   tmp_path, progress=False)
    by = {r["model"]: r for r in rows}
    assert by["teacher"]["family"] == "resnet" and by["teacher"]["blocks"] == 1
    assert by["dkd+feature student"]["family"] == "tcn"
    assert by["dkd+feature student"]["macs"] == arch.macs({**SPEC, "blocks": 2, "width": 8})
    cfg = json.loads((tmp_path / "student" / "config.json").read_text())
    assert cfg["model"]["family"] == "tcn" and cfg["family"] == "tcn"


def test_sweeps_plan_tcn_students_and_rank_prices_them(tmp_path):
    """students = [1, "tcn:6x16"]: one plan, TCN runs named apart, results rows labelled, rank's costs from the
    TCN's own MACs and parameters; the scaling fit keeps to the ResNet block axis."""
    from edgekd.rank import rank
    from edgekd.scaling import block_axis_rows
    from edgekd.sweep import load_sweep_config, plan, result_row

    path = tmp_path / "grid.toml"
    path.write_text('teachers = [2]\nstudents = [1, "tcn:6x16"]\nstrategies = ["scratch", "dkd"]\nfolds = 2\n'
                    '[train]\nin_channels = 4\nepochs = 1\n')
    runs = plan(load_sweep_config(path), tmp_path / "runs", "data")
    tcn_runs = [r for r in runs if r.config.family == "tcn"]
    assert {r.config.strategy_label() for r in tcn_runs} == {"scratch", "dkd"} and len(tcn_runs) == 4  # x 2 folds
    assert all(r.name.startswith("tcn6x16-") for r in tcn_runs) and all(r.config.width == 16 for r in tcn_runs)
    rows = [result_row(r, {"mae_argmax": 10.0 if r.config.family == "tcn" else 12.0, "mae_expectation": 0})
            for r in runs if r.teacher is not None or r.config.blocks != 2]
    assert {row["student"] for row in rows} == {1, "tcn:6x16"}
    ranked = {r["name"]: r for r in rank(rows, "mcu-latency", mcu="m4-64-cmsisnn")}
    tcn_row = ranked["tcn:6x16 scratch"]
    assert tcn_row["mcu_latency_ms"] == pytest.approx(arch.macs({**SPEC, "blocks": 6}) * 3.74 / 64e6 * 1e3)
    assert tcn_row["pareto"] and tcn_row["weights_kb"] < ranked["1b scratch"]["weights_kb"]
    assert {r["student"] for r in block_axis_rows(rows)} == {1}
    with pytest.raises(EdgekdError, match="tcn:DEPTHxWIDTH"):
        path.write_text('students = ["tcn:6"]\n')
        load_sweep_config(path)
