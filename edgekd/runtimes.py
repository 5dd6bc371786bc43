"""The runtimes an edgekd model runs on: one name each, and one adapter each that opens a model, runs it and
times it. `edgekd evaluate --runtime`, the card's accuracy keys, export's parity checks and `edgekd bench`'s
records all go through these, so a number can be traced from one to the other and every caller feeds, reads and
times a runtime the same way.

The runtimes are optional extras, so each is imported when a model is opened, not with this module. TFLM's host
interpreter and its arena are edgekd.tflm_host's; this module only runs it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd import tflm_host
from edgekd.errors import EdgekdError
from edgekd.layout import (MODEL_DATA_H, ONNX_FP32, ONNX_INT8, TFLITE_INT8, WEIGHTS, read_flatbuffer, reserved_arena,
                           verify_artifact)
from edgekd.model_card import read_card
from edgekd.timing import time_calls


@dataclass(frozen=True)
class Runtime:
    name: str
    file: str  # the artifact file it runs


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("torch", WEIGHTS),  # PyTorch on the CPU
    Runtime("cuda", WEIGHTS),  # PyTorch on a CUDA GPU (bench only)
    Runtime("onnx", ONNX_FP32),  # ONNX Runtime, FP32 graph
    Runtime("onnx-int8", ONNX_INT8),  # ONNX Runtime, static INT8 (QDQ) graph
    Runtime("litert", TFLITE_INT8),  # LiteRT (ai-edge-litert) on the INT8 flatbuffer
    Runtime("tflm", TFLITE_INT8),  # TFLite Micro host interpreter: the device's kernels
)}
# What `evaluate` and the card score (cuda gives the same logits as torch, so it is benchmarked, not scored).
SCORED = tuple(name for name in RUNTIMES if name != "cuda")
# The card's FP32 reference; edgekd.model_card.FIELDS spells it and "tflm" out (this module imports model_card).
FP32_REFERENCE = "torch"
LARGE_BATCH_REPEATS = 10  # a large batch is timed repeat // 10 times (at least 3): each call is ~batch times longer


class Session(ABC):
    """A model opened on one runtime: ``logits`` runs it, ``time`` measures it, ``device`` says what ran it."""

    # The exported runtimes read the graph's input (edgekd.arch.to_graph_input: the window, or a spectral student's
    # features); PyTorch reads the window and computes any front end itself.
    graph_input = True

    @abstractmethod
    def logits(self, x: np.ndarray) -> np.ndarray:
        """Float logits [N, 180] for inputs x [N, C, L] (channels first, float32)."""

    @abstractmethod
    def time(self, repeat: int, large_batch: int) -> dict[str, Any]:
        """Latency figures on seeded random inputs (timing does not depend on values): ``batch_1`` and, where the
        runtime takes a batch, ``batch_<large_batch>``; each a edgekd.timing.Timing dict."""

    def device(self) -> dict[str, Any]:
        """What ran it, beside the host's CPU: the thread count."""
        return {"threads": self.threads}

    threads = 1


