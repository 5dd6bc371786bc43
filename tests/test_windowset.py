import json

import numpy as np
import pytest

from edgekd.data.synthetic import generate
from edgekd.errors import DataError, EdgekdError
from edgekd.splits import holdout, kfold, leave_one_subject_out, parse_fold, validation_split
from edgekd.windowset import WindowSet, concat


def _ws(n=10, subjects=("a", "b", "c", "d", "e")):
    rng = np.random.default_rng(0)
    return WindowSet(x=rng.normal(size=(n, 1, 200)), hr=rng.uniform(50, 150, n),
                     subject=[subjects[i % len(subjects)] for i in range(n)],
                     recording=[f"r{i % len(subjects)}" for i in range(n)], provenance={"dataset": "t"})


def test_save_load_round_trip_with_sidecar(tmp_path):
    ws = _ws()
    path = ws.save(tmp_path / "w.npz")
    back = WindowSet.load(path)
    np.testing.assert_array_equal(back.x, ws.x)
    np.testing.assert_array_equal(back.subject, ws.subject)
    assert back.provenance["dataset"] == "t" and "edgekd_version" in back.provenance
    side = json.loads((tmp_path / "w.json").read_text())
    assert side["summary"]["windows"] == 10 and side["summary"]["subjects"] == 5
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_load_rejects_truncated_and_foreign_files(tmp_path):
    path = _ws().save(tmp_path / "w.npz")
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        WindowSet.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="missing arrays"):
        WindowSet.load(tmp_path / "other.npz")
    with pytest.raises(DataError, match="no such"):
        WindowSet.load(tmp_path / "absent.npz")


def test_validation_catches_nan_and_shape():
    with pytest.raises(DataError, match="NaN"):
        WindowSet(x=np.full((2, 1, 200), np.nan), hr=[60, 70], subject=["a", "b"], recording=["a", "b"])
    with pytest.raises(DataError, match="200"):
        WindowSet(x=np.zeros((2, 1, 100)), hr=[60, 70], subject=["a", "b"], recording=["a", "b"])
    with pytest.raises(DataError, match="hr"):
        WindowSet(x=np.zeros((2, 1, 200)), hr=[60, 0], subject=["a", "b"], recording=["a", "b"])


def test_failed_save_leaves_no_file(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(EdgekdError, match="disk full"):
        _ws().save(tmp_path / "w.npz")
    assert list(tmp_path.iterdir()) == []


def test_splits_are_subject_independent():
    ws = _ws(n=50)
    for fold in kfold(ws, 2, seed=3) + leave_one_subject_out(ws) + [holdout(ws)]:
        assert not set(ws.subject[fold.train]) & set(ws.subject[fold.test])
        assert len(fold.train) + len(fold.test) == len(ws)
    folds = kfold(ws, 2)
    assert sorted(np.concatenate([f.test for f in folds]).tolist()) == list(range(50))
    assert len(holdout(ws).test_subjects) == 1  # 20 % of 5 subjects
    many = _ws(n=100, subjects=tuple("abcdefghij"))
    train = kfold(many, 2)[0].train
    tr, va = validation_split(many, train)
    assert not set(many.subject[tr]) & set(many.subject[va])
    assert set(many.subject[va]) <= set(many.subject[train])
    # Under 3 training subjects there is no subject to spare: the tail of each recording validates.
    two = kfold(ws, 2)[1].train if len(set(ws.subject[kfold(ws, 2)[1].train])) < 3 else kfold(ws, 2)[0].train
    tr, va = validation_split(ws, two)
    assert len(va) and not set(tr.tolist()) & set(va.tolist())


def test_split_errors_are_clear():
    ws = _ws(subjects=("a",))
    with pytest.raises(EdgekdError, match="at least 2 subjects"):
        holdout(ws)
    with pytest.raises(EdgekdError, match="K-fold"):
        kfold(_ws(), 9)
    assert parse_fold("2/3") == (1, 3)
    with pytest.raises(EdgekdError, match="K/N"):
        parse_fold("two")


def test_concat_checks_channels():
    a = _ws()
    b = a.subset(np.arange(3))
    assert len(concat([a, b])) == 13
    c = generate(subjects=1, minutes=0.5)
    with pytest.raises(DataError, match="channels"):
        concat([a, c])


def test_synthetic_is_deterministic_and_labelled():
    a = generate(subjects=2, minutes=1.0, seed=5)
    b = generate(subjects=2, minutes=1.0, seed=5)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.channels == ("ppg", "acc_x", "acc_y", "acc_z")
    assert len(a) == 2 * (1 + (60 * 25 - 200) // 50)
    assert not np.array_equal(a.x, generate(subjects=2, minutes=1.0, seed=6).x)


def test_synthetic_labels_match_spectral_peak_at_rest():
    """The label is the HR the signal carries: at rest the PPG spectrum peaks at the labelled HR."""
    from scipy.signal import periodogram

    ws = generate(subjects=3, minutes=4.0, seed=2)
    f, p = periodogram(ws.x[:, 0], fs=25, nfft=2048, axis=-1)
    band = (f > 0.6) & (f < 3.5)
    est = f[band][p[:, band].argmax(axis=1)] * 60
    rest = ws.activity == "rest"
    assert rest.sum() > 20
    assert np.mean(np.abs(est[rest] - ws.hr[rest]) < 3) > 0.9
    # Motion makes it hard (which is the point of the corpus): running windows often lock onto cadence.
    run = ws.activity == "run"
    if run.any():
        assert np.mean(np.abs(est[run] - ws.hr[run]) < 3) < 0.9


def test_identity_hash_sees_labels_and_ids_windows_hash_only_the_signal(small_synth):
    from edgekd.windowset import identity_hash, windows_hash

    same = small_synth.subset(np.arange(len(small_synth)))
    assert identity_hash(same) == identity_hash(small_synth) and windows_hash(same) == windows_hash(small_synth)
    for field, change in (("hr", lambda ws: ws.hr + 1.0), ("subject", lambda ws: np.roll(ws.subject, 1)),
                          ("recording", lambda ws: np.char.add(ws.recording, "b"))):
        other = small_synth.subset(np.arange(len(small_synth)))
        setattr(other, field, change(other))
        assert identity_hash(other) != identity_hash(small_synth), field
        assert windows_hash(other) == windows_hash(small_synth), field  # the teacher cache stays valid
