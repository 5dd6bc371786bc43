"""`pip install` of the built wheel works outside the repository: the MCU table and the decoder C travel as
package data, so export -> bench -> firmware (host) -> gate run from an unrelated folder with only the installed
package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import torch

from edgekd.layout import TRACKER_FILES

REPO = Path(__file__).resolve().parent.parent
SHARED_TFLM = REPO.parent / "shared" / "tflm"


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r


def test_wheel_installs_and_runs_export_bench_gate_outside_the_repo(tmp_path: Path) -> None:
    from edgekd.atomic import write_json
    from edgekd.checkpoint import save_weights
    from edgekd.data.synthetic import generate
    from edgekd.model import ResNet1D

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    wheels = tmp_path / "wheels"
    # setuptools builds in the source folder (build/, *.egg-info): build from a copy, never in the checkout
    src = tmp_path / "src"
    for package in ("edgekd", "export", "firmware_bench"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    # --no-build-isolation: the build backend (setuptools) is already installed, no network needed
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(src)], tmp_path, env)
    wheel = next(wheels.glob("edgekd-*.whl"))

    # A fresh venv that reuses this environment's dependencies through a .pth line, but not its editable
    # edgekd: a plain path in a .pth does not run that folder's own .pth files (the editable finder).
    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(fresh)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(fresh), "platbase": str(fresh)}))
    (site / "_edgekd_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(fresh / "bin" / "python"), "install", "--no-deps",
          "--no-index", "-q", str(wheel)], tmp_path, env)
    edgekd = str(fresh / "bin" / "edgekd")

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(fresh / "bin" / "python"), "-c", "import edgekd, export; print(edgekd.__file__, export.__file__)"],
                 work, env).stdout
    assert str(REPO) not in where and str(site) in where, where

    torch.manual_seed(0)
    model = ResNet1D(1)
    save_weights(model, work / "run" / "model.safetensors")
    write_json(work / "run" / "config.json", {"model": model.config()})
    generate(subjects=2, minutes=1.0, seed=3).save(work / "windows.npz")
    _run([edgekd, "export", "run", "--out", "art", "--int8", "--calib", "windows.npz", "--eval", "windows.npz"],
         work, env)
    for f in TRACKER_FILES:
        assert (work / "art" / f).read_bytes() == (REPO / "export" / "tracker" / f).read_bytes()
    # The firmware templates are package data too: the host build runs from the wheel (TFLM objects cached).
    if SHARED_TFLM.is_dir():
        _run([edgekd, "firmware", "art", "--tflm", str(SHARED_TFLM), "--windows", "4", "--data", "windows.npz"],
             work, env)
    # bench's MCU estimates read the packaged table; the gate's latency limit needs it too
    _run([edgekd, "bench", "art", "--runtimes", "tflm", "--repeat", "3", "--batch", "4", "--mcu", "m4-120-xcubeai",
          "--out", "bench"], work, env)
    (work / "budget.toml").write_text('mcu = "m4-120-xcubeai"\n[limits]\nflatbuffer_kb = 500\nlatency_ms = 10000\n')
    gate = _run([edgekd, "gate", "budget.toml", "art"], work, env)
    assert "PASS" in gate.stdout, gate.stdout