class TorchSession(Session):
    """PyTorch FP32 on the CPU or a CUDA GPU. On CUDA the clock stops only after ``torch.cuda.synchronize()``
    (kernels are asynchronous) and peak memory is ``max_memory_allocated`` after ``reset_peak_memory_stats``:
    tensors the caching allocator handed out, weights included, as the paper's Table 3 "peak GPU memory" reports."""

    graph_input = False

    def __init__(self, model: Any, device: str = "cpu", threads: int | None = None) -> None:
        import torch

        if device not in ("cpu", "cuda"):
            raise EdgekdError(f"unknown torch device '{device}' (cpu or cuda)")
        if device == "cuda" and not torch.cuda.is_available():
            raise EdgekdError("runtime 'cuda' asked for but torch sees no CUDA device")
        if threads is not None and device == "cpu":
            torch.set_num_threads(threads)  # bench's --threads; evaluation leaves torch's own setting
        self.model, self.dev = model.to(device).eval(), device

    def logits(self, x: np.ndarray, batch: int = 1024) -> np.ndarray:
        """In FP32 on either device (training's validation, edgekd.evaluate.predict_logits, autocasts CUDA to
        bfloat16; the reference runtime does not)."""
        import torch

        x = np.ascontiguousarray(x, dtype=np.float32)
        with torch.inference_mode():
            out = [self.model(torch.from_numpy(x[i:i + batch]).to(self.dev)).cpu().numpy()
                   for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.model.n_classes), np.float32)

    def memory_probe(self) -> tuple[Any, Any, Any]:
        """(reset peak, read peak bytes, synchronise); the CPU has no allocator peak (None)."""
        import torch

        if self.dev == "cuda":
            return torch.cuda.reset_peak_memory_stats, torch.cuda.max_memory_allocated, torch.cuda.synchronize
        return (lambda: None), (lambda: None), None

    def time(self, repeat: int, large_batch: int) -> dict[str, Any]:
        import torch

        from edgekd.geometry import WINDOW

        reset, peak, sync = self.memory_probe()
        figures: dict[str, Any] = {}
        gen = torch.Generator().manual_seed(0)
        for b in (1, large_batch):
            x = torch.randn((b, int(self.model.in_channels), WINDOW), generator=gen).to(self.dev)
            reset()
            with torch.inference_mode():
                t = time_calls(lambda: self.model(x), _repeats(repeat, b), warmup=5, batch=b, sync=sync)
            figures[f"batch_{b}"] = {**t.as_dict(), "peak_memory_bytes": peak()}
        return figures

    def device(self) -> dict[str, Any]:
        import torch

        if self.dev == "cuda":
            props = torch.cuda.get_device_properties(0)
            return {"kind": "cuda", "name": props.name, "total_memory_bytes": int(props.total_memory),
                    "cuda": torch.version.cuda}
        return {"threads": torch.get_num_threads()}


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8}


class OnnxSession(Session):
    """ONNX Runtime on the CPU with a fixed thread count (1 by default: deterministic and polite on shared
    machines; ORT's own default uses every core and makes latencies incomparable). ``batch`` is the graph's
    fixed batch size, if it has one."""

    def __init__(self, model: str | Path | bytes, threads: int = 1, batch: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for unreadable models
            name = "ONNX model bytes" if isinstance(model, bytes) else str(model)
            raise EdgekdError(f"{name}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:300]})") from None
        self.threads, self.batch = threads, batch
        self.input = self.session.get_inputs()[0]

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        step = self.batch or max(len(x), 1)
        return np.concatenate([self.session.run(None, {self.input.name: x[i:i + step]})[0]
                               for i in range(0, max(len(x), 1), step)])

    def random_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """A random batch shaped like the graph's input; a fixed batch dimension must be 1 or ``batch``."""
        dtype = _ORT_DTYPES.get(self.input.type)
        if dtype is None:
            raise EdgekdError(f"ONNX input '{self.input.name}' has unsupported type {self.input.type}")
        dims = list(self.input.shape)
        if isinstance(dims[0], int) and dims[0] != batch:
            raise EdgekdError(f"ONNX input '{self.input.name}' has a fixed batch of {dims[0]}, cannot run batch "
                              f"{batch}")
        shape = [batch] + [int(d) for d in dims[1:]]
        if dtype is np.float32:
            return rng.standard_normal(shape).astype(np.float32)
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)

    def time(self, repeat: int, large_batch: int) -> dict[str, Any]:
        """Batch 1 and, when the batch axis is dynamic, ``large_batch``."""
        rng = np.random.default_rng(0)
        dynamic = not isinstance(self.input.shape[0], int)
        figures: dict[str, Any] = {}
        for b in [1, large_batch] if dynamic and large_batch > 1 else [1]:
            x = self.random_batch(b, rng)
            figures[f"batch_{b}"] = time_calls(lambda: self.session.run(None, {self.input.name: x}),
                                               _repeats(repeat, b), warmup=5, batch=b).as_dict()
        return figures


