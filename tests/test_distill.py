"""Teacher outputs cache, teacher checks, and the distill orchestration (cross-modal, ensemble, progressive)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgekd.teacher as teacher_mod
from edgekd.atomic import write_json
from edgekd.checkpoint import save_weights
from edgekd.cli.main import main
from edgekd.distill import DistillPlan, distill
from edgekd.errors import EdgekdError
from edgekd.model import ResNet1D
from edgekd.runs import RunConfig, read_config
from edgekd.train import teacher_requirements, train_run
from edgekd.windowset import identity_hash

FAST = dict(epochs=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, small_synth_module):
    out = tmp_path_factory.mktemp("t") / "teacher"
    train_run(small_synth_module, RunConfig(blocks=2, **FAST), out, progress=False)
    return out


@pytest.fixture(scope="module")
def small_synth_module():
    from edgekd.data.synthetic import generate

    return generate(subjects=4, minutes=2.0, seed=1)


def test_teacher_outputs_are_computed_once_and_cached_on_disk(small_synth_module, tmp_path, monkeypatch):
    ws = small_synth_module
    model = ResNet1D(2).eval()
    calls = {"n": 0}
    real = model.forward_features

    def counting(x):
        calls["n"] += 1
        return real(x)

    monkeypatch.setattr(model, "forward_features", counting)
    a = teacher_mod.teacher_outputs(model, ws, "cpu", stage_index=1, pooled=True, cache_dir=tmp_path)
    n_first = calls["n"]
    b = teacher_mod.teacher_outputs(model, ws, "cpu", stage_index=1, pooled=True, cache_dir=tmp_path)
    assert calls["n"] == n_first > 0  # second call: memory cache, no forward pass
    assert torch.equal(a.logits, b.logits) and a.stage.shape == (len(ws), 32, 100)
    teacher_mod._MEMORY.clear()
    c = teacher_mod.teacher_outputs(model, ws, "cpu", stage_index=1, pooled=True, cache_dir=tmp_path)
    assert calls["n"] == n_first  # disk cache
    assert torch.equal(c.stage, a.stage) and torch.equal(c.pooled, a.pooled)
    assert len(list(tmp_path.glob("teacher-*.safetensors"))) == 1
    with torch.no_grad():
        direct = real(torch.from_numpy(ws.x[:5, :1]))[0]
    torch.testing.assert_close(a.logits[:5], direct, rtol=1e-4, atol=1e-4)


def test_teachers_that_do_not_fit_the_data_are_rejected(small_synth_module, tmp_path):
    ws = small_synth_module
    four = tmp_path / "four"
    train_run(ws, RunConfig(blocks=1, in_channels=4, **FAST), four, progress=False)
    with pytest.raises(EdgekdError, match=r"four: teacher expects 4 input channels but the data have 1"):
        train_run(ws.ppg_only(), RunConfig(blocks=1, strategy="soft", teachers=[str(four)], **FAST),
                  tmp_path / "s", progress=False)
    ten = tmp_path / "ten"
    model = ResNet1D(1, 1, n_classes=10)
    save_weights(model, ten / "model.safetensors")
    write_json(ten / "config.json", {"model": model.config()})
    with pytest.raises(EdgekdError, match=r"ten/config.json: model 'n_classes' must be 180, got 10"):
        train_run(ws, RunConfig(blocks=1, strategy="dkd", teachers=[str(ten)], **FAST), tmp_path / "s",
                  progress=False)


def test_teacher_from_another_fold_is_rejected(small_synth_module, teacher_run, tmp_path):
    with pytest.raises(EdgekdError, match="has seen the student's test subjects"):
        train_run(small_synth_module, RunConfig(blocks=1, strategy="soft", teachers=[str(teacher_run)],
                                                fold="2/2", **FAST), tmp_path / "s", progress=False)
    # the same windows with other subject ids: the fold names the same, but not the same subjects
    renamed = small_synth_module.subset(np.arange(len(small_synth_module)))
    renamed.subject = np.char.add(renamed.subject, "x")
    with pytest.raises(EdgekdError, match="other labels or subject ids"):
        train_run(renamed, RunConfig(blocks=1, strategy="soft", teachers=[str(teacher_run)], **FAST),
                  tmp_path / "s2", progress=False)


@pytest.mark.parametrize("strategy", ["hard", "soft", "dkd", "feature", "ppg-distill", {"dkd": 1.0, "feature": 0.5}])
def test_every_strategy_trains_a_student(small_synth_module, teacher_run, tmp_path, strategy):
    cfg = RunConfig(blocks=1, strategy=strategy, teachers=[str(teacher_run)], **FAST)
    metrics = train_run(small_synth_module, cfg, tmp_path / "s", progress=False)
    assert metrics["mae_argmax"] >= 0 and metrics["strategy"] == cfg.strategy_label()
    stage, pooled = teacher_requirements(cfg, 2)
    assert (stage is not None) == bool({"feature", "ppg-distill"} & set(cfg.strategy_weights()))


def test_precomputed_teacher_outputs_must_match_the_strategy(small_synth_module, teacher_run, tmp_path):
    from edgekd.checkpoint import load_model

    logits_only = teacher_mod.teacher_outputs(load_model(teacher_run), small_synth_module, "cpu")
    cfg = RunConfig(blocks=1, strategy="feature", teachers=[str(teacher_run)], **FAST)
    with pytest.raises(EdgekdError, match="needs the teacher's block 1 features"):
        train_run(small_synth_module, cfg, tmp_path / "s", teacher=logits_only, progress=False)


def test_distill_cross_modal_progressive_and_reuse(small_synth_module, tmp_path):
    plan = DistillPlan(student=RunConfig(blocks=1, strategy="dkd", **FAST), teacher_blocks=2, teacher_in_channels=4,
                       intermediate_blocks=1)
    rows = distill(small_synth_module, plan, tmp_path, progress=False)
    assert [r["model"] for r in rows] == ["teacher", "intermediate", "scratch student", "dkd student"]
    assert rows[0]["in_channels"] == 4 and rows[-1]["in_channels"] == 1
    assert read_config(tmp_path / "student").teachers == [str(tmp_path / "intermediate")]
    stamp = (tmp_path / "teacher" / "metrics.json").stat().st_mtime_ns
    again = distill(small_synth_module, plan, tmp_path, progress=False)
    assert (tmp_path / "teacher" / "metrics.json").stat().st_mtime_ns == stamp  # reused, not retrained
    assert again[0]["mae_argmax"] == rows[0]["mae_argmax"]


def test_ensemble_of_teachers(small_synth_module, teacher_run, tmp_path):
    second = tmp_path / "t2"
    train_run(small_synth_module, RunConfig(blocks=1, seed=5, **FAST), second, progress=False)
    plan = DistillPlan(student=RunConfig(blocks=1, strategy="soft", **FAST), teachers=[str(teacher_run), str(second)],
                       scratch=False)
    rows = distill(small_synth_module, plan, tmp_path / "d", progress=False)
    assert [r["model"] for r in rows] == ["teacher", "teacher", "soft student"]
    stored = (tmp_path / "d" / "student" / "config.json").read_text()
    assert '"members": 2' in stored
    with pytest.raises(EdgekdError, match="need a single teacher"):
        train_run(small_synth_module, RunConfig(blocks=1, strategy="feature", teachers=[str(teacher_run), str(second)],
                                                **FAST), tmp_path / "f", progress=False)


def test_cli_distill_and_bad_strategy(small_synth_module, tmp_path, capsys):
    data = small_synth_module.save(tmp_path / "ws.npz")
    args = ["distill", "--data", str(data), "--teacher-blocks", "1", "--student-blocks", "1", "--epochs", "1",
            "--quiet", "--out", str(tmp_path / "o")]
    assert main(args + ["--strategy", "soft"]) == 0
    out = capsys.readouterr().out
    assert "teacher" in out and "scratch student" in out and "soft student" in out
    assert main(args + ["--strategy", "dkd+magic"]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err


def _not_synthetic(ws):
    """The synthetic generator's windows under another data set's name: stands in for a user's recordings."""
    ws = ws.subset(np.arange(len(ws)))
    ws.dataset = np.full(len(ws), "wrist-lab")
    ws.provenance = {**ws.provenance, "dataset": "wrist-lab"}
    return ws


