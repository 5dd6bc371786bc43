"""The training loop and run folders: determinism, completeness marker, failure modes, augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import edgekd.train as train_mod
from edgekd.augment import augment
from edgekd.checkpoint import load_model
from edgekd.errors import EdgekdError
from edgekd.losses import DistillLoss
from edgekd.model import ResNet1D
from edgekd.runs import RunConfig, is_complete, read_config, resolve_fold
from edgekd.train import train_run

FAST = dict(blocks=1, epochs=2, batch_size=64, device="cpu")


def test_run_folder_contents_and_config_round_trip(small_synth, tmp_path):
    cfg = RunConfig(**FAST, fold="2/2")
    metrics = train_run(small_synth, cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert is_complete(run)
    stored = json.loads((run / "config.json").read_text())
    assert stored["model"] == {"blocks": 1, "in_channels": 1, "n_classes": 180}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert read_config(run).fold == "2/2"
    model = load_model(run)
    assert model.blocks == 1
    fold = resolve_fold(small_synth, "2/2")
    assert metrics["windows"] == len(fold.test)
    assert set(metrics["per_subject"]) == set(fold.test_subjects)
    assert "per_activity" in metrics and metrics["windows_per_s"] > 0
    lines = (run / "log.jsonl").read_text().splitlines()
    assert len(lines) == metrics["epochs_run"] == 2
    assert {"epoch", "train_loss", "val_loss", "val_mae_argmax"} <= set(json.loads(lines[0]))


def test_training_is_deterministic_on_cpu_for_a_seed(small_synth, tmp_path):
    cfg = RunConfig(**FAST, augment=True, select_on="val_mae")
    a = train_run(small_synth, cfg, tmp_path / "a", progress=False)
    b = train_run(small_synth, cfg, tmp_path / "b", progress=False)
    train_run(small_synth, RunConfig(**FAST, augment=True, seed=1), tmp_path / "c", progress=False)
    wa, wb, wc = (load_model(tmp_path / n).state_dict() for n in "abc")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a["mae_argmax"] == b["mae_argmax"] and a["mae_expectation"] == b["mae_expectation"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_a_study_reuses_a_run_only_for_the_same_config_and_data(small_synth, tmp_path, monkeypatch):
    """Every command trains through edgekd.executor: a folder that merely exists and is complete is not enough."""
    from edgekd.executor import execute, job, metrics_of

    def train_or_reuse(ws, cfg, folder):
        j = job(ws, cfg, folder)
        execute(ws, [j])
        return metrics_of(j)

    cfg, run = RunConfig(**{**FAST, "epochs": 1}), tmp_path / "run"
    first = train_or_reuse(small_synth, cfg, run)
    trained = []
    real = train_mod.train_run
    monkeypatch.setattr(train_mod, "train_run", lambda *a, **k: trained.append(a[1]) or real(*a, **k))
    assert train_or_reuse(small_synth, cfg, run) == first and trained == []  # same config, same data: reused
    train_or_reuse(small_synth, RunConfig(**FAST), run)  # other arguments: retrained in place
    assert trained[-1].epochs == 2 and read_config(run).epochs == 2
    relabelled = small_synth.subset(np.arange(len(small_synth)))
    relabelled.hr = relabelled.hr + 1.0  # re-prepared labels, same windows
    train_or_reuse(relabelled, RunConfig(**FAST), run)
    assert len(trained) == 2
    train_or_reuse(relabelled, RunConfig(**FAST), run)
    assert len(trained) == 2
    # a ResNet teacher made from a spectral student's settings carries its width, which a ResNet's config.json
    # does not record: it is still the same run (edgekd lodo's teachers were retrained on every re-run)
    teacher = RunConfig(**{**FAST, "epochs": 2}, width=7)
    train_or_reuse(relabelled, teacher, run)
    assert len(trained) == 2


def test_killed_run_leaves_no_metrics_and_a_loadable_checkpoint(small_synth, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_mod.predict_logits

    def dying(*args, **kwargs):  # validation of epoch 2 is "killed"
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod, "predict_logits", dying)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train_run(small_synth, RunConfig(**FAST), run, progress=False)
    assert not is_complete(run)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "log.jsonl", "model.safetensors"]
    ResNet1D(1).load_state_dict(load_file(run / "model.safetensors"))  # epoch 1's checkpoint, intact
    with pytest.raises(EdgekdError, match="is incomplete"):  # but no consumer uses an interrupted run
        load_model(run)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(small_synth, tmp_path, monkeypatch):
    real = DistillLoss.forward

    def nan_after_first_epoch(self, s, t, target, epoch):
        total, parts = real(self, s, t, target, epoch)
        return (total * float("nan") if epoch >= 1 else total), parts

    monkeypatch.setattr(DistillLoss, "forward", nan_after_first_epoch)
    run = tmp_path / "run"
    with pytest.raises(EdgekdError, match="loss became nan in epoch 2.*keeps the weights of epoch 1"):
        train_run(small_synth, RunConfig(**FAST), run, progress=False)
    assert not is_complete(run)
    assert all(torch.isfinite(v).all() for v in load_file(run / "model.safetensors").values() if v.is_floating_point())


def test_bad_folds_and_channels_are_rejected(small_synth, tmp_path):
    one_subject = small_synth.subset(np.flatnonzero(small_synth.subject == small_synth.subjects()[0]))
    subject = one_subject.subjects()[0]
    with pytest.raises(EdgekdError, match="empty training side"):
        train_run(one_subject, RunConfig(**FAST, fold=f"loso:{subject}"), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="subject 'nobody' is not in the data"):
        train_run(small_synth, RunConfig(**FAST, fold="loso:nobody"), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="K/N"):
        train_run(small_synth, RunConfig(**FAST, fold="first"), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="reads 4 channels but the data have 1"):
        train_run(small_synth.ppg_only(), RunConfig(**FAST, in_channels=4), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="unknown strategy 'magic'"):
        train_run(small_synth, RunConfig(**FAST, strategy="magic"), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="select_on must be one of"):
        train_run(small_synth, RunConfig(**FAST, select_on="accuracy"), tmp_path / "r", progress=False)
    with pytest.raises(EdgekdError, match="needs a teacher"):
        train_run(small_synth, RunConfig(**FAST, strategy="dkd"), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()  # bad input is caught before anything is written


def test_four_channel_student_reads_ppg_and_acc(small_synth, tmp_path):
    metrics = train_run(small_synth, RunConfig(**FAST, in_channels=4), tmp_path / "r", progress=False)
    assert load_model(tmp_path / "r").in_channels == 4 and metrics["in_channels"] == 4


def test_augment_scales_the_label_with_the_time_stretch():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(200) / 25.0
    x = torch.sin(2 * np.pi * 1.5 * t).repeat(64, 1, 1)  # 90 BPM
    hr = torch.full((64,), 90.0)
    xa, hra = augment(x, hr, g)
    assert xa.shape == x.shape and torch.isfinite(xa).all()
    stretched = hra != 90.0
    assert stretched.any() and ((hra >= 81) & (hra <= 99)).all()
    # The dominant frequency of a stretched, artefact-free window follows the scaled label.
    g = torch.Generator().manual_seed(3)
    import edgekd.augment as aug

    old = aug.P_MOTION
    aug.P_MOTION = 0.0
    try:
        xa, hra = augment(x, hr, g)
    finally:
        aug.P_MOTION = old
    spec = torch.fft.rfft(xa[:, 0], n=4000).abs()
    peak_bpm = spec.argmax(-1).float() * 25.0 / 4000 * 60
    assert torch.allclose(peak_bpm, hra, atol=1.0)
    xp, hrp = augment(x, hr, torch.Generator().manual_seed(0), label_preserving=True)
    assert torch.equal(hrp, hr)
    ratio = xp / x
    assert torch.allclose(ratio[torch.isfinite(ratio) & (x.abs() > 0.1)].reshape(64, -1).std(-1), torch.zeros(64),
                          atol=1e-4)  # only amplitude scaling


def test_init_from_starts_from_pretrained_weights_and_checks_the_architecture(small_synth, tmp_path):
    train_run(small_synth, RunConfig(**FAST), tmp_path / "pre", progress=False)
    # lr 0: fine-tuning changes no weight, so the result is exactly the pretrained model.
    tuned = RunConfig(**{**FAST, "lr": 0.0}, init_from=str(tmp_path / "pre"))
    train_run(small_synth, tuned, tmp_path / "tuned", progress=False)
    a, b = load_model(tmp_path / "pre").state_dict(), load_model(tmp_path / "tuned").state_dict()
    weights = [k for k in a if "running" not in k and "num_batches" not in k]
    assert weights and all(torch.equal(a[k], b[k]) for k in weights)
    train_run(small_synth, RunConfig(**{**FAST, "lr": 0.0, "seed": 1}), tmp_path / "s1", progress=False)
    fresh = load_model(tmp_path / "s1").state_dict()  # without init_from: a different random start
    assert not all(torch.equal(a[k], fresh[k]) for k in weights)
    with pytest.raises(EdgekdError, match="init_from is a ResNet1D 1 blocks with 1 channel.s., this run trains a ResNet1D 2 blocks"):
        train_run(small_synth, RunConfig(**{**FAST, "blocks": 2}, init_from=str(tmp_path / "pre")),
                  tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
