"""On-device personalisation (edgekd.personalize): only the last 1-2 layers change, and they fit the user."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekd.bpm import bpm_to_class, decode_argmax
from edgekd.errors import EdgekdError
from edgekd.model import ResNet1D
from edgekd.personalize import calibration_split, personalize, trainable_modules


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: on a shared machine a second intra-op thread only adds contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _pretrained(ws, subjects) -> ResNet1D:
    """A 1-block PPG model trained briefly on ``subjects`` (a stand-in for a shipped population model)."""
    torch.manual_seed(0)
    model = ResNet1D(1, 1)
    idx = np.flatnonzero(np.isin(ws.subject, subjects))
    x, y = torch.from_numpy(ws.x[idx, :1]), torch.as_tensor(bpm_to_class(ws.hr[idx]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(8):
        for b in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[b]), y[b]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def setup(small_synth, one_thread):
    subjects = small_synth.subjects()
    model = _pretrained(small_synth, subjects[:-1])
    user = small_synth.subset(np.flatnonzero(small_synth.subject == subjects[-1]))
    calib, rest = calibration_split(user, minutes=1.0)
    return model, user.subset(calib), user.subset(rest)


def _mae(model: ResNet1D, ws) -> float:
    with torch.no_grad():
        return float(np.abs(decode_argmax(model.eval()(torch.from_numpy(ws.x[:, :1]))).numpy() - ws.hr).mean())


def _ce(model: ResNet1D, ws) -> float:
    with torch.no_grad():
        return float(F.cross_entropy(model.eval()(torch.from_numpy(ws.x[:, :1])),
                                     torch.as_tensor(bpm_to_class(ws.hr))))


@pytest.mark.parametrize("layers", [1, 2])
def test_only_last_layers_change_and_fit_the_user(setup, layers):
    model, calib, rest = setup
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tuned = personalize(model, calib, layers=layers, epochs=20, lr=3e-3)
    # The caller's model is untouched.
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    trainable = {id(p) for m in trainable_modules(tuned, layers) for p in m.parameters()}
    names = {n for n, p in tuned.named_parameters() if id(p) in trainable}
    after = tuned.state_dict()
    for k, v in before.items():
        if k in names:
            assert not torch.equal(after[k], v), f"{k} should have been fine-tuned"
        else:  # frozen weights and every batch-norm running statistic stay as shipped
            assert torch.equal(after[k], v), f"{k} should be frozen"
    assert any(n.startswith("layers.") for n in names) == (layers == 2)
    # Fitting the user's calibration data, and (on synthetic data) better on the rest of the recording.
    assert _ce(tuned, calib) < _ce(model, calib)
    assert _mae(tuned, rest) < _mae(model, rest)


def test_calibration_split_leaves_a_gap(small_synth):
    rec = small_synth.subset(np.flatnonzero(small_synth.recording == small_synth.recording[0]))
    calib, rest = calibration_split(rec, minutes=1.0)
    assert len(calib) == 30  # 60 s / 2 s
    assert rest[0] - calib[-1] == 5  # 4 windows overlapping the calibration span are skipped
    with pytest.raises(EdgekdError, match="calibration"):
        calibration_split(rec, minutes=10.0)


def test_bad_arguments(setup):
    model, calib, _ = setup
    with pytest.raises(EdgekdError, match="layers must be 1 or 2"):
        personalize(model, calib, layers=3)
    with pytest.raises(EdgekdError, match="no windows"):
        personalize(model, calib.subset(np.array([], dtype=int)))