def test_synthetic_subjects_join_the_training_side_only(small_synth_module, tmp_path):
    from edgekd.data.synthetic import generate

    ws = _not_synthetic(small_synth_module)
    plain = train_run(ws, RunConfig(blocks=1, **FAST), tmp_path / "plain", progress=False)
    more = train_run(ws, RunConfig(blocks=1, synthetic=2, **FAST), tmp_path / "more", progress=False)
    assert more["test_subjects"] == plain["test_subjects"] and more["windows"] == plain["windows"]
    extra = len(generate(2, 6.0, 0))
    assert more["train_windows"] + more["val_windows"] == plain["train_windows"] + plain["val_windows"] + extra
    with pytest.raises(EdgekdError, match=r"synthetic must be an integer 0..1000, got 1001"):
        RunConfig(synthetic=1001).validate()
    stored = read_config(tmp_path / "more")
    assert stored.synthetic == 2 and "synthetic" not in RunConfig().to_dict()  # older run configs stay equal
    # what reuse compares is the data as given, not the synthetic windows
    assert (json.loads((tmp_path / "more" / "config.json").read_text())["data"]["windows"] == len(ws))


def test_synthetic_subjects_are_refused_on_the_synthetic_corpus(small_synth_module, tmp_path, capsys):
    with pytest.raises(EdgekdError, match="already hold the synthetic corpus"):
        train_run(small_synth_module, RunConfig(blocks=1, synthetic=1, **FAST), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    data = small_synth_module.save(tmp_path / "syn.npz")
    assert main(["train", "--data", str(data), "--blocks", "1", "--synthetic", "1", "--out", str(tmp_path / "t"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{data}: the data already hold the synthetic corpus" in err
    assert not (tmp_path / "t").exists()


def test_distill_with_data_trains_the_recipe_alone(small_synth_module, tmp_path, capsys):
    from edgekd.distill import RECIPE

    data = _not_synthetic(small_synth_module).save(tmp_path / "lab.npz")
    out = tmp_path / "o"
    assert main(["distill", "--data", str(data), "--epochs", "1", "--quiet", "--json", "--out", str(out)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["scratch student"] and sorted(p.name for p in out.iterdir()) == ["student"]
    cfg = read_config(out / "student")
    assert (cfg.family, cfg.blocks, cfg.width, cfg.strategy, cfg.synthetic) == ("spectral", 4, 7, "scratch", 60)
    assert (cfg.family, cfg.blocks, cfg.width, cfg.synthetic) == (RECIPE.family, RECIPE.blocks, RECIPE.width,
                                                                  RECIPE.synthetic)
    # a teacher means distillation; a scratch strategy with a teacher is refused before anything trains
    assert main(["distill", "--data", str(data), "--teacher", str(out / "student"), "--strategy", "scratch",
                 "--epochs", "1", "--quiet", "--out", str(tmp_path / "x")]) == 2
    assert "--teacher would be ignored" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_distill_demo_still_distils(small_synth_module, tmp_path, capsys):
    """On the synthetic corpus (the demo's data) distill trains teacher, scratch and DKD twins, no synthetic extra."""
    from edgekd.study_report import render

    data = small_synth_module.save(tmp_path / "syn.npz")
    table = tmp_path / "results" / "demo.md"
    assert main(["distill", "--data", str(data), "--teacher-blocks", "1", "--epochs", "1", "--strategy", "dkd",
                 "--quiet", "--json", "--out", str(tmp_path / "o"), "--table", str(table)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["teacher", "scratch student", "dkd student"]
    text = table.read_text()  # the same rows as a study record and its table
    assert text == render(table.with_suffix(".json")) and f"| dkd student | {rows[2]['architecture']}" in text
    assert f"{rows[1]['mae_fused']:.2f} |" in text and "--table" in text
    assert read_config(tmp_path / "o" / "student").synthetic == 0
    assert read_config(tmp_path / "o" / "student").family == "spectral"


def test_models_trained_with_synthetic_subjects_never_meet_the_synthetic_corpus_as_unseen_data(
        small_synth_module, tmp_path, capsys):
    """The synthetic training subjects are the synthetic corpus's subjects (the default corpus is their first 12):
    such a model may not teach, start or be scored on data holding that corpus."""
    lab = _not_synthetic(small_synth_module)
    seen = tmp_path / "seen"
    train_run(lab, RunConfig(blocks=1, synthetic=1, **FAST), seen, progress=False)
    with pytest.raises(EdgekdError, match=r"seen: trained with 1 synthetic subjects.*\(teacher\)"):
        train_run(small_synth_module, RunConfig(blocks=1, strategy="soft", teachers=[str(seen)], **FAST),
                  tmp_path / "s", progress=False)
    with pytest.raises(EdgekdError, match=r"\(init_from\)"):
        train_run(small_synth_module, RunConfig(blocks=1, init_from=str(seen), **FAST), tmp_path / "i",
                  progress=False)
    assert main(["evaluate", str(seen)]) == 2  # the default corpus: windows it trained on
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the synthetic default corpus" in err and "same generated subjects" in err
    # distill refuses such a teacher before anything trains
    data = small_synth_module.save(tmp_path / "syn.npz")
    assert main(["distill", "--data", str(data), "--teacher", str(seen), "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "d")]) == 2
    assert "(teacher)" in capsys.readouterr().err and not (tmp_path / "d").exists()
    # nor may export score it on the synthetic corpus (the card's accuracy)
    from export.windows import select

    with pytest.raises(EdgekdError, match="same generated subjects"):
        select(seen, 1, None, data, data)
    # fine-tuning on the data it was trained with, synthetic subjects and all, is not a leak
    train_run(lab, RunConfig(blocks=1, synthetic=1, init_from=str(seen), **FAST), tmp_path / "ft", progress=False)


def test_distill_teacher_settings_mean_distillation(small_synth_module, tmp_path, capsys):
    data = _not_synthetic(small_synth_module).save(tmp_path / "lab.npz")
    base = ["distill", "--data", str(data), "--epochs", "1", "--synthetic", "0", "--quiet", "--json"]
    assert main(base + ["--teacher-blocks", "1", "--out", str(tmp_path / "o")]) == 0
    assert [r["model"] for r in json.loads(capsys.readouterr().out)] == ["teacher", "scratch student", "dkd student"]
    assert main(base + ["--strategy", "scratch", "--teacher-epochs", "2", "--out", str(tmp_path / "x")]) == 2
    assert "--teacher-epochs would be ignored" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_distill_retrains_when_the_data_change(small_synth_module, tmp_path, capsys):
    """A run folder of the same config on other data is not reused (its identity hash differs)."""
    a = _not_synthetic(small_synth_module)
    b = a.subset(np.arange(len(a)))
    b.hr = b.hr + 1.0  # corrected labels: the same windows, other data
    out = tmp_path / "o"
    for ws, name in ((a, "a.npz"), (b, "b.npz")):
        assert main(["distill", "--data", str(ws.save(tmp_path / name)), "--epochs", "1", "--synthetic", "0",
                     "--quiet", "--json", "--out", str(out)]) == 0
        capsys.readouterr()
        assert json.loads((out / "student" / "config.json").read_text())["data"]["hash"] == identity_hash(ws)


def test_a_retrained_teacher_retrains_its_students(small_synth_module, tmp_path, capsys):
    """A distilled run records its teachers' weights; when a teacher is retrained, the student is not reused."""
    data = _not_synthetic(small_synth_module).save(tmp_path / "lab.npz")
    argv = ["distill", "--data", str(data), "--epochs", "1", "--synthetic", "0", "--no-scratch", "--quiet",
            "--out", str(tmp_path / "o")]
    student = tmp_path / "o" / "student"
    assert main(argv + ["--teacher-blocks", "1"]) == 0
    first = (student / "metrics.json").stat().st_mtime_ns
    assert main(argv + ["--teacher-blocks", "1"]) == 0  # nothing changed: reused
    assert (student / "metrics.json").stat().st_mtime_ns == first
    # another teacher in the same folder (the student's own config is unchanged): another student
    assert main(argv + ["--teacher-blocks", "2"]) == 0
    assert (student / "metrics.json").stat().st_mtime_ns != first
    taught = json.loads((student / "config.json").read_text())["teacher"]["weights"]
    assert taught == [json.loads((tmp_path / "o" / "teacher" / "metrics.json").read_text())["weights_sha256"]]
