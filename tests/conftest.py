"""Shared fixtures. Real data lives in ../shared/data: tests skip without it, but fail under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def require_shared(sub: str) -> Path:
    """Path of a ../shared/data folder; skip (or fail under CI) when it is absent."""
    path = SHARED_DATA / sub
    if not path.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{path} is missing; CI must have ../shared/data beside the clone")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def ieee_root() -> Path:
    return require_shared("ieee_spc2015")


@pytest.fixture(scope="session")
def bidmc_root() -> Path:
    return require_shared("bidmc")


@pytest.fixture(scope="session")
def small_synth():
    """A small deterministic synthetic WindowSet (4 subjects x 2 min, PPG + ACC) for fast tests."""
    from edgekd.data.synthetic import generate

    return generate(subjects=4, minutes=2.0, seed=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
