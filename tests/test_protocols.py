"""Cross-data-set protocols: `data merge`, --fold lodo:DATASET and --fold all, per-data-set reports, coverage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekd.cli.main import main
from edgekd.data.synthetic import generate
from edgekd.errors import DataError, EdgekdError
from edgekd.evaluate import covered_mae, mae_report
from edgekd.fusion import FusionConfig
from edgekd.runs import RunConfig, resolve_fold
from edgekd.train import train_run
from edgekd.windowset import WindowSet, merge


def _two_sets() -> tuple[WindowSet, WindowSet]:
    a = generate(subjects=3, minutes=1.5, seed=1)
    b = generate(subjects=2, minutes=1.5, seed=2).ppg_only()
    b.dataset = np.full(len(b), "other")
    return a, b


def test_merge_keeps_datasets_prefixes_ids_and_zero_fills_acc(tmp_path, capsys):
    a, b = _two_sets()
    a.save(tmp_path / "a.npz")
    b.save(tmp_path / "b.npz")
    assert main(["data", "merge", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out",
                 str(tmp_path / "m.npz"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["acc_zero_filled"] == [str(tmp_path / "b.npz")]
    m = WindowSet.load(tmp_path / "m.npz")
    assert m.datasets() == ["other", "synthetic"] and len(m) == len(a) + len(b)
    assert m.channels == a.channels and np.all(m.x[m.dataset == "other", 1:] == 0)
    assert set(m.subject[m.dataset == "other"]) == {f"other/{s}" for s in b.subjects()}
    assert [p["windows"] for p in m.provenance["parts"]] == [len(a), len(b)]
    with pytest.raises(DataError, match="appears in two inputs"):
        merge({"x": a, "y": a})
    a.save(tmp_path / "a2.npz")  # the same loader twice: named apart with --names
    assert main(["data", "merge", str(tmp_path / "a.npz"), str(tmp_path / "a2.npz"), "--names", "left,right",
                 "--out", str(tmp_path / "n.npz")]) == 0
    assert WindowSet.load(tmp_path / "n.npz").datasets() == ["left", "right"]
    assert main(["data", "merge", str(tmp_path / "a.npz"), str(tmp_path / "a2.npz"), "--names", "one",
                 "--out", str(tmp_path / "bad.npz")]) == 2
    assert not (tmp_path / "bad.npz").exists()


def test_lodo_and_all_folds(tmp_path):
    m = merge(dict(zip("ab", _two_sets())))
    fold = resolve_fold(m, "lodo:other")
    assert set(m.dataset[fold.test]) == {"other"} and set(m.dataset[fold.train]) == {"synthetic"}
    with pytest.raises(EdgekdError, match="data set 'nope' is not in the data"):
        resolve_fold(m, "lodo:nope")
    every = resolve_fold(m, "all")
    assert len(every.train) == len(m) and len(every.test) == 0
    metrics = train_run(m, RunConfig(blocks=1, epochs=1, fold="all", in_channels=4, device="cpu"),
                        tmp_path / "run", progress=False)
    assert metrics["windows"] == 0 and metrics["mae_fused"] is None and metrics["train_windows"] > 0
    metrics = train_run(m, RunConfig(blocks=1, epochs=1, fold="lodo:other", device="cpu"), tmp_path / "lodo",
                        progress=False)
    assert list(metrics["per_dataset"]) == ["other"] and metrics["windows"] == int((m.dataset == "other").sum())


def test_report_has_every_metric_per_group_and_coverage(rng):
    m = merge(dict(zip("ab", _two_sets())))
    report = mae_report(rng.normal(size=(len(m), 180)).astype(np.float32), m, FusionConfig())
    for key in ("per_dataset", "per_subject", "per_recording", "per_activity"):
        for row in report[key].values():
            assert {"mae_argmax", "mae_expectation", "mae_causal", "mae_fused", "mae_fused_cov90",
                    "mae_fused_cov80", "windows"} <= set(row)
    assert sum(r["windows"] for r in report["per_dataset"].values()) == len(m)


def test_covered_mae_drops_the_least_confident_windows():
    err = np.array([1.0, 2.0, 30.0, 40.0, 3.0])
    conf = np.array([0.9, 0.8, 0.1, 0.2, 0.7])
    assert covered_mae(err, conf, 1.0) == err.mean()
    assert covered_mae(err, conf, 0.6) == pytest.approx(2.0)  # the 3 most confident: 1, 2, 3