class Int8Session(Session):
    """A full-integer flatbuffer: inputs quantised with its input scale/zero point (channels last, one window per
    invoke, as firmware runs it), outputs dequantised with its output's."""

    def __init__(self, model: bytes) -> None:
        self.model = model
        (self.in_scale, self.in_zp), (self.out_scale, self.out_zp) = int8_io(model)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """int8 inputs [N, L, C] for x [N, C, L]."""
        from edgekd.tracking import quantize  # torch (through edgekd.bpm): see artifact_logits

        return quantize(np.asarray(x, dtype=np.float32).transpose(0, 2, 1), self.in_scale, self.in_zp)

    @abstractmethod
    def run_quantized(self, x_q: np.ndarray) -> np.ndarray:
        """Raw int8 outputs [N, 180] for int8 inputs [N, L, C]."""

    def int8_outputs(self, x: np.ndarray) -> np.ndarray:
        return self.run_quantized(self.quantize_input(x))

    def logits(self, x: np.ndarray) -> np.ndarray:
        from edgekd.tracking import dequantize

        return dequantize(self.int8_outputs(x), self.out_scale, self.out_zp)


class LiteRTSession(Int8Session):
    """LiteRT (``ai-edge-litert``, the successor of tflite-runtime) with its default delegate (XNNPACK)."""

    def __init__(self, model: bytes, threads: int = 1) -> None:
        super().__init__(model)
        self.threads = threads
        self.interp = litert_interpreter(model, threads)
        self.inp, self.out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]

    def run_quantized(self, x_q: np.ndarray) -> np.ndarray:
        rows = []
        for window in x_q:
            self.interp.set_tensor(self.inp["index"], window[None])
            self.interp.invoke()
            rows.append(self.interp.get_tensor(self.out["index"])[0].copy())
        return np.stack(rows)

    def time(self, repeat: int, large_batch: int) -> dict[str, Any]:
        """Batch 1 (the flatbuffer has a fixed batch of 1, as firmware runs it)."""
        x = _random_int8(self.inp["shape"], self.inp["dtype"])

        def call() -> None:
            self.interp.set_tensor(self.inp["index"], x)
            self.interp.invoke()

        return {"batch_1": time_calls(call, repeat, warmup=5, batch=1).as_dict(),
                "input_dtype": np.dtype(self.inp["dtype"]).name, "delegate": "LiteRT default (XNNPACK)"}


class TflmSession(Int8Session):
    """The TFLite Micro host interpreter (edgekd.tflm_host) in an arena of ``arena_bytes``: the device's kernels
    built for this CPU, single-threaded as on the MCU (its time is not MCU time)."""

    def __init__(self, model: bytes, arena_bytes: int) -> None:
        super().__init__(model)
        self.interp = tflm_host.interpreter(model, arena_bytes)

    def run_quantized(self, x_q: np.ndarray) -> np.ndarray:
        out = []
        for window in x_q:
            self.interp.set_input(window[None], 0)
            self.interp.invoke()
            out.append(self.interp.get_output(0)[0].copy())
        return np.stack(out)

    def time(self, repeat: int, large_batch: int) -> dict[str, Any]:
        x = tflm_host.random_input(self.interp, np.random.default_rng(0))

        def call() -> None:
            self.interp.set_input(x, 0)
            self.interp.invoke()

        return {"batch_1": time_calls(call, repeat, warmup=5, batch=1).as_dict()}


