"""Each distillation loss against an independent NumPy re-derivation from its definition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.losses import (DistillLoss, StudentOut, TeacherBatch, distance_matrix, dkd_parts, morphology_infonce,
                           normalised_mse, resolve_params, rhythm_loss, soft_kd, teacher_stage_for)
from edgekd.arch import stage_widths

WIDTHS_1 = stage_widths({"blocks": 1, "in_channels": 1})  # a 1-block ResNet student's stages


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return (p * (np.log(p) - np.log(q))).sum(-1)


@pytest.fixture
def logits(rng):
    s = rng.normal(size=(6, 180)) * 3
    t = rng.normal(size=(6, 180)) * 3
    y = rng.integers(0, 180, size=6)
    return s, t, y


def test_soft_kd_matches_definition_and_vanishes_for_identical_logits(logits):
    s, t, _ = logits
    T = 4.0
    expected = (_kl(_softmax(t / T), _softmax(s / T))).mean() * T * T
    got = float(soft_kd(torch.tensor(s), torch.tensor(t), T))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(soft_kd(torch.tensor(t), torch.tensor(t), T)) == pytest.approx(0.0, abs=1e-6)


def test_dkd_equals_tckd_plus_nckd_from_definitions(logits):
    s, t, y = logits
    T = 4.0
    ps, pt = _softmax(s / T), _softmax(t / T)
    rows = np.arange(len(y))
    bs = np.stack([ps[rows, y], 1 - ps[rows, y]], -1)
    bt = np.stack([pt[rows, y], 1 - pt[rows, y]], -1)
    tckd = _kl(bt, bs).mean() * T * T
    # Non-target distributions: delete the target column, then softmax over what is left.
    keep = np.ones_like(s, dtype=bool)
    keep[rows, y] = False
    qs = _softmax(s[keep].reshape(len(y), -1) / T)
    qt = _softmax(t[keep].reshape(len(y), -1) / T)
    nckd = _kl(qt, qs).mean() * T * T
    got_t, got_n = dkd_parts(torch.tensor(s), torch.tensor(t), torch.tensor(y), T)
    assert float(got_t) == pytest.approx(tckd, rel=1e-4)
    assert float(got_n) == pytest.approx(nckd, rel=1e-4)
    # Composed with alpha 1, beta 8 after warm-up, through the module the trainer uses.
    loss = DistillLoss({"dkd": 1.0}, resolve_params({}, epochs=100), WIDTHS_1, 2)
    total, parts = loss(StudentOut(torch.tensor(s), [], torch.zeros(6, 32)), TeacherBatch(torch.tensor(t)),
                        torch.tensor(y), epoch=99)
    assert float(parts["dkd"]) == pytest.approx(tckd + 8 * nckd, rel=1e-4)
    assert float(total) == pytest.approx(float(parts["ce"]) + tckd + 8 * nckd, rel=1e-4)


def test_nckd_ignores_the_target_class(logits):
    s, t, y = logits
    rows = np.arange(len(y))
    s2, t2 = s.copy(), t.copy()
    s2[rows, y] += 5.0
    t2[rows, y] -= 3.0
    tckd1, nckd1 = dkd_parts(torch.tensor(s), torch.tensor(t), torch.tensor(y), 4.0)
    tckd2, nckd2 = dkd_parts(torch.tensor(s2), torch.tensor(t2), torch.tensor(y), 4.0)
    assert float(nckd2) == pytest.approx(float(nckd1), rel=1e-5)
    assert abs(float(tckd2) - float(tckd1)) > 1e-3


def test_dkd_warmup_ramps_linearly():
    params = resolve_params({"warmup": 20}, epochs=200)
    loss = DistillLoss({"dkd": 1.0}, params, WIDTHS_1, 2)
    s, t, y = torch.randn(4, 180), torch.randn(4, 180), torch.randint(0, 180, (4,))
    out = StudentOut(s, [], torch.zeros(4, 32))
    full = float(loss(out, TeacherBatch(t), y, epoch=50)[1]["dkd"])
    assert float(loss(out, TeacherBatch(t), y, epoch=4)[1]["dkd"]) == pytest.approx(full * 5 / 20, rel=1e-5)
    assert resolve_params({"warmup": 20}, epochs=8)["warmup"] == 2  # short runs still reach full weight


def test_infonce_matches_definition_and_is_minimal_when_patches_match(rng):
    s = rng.normal(size=(3, 8, 16))
    t = rng.normal(size=(3, 8, 16))
    tau = 0.1
    sn = s / np.linalg.norm(s, axis=-1, keepdims=True)
    tn = t / np.linalg.norm(t, axis=-1, keepdims=True)
    sim = np.einsum("bid,bjd->bij", sn, tn) / tau
    expected = -np.log(_softmax(sim)[:, np.arange(8), np.arange(8)]).mean()  # float32 inside the loss
    assert float(morphology_infonce(torch.tensor(s), torch.tensor(t), tau)) == pytest.approx(expected, rel=1e-5)
    matched = float(morphology_infonce(torch.tensor(t), torch.tensor(t), tau))
    shuffled = float(morphology_infonce(torch.tensor(t[:, ::-1].copy()), torch.tensor(t), tau))
    assert matched < shuffled
    assert matched < expected


def test_rhythm_loss_is_scale_invariant_and_zero_for_equal_geometry(rng):
    s = torch.tensor(rng.normal(size=(4, 8, 32)))
    t = torch.tensor(rng.normal(size=(4, 8, 64)))
    base = float(rhythm_loss(s, t))
    assert float(rhythm_loss(7.5 * s, t)) == pytest.approx(base, rel=1e-6)
    assert float(rhythm_loss(s, 0.01 * t)) == pytest.approx(base, rel=1e-6)
    # Same pairwise geometry in a wider space (orthogonal embedding): no rhythm loss.
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    wide = torch.tensor(np.concatenate([s.numpy(), np.zeros((4, 8, 32))], -1) @ q)
    assert float(rhythm_loss(s, 3.0 * wide)) == pytest.approx(0.0, abs=1e-6)
    assert base > 1e-3


def test_distance_matrix_normalised_by_mean_nonzero_distance(rng):
    p = rng.normal(size=(1, 5, 3))
    d = np.linalg.norm(p[:, :, None] - p[:, None], axis=-1)
    expected = d / d[0][~np.eye(5, dtype=bool)].mean()
    np.testing.assert_allclose(distance_matrix(torch.tensor(p)).numpy(), expected, rtol=1e-6)


def test_normalised_mse_ignores_teacher_scale(rng):
    s = torch.tensor(rng.normal(size=(4, 8, 10)))
    t = torch.tensor(rng.normal(size=(4, 8, 10)))
    assert float(normalised_mse(5 * s, 5 * t)) == pytest.approx(float(normalised_mse(s, t)), rel=1e-6)


def test_feature_and_ppg_distill_terms_run_and_have_gradients():
    from edgekd.model import ResNet1D

    student, teacher = ResNet1D(1), ResNet1D(4)
    x = torch.randn(4, 1, 200)
    params = resolve_params({}, epochs=10)
    loss = DistillLoss({"feature": 1.0, "ppg-distill": 0.5}, params, WIDTHS_1, 4)
    stage = teacher_stage_for(4, None, 8)
    assert loss.teacher_stage == stage == 3  # deepest 4-block stage with >= 8 steps (length 50)
    with torch.no_grad():
        tz, tf, tp = teacher.forward_features(x)
    total, parts = loss(StudentOut(*student.forward_features(x)), TeacherBatch(tz, tf[stage], tp),
                        torch.randint(0, 180, (4,)), 0)
    total.backward()
    assert set(parts) == {"ce", "feature", "ppg-distill"}
    assert all(p.grad is not None for p in loss.parameters())
    assert teacher_stage_for(12, None, 8) == 8  # 12 blocks: block 8, 13 steps


def test_hard_replaces_labels_with_teacher_argmax():
    loss = DistillLoss({"hard": 1.0}, resolve_params({}, 10), WIDTHS_1, 2)
    s, t = torch.randn(5, 180), torch.randn(5, 180)
    total, parts = loss(StudentOut(s, [], torch.zeros(5, 32)), TeacherBatch(t), torch.zeros(5, dtype=torch.long), 0)
    assert "ce" not in parts
    assert float(total) == pytest.approx(float(torch.nn.functional.cross_entropy(s, t.argmax(-1))), rel=1e-6)


def test_bad_strategies_and_parameters_are_rejected():
    params = resolve_params({}, 10)
    with pytest.raises(EdgekdError, match="unknown strategy 'fitnet'"):
        DistillLoss({"fitnet": 1.0}, params, WIDTHS_1, 2)
    with pytest.raises(EdgekdError, match="needs a teacher"):
        DistillLoss({"dkd": 1.0}, params, WIDTHS_1, None)
    with pytest.raises(EdgekdError, match="unknown strategy parameter"):
        resolve_params({"temperature": 3}, 10)
    assert not DistillLoss({"scratch": 1.0}, params, WIDTHS_1, None).needs_teacher
    # a parameter no selected strategy reads is refused, not ignored
    with pytest.raises(EdgekdError, match="tau are not read by dkd"):
        resolve_params({"tau": 0.2}, 10, ["dkd"])
    with pytest.raises(EdgekdError, match="T are not read by scratch"):
        resolve_params({"T": 2.0}, 10, ["scratch"])
    assert resolve_params({"tau": 0.2, "beta": 4.0}, 10, ["dkd", "ppg-distill"])["tau"] == 0.2


def test_every_registered_strategy_builds_and_gives_a_finite_loss(logits):
    from edgekd.losses import TERMS
    from edgekd.model import block_specs, lengths

    s_logits, t_logits, y = (torch.as_tensor(a) for a in logits)
    s_logits, t_logits = s_logits.float(), t_logits.float()
    params = resolve_params({}, 10)
    for name in TERMS:
        loss = DistillLoss({name: 1.0}, params, WIDTHS_1, 2)
        n = s_logits.shape[0]
        feats = [torch.randn(n, spec.out_ch, length) for spec, length in zip(block_specs(1), lengths(1)[1:])]
        stage = (torch.randn(n, block_specs(2)[loss.teacher_stage].out_ch, lengths(2)[1 + loss.teacher_stage])
                 if loss.teacher_stage is not None else None)
        total, parts = loss(StudentOut(s_logits, feats, torch.randn(n, block_specs(1)[-1].out_ch)),
                            TeacherBatch(t_logits, stage, torch.randn(n, block_specs(2)[-1].out_ch)), y, 0)
        assert torch.isfinite(total) and name in parts, name


def test_gaussian_label_smoothing_matches_its_definition(logits):
    s, _, y = logits
    sigma = 3.0
    k = np.arange(180)
    q = np.exp(-0.5 * ((k[None, :] - y[:, None]) / sigma) ** 2)
    q /= q.sum(-1, keepdims=True)
    expected = -(q * np.log(_softmax(s))).sum(-1).mean()
    loss = DistillLoss({"scratch": 1.0}, resolve_params({}, 10), WIDTHS_1, None, label_sigma=sigma)
    total, parts = loss(StudentOut(torch.tensor(s, dtype=torch.float32), [], torch.zeros(6, 32)), None,
                        torch.tensor(y), 0)
    assert float(total) == pytest.approx(expected, rel=1e-5)
    # A prediction one BPM off costs less than one 20 BPM off; with one-hot labels both cost the same.
    near, far = torch.full((1, 180), -10.0), torch.full((1, 180), -10.0)
    near[0, 101], far[0, 120] = 10.0, 10.0
    target = torch.tensor([100])
    out = lambda z: StudentOut(z, [], torch.zeros(1, 32))  # noqa: E731
    assert float(loss(out(near), None, target, 0)[0]) < float(loss(out(far), None, target, 0)[0])
    hard = DistillLoss({"scratch": 1.0}, resolve_params({}, 10), WIDTHS_1, None)
    assert float(hard(out(near), None, target, 0)[0]) == pytest.approx(float(hard(out(far), None, target, 0)[0]))
    with pytest.raises(EdgekdError, match="label_sigma"):
        DistillLoss({"scratch": 1.0}, resolve_params({}, 10), WIDTHS_1, None, label_sigma=-1)


def test_each_strategy_declares_its_parameters_and_a_shared_name_means_one_thing(monkeypatch):
    """Every term's parameters are its own dataclass; the flat table configs store is their union, and a name two
    terms share (T) must have one default and range, or the registry refuses to load."""
    from dataclasses import dataclass, fields

    from edgekd import losses

    assert {f.name for f in fields(losses.DKD.Params)} == {"T", "alpha", "beta", "warmup"}
    assert losses.params_read(["soft"]) == {"T"} and losses.params_read(["hard", "scratch"]) == set()
    p = losses.term_params(losses.DKD, resolve_params({"beta": 2.0}, 100))
    assert isinstance(p, losses.DKD.Params) and (p.T, p.beta) == (4.0, 2.0)

    @dataclass(frozen=True)
    class HotParams:
        T: float = losses.param(2.0, losses.Range(0.0))  # T already means 4 by default elsewhere

    class Hot(losses.Term):
        Params = HotParams

    monkeypatch.setitem(losses.TERMS, "hot", Hot)
    with pytest.raises(AssertionError, match="T is declared two ways"):
        losses._flat_table()
