"""The paper's Table 3: inference time over a fixed set of windows and peak memory, for every model size.

Models are randomly initialised (seeded): inference time and memory do not depend on the weights' values.
Each size runs the same seeded windows [N, 1, 200] in batches, on two runtimes (edgekd.runtimes names):

* ``onnx`` (always): ONNX Runtime, FP32 graph exported by ``export.onnx_export`` (as ``edgekd export`` does), fixed
  thread count, run in a fresh child process per size (``ort_worker``). Peak memory = that process's peak resident set
  (VmHWM) minus its resident set just before the session was created: weights, ORT's arena and the
  activations. Not the paper's GPU allocator figure, but it ranks sizes the same way. Linux only (/proc).
* ``cuda`` (when torch sees a GPU): PyTorch FP32, one batch moved to the GPU at a time (as the paper's
  DataLoader loop does), ``torch.cuda.synchronize`` before the clock stops; peak memory =
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (weights + batch + activations).

Time is the wall time of one pass over all windows after one warm-up batch; ``passes`` > 1 reports the median.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgekd.errors import EdgekdError
from edgekd.geometry import WINDOW
from edgekd.model import ResNet1D
from export.onnx_export import export_onnx

ALL_BLOCKS = tuple(range(1, 13))
_REPO = Path(__file__).resolve().parent.parent  # the child imports firmware_bench from here
PAPER_WINDOWS = 13_000  # the paper's Table 3 set size


def windows(n: int, seed: int = 0) -> np.ndarray:
    if n < 1:
        raise EdgekdError(f"--windows must be >= 1, got {n}")
    return np.random.default_rng(seed).standard_normal((n, 1, WINDOW)).astype(np.float32)


def _model(blocks: int, seed: int = 0) -> ResNet1D:
    torch.manual_seed(seed)
    return ResNet1D(blocks).eval()


def _batches(x: np.ndarray, batch: int) -> list[np.ndarray]:
    return [x[i:i + batch] for i in range(0, len(x), batch)]


def run_onnx_cpu(blocks: int, windows_file: Path, n_windows: int, batch: int, threads: int,
                 passes: int = 1) -> dict[str, Any]:
    """One size on ORT CPU, in a fresh child process (see ``ort_worker``) so its peak memory is its own."""
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / f"resnet1d_{blocks}.onnx"
        export_onnx(_model(blocks), model)  # the exporter `edgekd export` uses, dynamic batch axis
        cmd = [sys.executable, "-m", "firmware_bench.ort_worker", str(model), str(windows_file), str(batch),
               str(threads), str(passes)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=_REPO, check=False)
    if proc.returncode != 0:
        raise EdgekdError(f"ONNX Runtime worker failed for {blocks} blocks: {proc.stderr.strip()[-400:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"runtime": "onnx", "blocks": blocks, "windows": n_windows, "batch": batch, "threads": threads,
            "time_s": result["time_s"], "peak_memory_bytes": result["peak_memory_bytes"],
            "memory_kind": "peak RSS growth of a fresh ORT process (VmHWM - VmRSS before the session)"}


def run_cuda(blocks: int, x: np.ndarray, batch: int, passes: int = 1) -> dict[str, Any]:
    if not torch.cuda.is_available():
        raise EdgekdError("Table 3 on CUDA asked for but torch sees no GPU")
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = _model(blocks).cuda()
    chunks = [torch.from_numpy(c) for c in _batches(x, batch)]
    times = []
    with torch.inference_mode():
        model(chunks[0].cuda())  # warm-up: cuDNN picks its kernels on the first call
        torch.cuda.synchronize()
        for _ in range(passes):
            t0 = time.perf_counter()
            for c in chunks:
                model(c.cuda(non_blocking=False))
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated()
    return {"runtime": "cuda", "blocks": blocks, "windows": len(x), "batch": batch,
            "device": torch.cuda.get_device_name(0), "time_s": statistics.median(times),
            "peak_memory_bytes": int(peak), "memory_kind": "torch.cuda.max_memory_allocated"}


def table3(blocks: Iterable[int] = ALL_BLOCKS, n_windows: int = PAPER_WINDOWS, batch: int = 128,
           threads: int = 1, cuda: bool | None = None, passes: int = 1,
           progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows of Table 3 for each size: ONNX Runtime CPU always, CUDA when present (``cuda=None``: auto)."""
    blocks = list(blocks)
    bad = [b for b in blocks if b not in ALL_BLOCKS]
    if bad:
        raise EdgekdError(f"--blocks must be in 1..12, got {bad}")
    if batch < 1 or threads < 1 or passes < 1:
        raise EdgekdError("--batch, --threads and --passes must be >= 1")
    use_cuda = torch.cuda.is_available() if cuda is None else cuda
    x = windows(n_windows)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        windows_file = Path(tmp) / "windows.npy"
        np.save(windows_file, x)
        for b in blocks:
            if progress:
                progress(f"{b} blocks")
            rows.append(run_onnx_cpu(b, windows_file, n_windows, batch, threads, passes))
            if use_cuda:
                rows.append(run_cuda(b, x, batch, passes))
    return rows
