"""Benchmark layer: what an exported student costs to run, measured where we can and estimated where we cannot.

It reads the files of an artifact folder (``models/<name>/``, written by ``edgekd export``) and never
imports ``export``: runtimes are PyTorch (CPU, CUDA), ONNX Runtime (FP32, INT8), LiteRT INT8 and TFLite
Micro INT8 on the host; static costs are flash, RAM, params and MACs; MCU latency/energy are estimated
from MACs with the cycles-per-MAC table in ``edgekd/mcu_targets.toml``. ``bench.run_bench`` ties them
together and writes one JSON record per runtime (``records``).
"""
