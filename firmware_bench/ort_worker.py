"""Child process for Table 3 on ONNX Runtime CPU: a fresh process per model, so peak memory is its own.

Usage: python -m firmware_bench.ort_worker MODEL.onnx WINDOWS.npy BATCH THREADS PASSES  -> one JSON line.
Imports only numpy, onnxruntime and edgekd.runtimes (no torch), so the resident set before the session is small and the
peak (VmHWM) minus that baseline is what ORT needed: weights, its arena and the activations.
"""

from __future__ import annotations

import importlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from edgekd.runtimes import OnnxSession


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def main(model: str, windows: str, batch: int, threads: int, passes: int) -> dict[str, float | int]:
    x = np.load(windows)
    chunks = [x[i:i + batch] for i in range(0, len(x), batch)]
    importlib.import_module("onnxruntime")  # loaded before the baseline, so the library is not counted
    base = _status("VmRSS")
    sess = OnnxSession(model, threads).session
    name = sess.get_inputs()[0].name
    sess.run(None, {name: chunks[0]})  # warm-up: the first run plans ORT's memory
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for c in chunks:
            sess.run(None, {name: c})
        times.append(time.perf_counter() - t0)
    return {"time_s": statistics.median(times), "peak_memory_bytes": _status("VmHWM") - base,
            "baseline_rss_bytes": base}


if __name__ == "__main__":
    model_path, windows_path, b, t, p = sys.argv[1:6]
    print(json.dumps(main(model_path, windows_path, int(b), int(t), int(p))))
