"""Shared fixtures. Real data lives in ../shared/data: tests skip without it, but fail under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_TFLM = REPO.parent / "shared" / "tflm"

torch.set_num_threads(min(2, os.cpu_count() or 1))


def require_shared(sub: str, root: Path = SHARED_DATA) -> Path:
    """Path of a ../shared/data (or other ../shared) folder; skip (or fail under CI) when it is absent."""
    path = root / sub
    if not path.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{path} is missing; CI must have ../shared beside the clone")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def ieee_root() -> Path:
    return require_shared("ieee_spc2015")


@pytest.fixture(scope="session")
def bidmc_root() -> Path:
    return require_shared("bidmc")


@pytest.fixture(scope="session")
def wrist_root() -> Path:
    return require_shared("wrist_exercise")


@pytest.fixture(scope="session")
def shared_tflm() -> Path:
    """../shared/tflm: the pinned TFLM source trees (reference/, cmsis-nn/)."""
    return require_shared("", SHARED_TFLM)


@pytest.fixture(scope="session")
def small_synth():
    """A small deterministic synthetic WindowSet (4 subjects x 2 min, PPG + ACC) for fast tests."""
    from edgekd.data.synthetic import generate

    return generate(subjects=4, minutes=2.0, seed=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory) -> Path:
    """models/<name>/ from `export_artifact` (1 block, INT8), calibrated and scored on a small synthetic
    WindowSet; built once per session. Tests that change files copy it first."""
    from edgekd.atomic import write_json
    from edgekd.checkpoint import save_weights
    from edgekd.data.synthetic import generate
    from edgekd.model import ResNet1D
    from export.artifact import export_artifact

    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model = ResNet1D(1)
    run = root / "run"
    save_weights(model, run / "model.safetensors")
    write_json(run / "config.json", {"model": model.config()})
    windows = root / "windows.npz"
    generate(subjects=2, minutes=1.5, seed=3).save(windows)
    out = root / "models" / "tiny"
    export_artifact(run, out, int8=True, calib=windows, evaluate=windows, progress=False)
    return out


@pytest.fixture(scope="session")
def cortex_m_tier() -> None:
    """The Cortex-M firmware tier: Debian's arm-none-eabi toolchain and qemu-system-arm. Skips without them,
    except where EDGEKD_REQUIRE_CORTEX_M is set (.ci/run installs them and sets it): there it must run."""
    import shutil

    if all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")):
        return
    if os.environ.get("EDGEKD_REQUIRE_CORTEX_M"):
        pytest.fail("EDGEKD_REQUIRE_CORTEX_M is set but arm-none-eabi-gcc/g++ or qemu-system-arm is missing")
    pytest.skip("Cortex-M tier: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                "libstdc++-arm-none-eabi-newlib qemu-system-arm")
