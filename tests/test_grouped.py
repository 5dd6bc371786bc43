"""Grouped training (edgekd.grouped): members trained as one network are the runs they would be alone."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from edgekd.checkpoint import load_model
from edgekd.errors import EdgekdError
from edgekd.grouped import group_key, train_group
from edgekd.runs import RunConfig
from edgekd.train import train_run

FAST = dict(epochs=2, batch_size=64, in_channels=4, device="cpu", fold="loso:synth-S01", select_on="val_loss")


def _same(a, b, tol: float, x) -> None:
    """The two runs compute the same function: logits on ``x`` within ``tol``. (Weights are not compared: a
    convolution bias right before a BatchNorm gets a gradient that is 0 up to rounding, and Adam turns any
    rounding into full-size steps of it, in solo runs as much as in groups.)"""
    with torch.no_grad():
        la, lb = (load_model(f).eval()(torch.from_numpy(x)) for f in (a, b))
    assert (la - lb).abs().max() < tol, (la - lb).abs().max()


@pytest.mark.parametrize("family", ["resnet", "tcn", "spectral"])
def test_a_group_trains_each_member_as_it_would_train_alone(tmp_path, small_synth, family):
    """Three members (two seeds, one with augmentation; a DKD student of a teacher) as one vmapped network:
    weights, log and metrics equal to their solo runs up to float rounding, dropout masks included (ResNet),
    the spectral front end's fixed tables included (spectral); and two feature-KD students, whose adapters
    start from the seed."""
    extra = {"family": family, "width": 8} if family != "resnet" else {}
    teacher = tmp_path / "teacher"
    train_run(small_synth, RunConfig(**{**FAST, "blocks": 1}), teacher, progress=False)
    cfgs = [RunConfig(**FAST, **extra, blocks=2, seed=0), RunConfig(**FAST, **extra, blocks=2, seed=1, augment=True),
            RunConfig(**FAST, **extra, blocks=2, seed=2, strategy="dkd", teachers=[str(teacher)])]
    assert len({group_key(small_synth, c) for c in cfgs}) == 1
    # other training windows, another shape of epoch: synthetic subjects split a group, counted in its windows
    lab = replace(small_synth, dataset=np.full(len(small_synth), "lab"))
    with_synthetic = json.loads(group_key(lab, replace(cfgs[0], synthetic=1)))
    assert with_synthetic["train_windows"] > json.loads(group_key(lab, cfgs[0]))["train_windows"]
    solo = [train_run(small_synth, c, tmp_path / f"solo{i}", progress=False) for i, c in enumerate(cfgs)]
    x = small_synth.x[:64, :4]
    group = train_group(small_synth, cfgs, [tmp_path / f"group{i}" for i in range(3)], progress=False)
    for i, (a, b) in enumerate(zip(solo, group)):
        assert not isinstance(b, EdgekdError)
        _same(tmp_path / f"solo{i}", tmp_path / f"group{i}", 1e-3, x)
        assert b["grouped_with"] == 3 and b["epochs_run"] == a["epochs_run"] and b["best_epoch"] == a["best_epoch"]
        assert b["val_loss_at_best"] == pytest.approx(a["val_loss_at_best"], abs=1e-4)
        assert b["mae_argmax"] == pytest.approx(a["mae_argmax"], abs=0.5)
        log_a, log_b = ((tmp_path / f"{n}{i}" / "log.jsonl").read_text().splitlines() for n in ("solo", "group"))
        assert [json.loads(r)["lr"] for r in log_a] == [json.loads(r)["lr"] for r in log_b]
    feat = [RunConfig(**FAST, **extra, blocks=2, seed=s, strategy="feature", teachers=[str(teacher)]) for s in (3, 4)]
    for i, c in enumerate(feat):
        train_run(small_synth, c, tmp_path / f"fsolo{i}", progress=False)
    train_group(small_synth, feat, [tmp_path / "fgroup0", tmp_path / "fgroup1"], progress=False)
    for i in range(2):
        _same(tmp_path / f"fsolo{i}", tmp_path / f"fgroup{i}", 1e-2, x)
    with pytest.raises(AssertionError):  # the check can fail: another member is another function
        _same(tmp_path / "solo0", tmp_path / "group1", 1e-2, x)
    # members that cannot share one forward and schedule are refused before anything is written
    with pytest.raises(EdgekdError, match="differ in shape"):
        train_group(small_synth, [cfgs[0], RunConfig(**{**FAST, "epochs": 3}, **extra, blocks=2)],
                    [tmp_path / "x0", tmp_path / "x1"], progress=False)
    assert not (tmp_path / "x0").exists()


def test_sweep_trains_same_shape_runs_as_groups_with_the_results_of_one_by_one(tmp_path, small_synth):
    """`edgekd sweep --grouped on`: the students of a stage train in groups (per size and fold), the teachers
    first; every run folder is complete and scores what the one-by-one sweep scores; --grouped auto on CPU
    trains one by one."""
    from edgekd.cli.main import main
    from edgekd.executor import use_groups
    from edgekd.sweep import SweepConfig, read_results, run_sweep

    sweep = SweepConfig(teachers=[2], students=[1], strategies=["scratch", "soft"], folds=2, seeds=[0, 1],
                        train={"epochs": 1, "in_channels": 4})
    rows = {}
    for grouping in ("off", "on"):
        run_sweep(sweep, small_synth, tmp_path / grouping, progress=False, grouping=grouping)
        rows[grouping] = {r["run"]: r for r in read_results(tmp_path / grouping)}
    assert rows["on"].keys() == rows["off"].keys() and len(rows["on"]) == 4 + 8
    # equal-size folds share a group: the four teachers (2 folds x 2 seeds), then the eight students (2
    # strategies x 2 seeds x 2 folds)
    assert sorted(r.get("grouped_with") for r in rows["on"].values()) == [4] * 4 + [8] * 8
    for name, r in rows["on"].items():
        assert r["mae_argmax"] == pytest.approx(rows["off"][name]["mae_argmax"], abs=0.5)
    assert not any(r.get("grouped_with") for r in rows["off"].values())
    assert not use_groups("auto", [], False) and use_groups("on", [], False) and not use_groups("off", [], True)
    # the CLI flag, and a bad value is a usage error (exit 2)
    (tmp_path / "grid.toml").write_text('teachers = [1]\nstudents = [1]\nstrategies = ["scratch"]\nfolds = 2\n'
                                        '[train]\nepochs = 1\n')
    with pytest.raises(SystemExit) as exc:
        main(["sweep", str(tmp_path / "grid.toml"), "--grouped", "sometimes"])
    assert exc.value.code == 2
