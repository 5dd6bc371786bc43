"""PyTorch runtimes: CPU, and CUDA when a GPU is present (allocator peak memory, device name).

On CUDA the clock stops only after ``torch.cuda.synchronize()`` (kernels are asynchronous) and peak memory
is ``max_memory_allocated`` after ``reset_peak_memory_stats``: tensors the caching allocator handed out,
weights included, as the paper's Table 3 "peak GPU memory" reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from edgekd.errors import EdgekdError
from firmware_bench.timing import time_calls


def cuda_available() -> bool:
    return torch.cuda.is_available()


def device_info(device: str) -> dict[str, Any]:
    """What ran it: the GPU's name and memory on CUDA; the thread count on CPU."""
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        return {"kind": "cuda", "name": props.name, "total_memory_bytes": int(props.total_memory),
                "cuda": torch.version.cuda}
    return {"kind": "cpu", "threads": torch.get_num_threads()}


def memory_probe(device: str) -> tuple[Callable[[], None], Callable[[], int | None], Callable[[], None] | None]:
    """(reset peak, read peak bytes, synchronise) for the device; CPU has no allocator peak (None)."""
    if device == "cuda":
        return torch.cuda.reset_peak_memory_stats, torch.cuda.max_memory_allocated, torch.cuda.synchronize
    if device != "cpu":
        raise EdgekdError(f"unknown torch device '{device}' (cpu or cuda)")
    return (lambda: None), (lambda: None), None


def bench(model: torch.nn.Module, device: str, repeat: int, large_batch: int,
          in_shape: tuple[int, int]) -> dict[str, Any]:
    """Latency at batch 1 and ``large_batch`` (inference mode, FP32), throughput, and peak memory on CUDA."""
    if device == "cuda" and not cuda_available():
        raise EdgekdError("runtime 'cuda' asked for but torch sees no CUDA device")
    reset, peak, sync = memory_probe(device)
    model = model.to(device).eval()
    figures: dict[str, Any] = {}
    gen = torch.Generator().manual_seed(0)
    for b in (1, large_batch):
        x = torch.randn((b, *in_shape), generator=gen).to(device)
        reps = repeat if b == 1 else max(3, repeat // 10)
        reset()
        with torch.inference_mode():
            t = time_calls(lambda: model(x), reps, warmup=5, batch=b, sync=sync)
        figures[f"batch_{b}"] = {**t.as_dict(), "peak_memory_bytes": peak()}
    return figures
