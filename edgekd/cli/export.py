"""`edgekd export`: ONNX FP32 (+ with --int8: ONNX INT8, TFLite INT8 for TFLM, C arrays, ops.h) and a model card."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.cli.args import add_decoder_args, decoder_config, tracker_config
from edgekd.cli.output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a run/checkpoint to ONNX, INT8 TFLite Micro and firmware C files",
        description="Build a verified artifact folder: model.safetensors + config.json, model.onnx (checked "
                    "against PyTorch), and with --int8 model_int8.onnx (QDQ), model_int8.tflite (full-integer, "
                    "TFLM builtins only), model_data.cc/.h, ops.h (op resolver, arena size, quantisation "
                    "constants), plus card.json/card.md with sizes, arena and FP32/INT8 MAE on held-out "
                    "windows. Calibration = the run fold's training subjects, evaluation = its held-out "
                    "subjects, from --data (default: the synthetic corpus) unless --calib/--eval are given.")
    p.add_argument("source", type=Path, metavar="RUN_OR_CKPT", help="run or artifact folder, or its model.safetensors")
    p.add_argument("--out", type=Path, required=True, help="artifact folder to create, e.g. models/NAME")
    p.add_argument("--name", help="model name for the card and C symbols (default: the --out folder name)")
    p.add_argument("--int8", action="store_true", help="also build ONNX INT8, TFLite INT8 and firmware files")
    p.add_argument("--data", type=Path, metavar="FILE.npz",
                   help="the WindowSet the run was trained on (split with the run's fold; default: synthetic)")
    p.add_argument("--calib", type=Path, metavar="FILE.npz", help="calibration windows (all used, max 500)")
    p.add_argument("--eval", type=Path, metavar="FILE.npz", dest="evaluate", help="evaluation windows")
    p.add_argument("--fixed-batch", action="store_true", help="ONNX with batch size 1 instead of a dynamic batch")
    add_decoder_args(p)
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--json", action="store_true", help="print the model card as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgekd.checkpoint import shipped_decoder, shipped_tracker
    from export.artifact import export_artifact  # lazy: TensorFlow/ONNX load only for this command

    card = export_artifact(args.source, args.out, int8=args.int8, data=args.data, calib=args.calib,
                           evaluate=args.evaluate, name=args.name, force=args.force,
                           dynamic_batch=not args.fixed_batch, progress=not args.json,
                           fusion=decoder_config(args, shipped_decoder(args.source)),
                           tracker=tracker_config(args, shipped_tracker(args.source)))
    if args.json:
        print_json(card)
        return 0
    print_table([{"file": k, "bytes": v["bytes"], "sha256": v["sha256"][:12]} for k, v in card["files"].items()],
                title=f"{args.out}  ({card['export_seconds']:.1f} s)")
    acc = card["accuracy"]
    rows = [{"runtime": k, "argmax": v["mae_argmax"], "causal": v["mae_causal"], "fused": v["mae_fused"],
             "argmax_vs_fp32": acc["argmax_agreement_vs_fp32"].get(k)} for k, v in acc["mae_bpm"].items()]
    on = acc["measured_on"]
    print()
    print_table(rows, title=f"MAE in BPM on {on['windows']} held-out windows of {on['subjects']} subject(s) "
                            f"(fused = the shipped decoder)")
    if "tflm" in card:
        t = card["tflm"]
        print(f"\nTFLM arena {t['arena_bytes']:,} bytes (min {t['arena_min_bytes']:,}); flash "
              f"{card['files']['model_int8.tflite']['bytes']:,} bytes; LiteRT/TFLM identical int8 outputs "
              f"{100 * t['litert_tflm_identical_values']:.2f}%; ops: {', '.join(t['ops'])}")
    return 0