def _repeats(repeat: int, batch: int) -> int:
    return repeat if batch == 1 else max(3, repeat // LARGE_BATCH_REPEATS)


def _random_int8(shape: Any, dtype: Any) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(0).integers(info.min, info.max + 1, size=tuple(shape), dtype=dtype)


def open_artifact(folder: str | Path, runtime: str, threads: int | None = None) -> Session:
    """``runtime``'s adapter on an exported artifact, its file checked against the card first; TFLM gets the
    card's arena. ``threads``: None keeps each runtime's default (1 for ONNX Runtime and LiteRT, torch's own)."""
    from edgekd.checkpoint import load_model

    folder = Path(folder)
    if runtime not in RUNTIMES:
        raise EdgekdError(f"unknown runtime '{runtime}'; known: {', '.join(RUNTIMES)}")
    if runtime in ("torch", "cuda"):
        return TorchSession(load_model(folder), "cuda" if runtime == "cuda" else "cpu", threads)
    card = read_card(folder)
    file = RUNTIMES[runtime].file
    files = verify_artifact(folder, card.doc, required=(file,))
    path = files[file]
    if runtime in ("onnx", "onnx-int8"):
        return OnnxSession(path, threads or 1)
    model = read_flatbuffer(path)
    if runtime == "litert":
        return LiteRTSession(model, threads or 1)
    card.require("arena_bytes")
    reserved = reserved_arena(files[MODEL_DATA_H]) if MODEL_DATA_H in files else None
    if reserved is not None and reserved != card.arena_bytes:  # card.json is not hashed, model_data.h is
        raise EdgekdError(f"{card.path}: the card's arena ({card.arena_bytes} B) is not the {reserved} B "
                          f"{MODEL_DATA_H} reserves")
    return TflmSession(model, card.arena_bytes)


def artifact_logits(folder: str | Path, runtime: str, x: np.ndarray) -> np.ndarray:
    """Float logits [N, 180] of an artifact on one scored runtime for windows x [N, C, 200] (float32, as in a
    WindowSet); the exported runtimes get the graph's input computed as the firmware computes it."""
    from edgekd import arch  # torch: not imported with this module (Table 3's ONNX worker stays torch-free)
    from edgekd.checkpoint import model_spec

    if runtime not in SCORED:
        raise EdgekdError(f"unknown runtime '{runtime}'; known: {', '.join(SCORED)}")
    session = open_artifact(folder, runtime)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if session.graph_input:
        x = arch.to_graph_input(model_spec(folder), x)
    try:
        return session.logits(x)
    except EdgekdError:
        raise
    except Exception as exc:  # noqa: BLE001 - runtimes raise their own types for a model they cannot run
        raise EdgekdError(f"{folder}: {runtime} cannot run this model ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None


def litert_interpreter(model: bytes, threads: int = 1, delegates: bool = True) -> Any:
    """A LiteRT interpreter with its tensors allocated; ``delegates=True`` is LiteRT's default (XNNPACK takes
    over the ops it supports), False runs the builtin kernels and keeps the graph's own op list."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        it = Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise EdgekdError(f"LiteRT cannot load the flatbuffer ({' '.join(str(exc).split())[:300]})") from None
    return it


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    tensor_types: tuple[str, ...]  # dtypes of the op's input and output tensors


def flatbuffer_ops(model: bytes) -> list[OpInfo]:
    """Every op of a .tflite graph in execution order, with its tensors' dtypes (without delegates, which would
    replace ops by DELEGATE nodes). ``_get_ops_details`` is LiteRT's underscored op listing, stable across
    releases; it saves parsing the flatbuffer schema here."""
    interp = litert_interpreter(model, delegates=False)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = []
    for op in interp._get_ops_details():
        idx = [int(i) for i in list(op["inputs"]) + list(op["outputs"]) if int(i) >= 0]
        ops.append(OpInfo(int(op["index"]), str(op["op_name"]),
                          tuple(np.dtype(tensors[i]["dtype"]).name for i in idx if i in tensors)))
    return ops


def int8_io(model: bytes) -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)) of a full-integer flatbuffer."""
    interp = litert_interpreter(model, delegates=False)
    (i_s, i_z), (o_s, o_z) = (interp.get_input_details()[0]["quantization"],
                              interp.get_output_details()[0]["quantization"])
    return (float(i_s), int(i_z)), (float(o_s), int(o_z))
