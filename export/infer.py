"""One entry point to run an exported artifact on windows with any runtime: what evaluation, parity tests
and benchmarks call, so every runtime is fed and read the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekd import arch
from edgekd.checkpoint import load_model, model_spec
from edgekd.errors import EdgekdError
from edgekd.layout import CARD, card_entry, read_card, verify_artifact
from edgekd.runtimes import RUNTIMES, SCORED, int8_io, litert_interpreter
from edgekd.tracking import dequantize, quantize


def predict_logits(artifact_dir: Path, runtime: str, x: np.ndarray) -> np.ndarray:
    """Float logits [N, 180] for windows x [N, C, 200] (float32, as in a WindowSet).

    The exported runtimes read the graph's input (edgekd.arch.to_graph_input: the window, or a spectral
    student's features computed by the NumPy reference of the firmware's C). INT8 runtimes ("litert", "tflm" =
    TFLM host interpreter) get it quantised with the model's input scale/zero point (channels-last, one window
    per invoke) and return dequantised outputs.
    """
    artifact_dir = Path(artifact_dir)
    if runtime not in SCORED:
        raise EdgekdError(f"unknown runtime '{runtime}'; known: {', '.join(SCORED)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if runtime == "torch":
        model = load_model(artifact_dir)
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    card = read_card(artifact_dir)
    file = RUNTIMES[runtime].file
    path = verify_artifact(artifact_dir, card, required=(file,))[file]
    x = arch.to_graph_input(model_spec(artifact_dir), x)
    try:
        if runtime in ("onnx", "onnx-int8"):
            from export.onnx_export import run_onnx

            return run_onnx(path, x)
        flatbuffer = path.read_bytes()
        q_out = run_int8(flatbuffer, runtime, x, _arena(artifact_dir) if runtime == "tflm" else 0)
        scale, zp = int8_io(flatbuffer)[1]
    except EdgekdError:
        raise
    except Exception as exc:  # noqa: BLE001 - runtimes raise their own types for a model they cannot run
        raise EdgekdError(f"{path}: {runtime} cannot run this model ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]})") from None
    return dequantize(q_out, scale, zp)


def run_int8(model: bytes, runtime: str, x: np.ndarray, arena_size: int = 0) -> np.ndarray:
    """Raw int8 outputs [N, 180] of the INT8 flatbuffer on LiteRT ("litert") or TFLM ("tflm") for the graph's
    input x [N, C, L] (channels-first; quantised and transposed here)."""
    (in_scale, in_zp), _ = int8_io(model)
    x_q = quantize(x.transpose(0, 2, 1), in_scale, in_zp)
    if runtime == "tflm":
        from edgekd.tflm_host import run_tflm

        return run_tflm(model, x_q, arena_size)
    interp = litert_interpreter(model)
    inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    rows = []
    for window in x_q:
        interp.set_tensor(inp, window[None])
        interp.invoke()
        rows.append(interp.get_tensor(out)[0].copy())
    return np.stack(rows)


def _arena(artifact_dir: Path) -> int:
    arena = card_entry(read_card(artifact_dir), "arena_bytes")
    try:
        return int(arena)
    except (ValueError, TypeError) as exc:
        raise EdgekdError(f"{artifact_dir / CARD}: cannot read the TFLM arena size ({exc})") from None
