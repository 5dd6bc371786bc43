"""`edgekd firmware`: build the artifact with real TFLM C++ for a target, run it, compare with Python."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.cli.args import positive_float, positive_int, table_file
from edgekd.cli.output import print_json, print_table
from edgekd.cli.report import check_table, publish_table
from edgekd.firmware_targets import TARGETS
from edgekd.tflm_ops import KERNEL_SETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("firmware", help="build the artifact into test firmware (host or Cortex-M on QEMU), run it, "
                                        "compare with Python, measure flash/RAM/arena/instructions",
                       description="Generates a test firmware (main; for Cortex-M also startup and linker script "
                                   "for the QEMU board: mps2-an386 M4, mps2-an505 M33, mps3-an547 M55), compiles the "
                                   "TFLM sources the artifact's kernel_sources.txt lists (cached per target and "
                                   "flags), links, runs windows through TFLM and the shipped decoder (hr_spectral.c "
                                   "+ hr_tracker.c with model_data.h's settings) and compares the int8 outputs with "
                                   "the Python TFLM interpreter and the heart rate with edgekd's decoder. Cortex-M "
                                   "runs bare-metal under qemu-system-arm with semihosting and -icount shift=0, "
                                   "which counts instructions per inference; a second link without stdio "
                                   "(newlib-nano) gives flash and RAM per component from the linker map. Writes "
                                   "ARTIFACT/bench/firmware-TARGET.json. Several artifacts, targets or kernel sets "
                                   "build every combination (CMSIS-NN only for Cortex-M); --table writes them as one "
                                   "study record with its table (`edgekd report`). Exit 0: identical; 1: outputs or "
                                   "heart rates differ; 2: could not build or run.")
    p.add_argument("artifacts", nargs="+", type=Path, metavar="ARTIFACT",
                   help="artifact folder(s) (models/<name>/, from `edgekd export --int8`)")
    p.add_argument("--target", nargs="+", choices=list(TARGETS), default=["host"], metavar="TARGET",
                   help=f"where to build and run: {', '.join(TARGETS)} (default host)")
    p.add_argument("--kernels", nargs="+", choices=KERNEL_SETS, metavar="KERNELS",
                   help=f"TFLM kernel set(s): {', '.join(KERNEL_SETS)} (default: cmsis-nn on Cortex-M, reference "
                        f"on the host)")
    p.add_argument("--tflm", type=Path, metavar="DIR",
                   help="TFLM source tree (create_tflm_tree.py output, or a folder with reference/ and cmsis-nn/ "
                        "trees; default $EDGEKD_TFLM, else ../shared/tflm)")
    p.add_argument("--windows", type=positive_int, default=64, help="windows to run (default 64)")
    p.add_argument("--data", type=Path, metavar="FILE.npz",
                   help="WindowSet the windows come from, recording by recording (default: the synthetic corpus)")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="compiled TFLM objects (default $EDGEKD_FIRMWARE_CACHE, else ~/.cache/edgekd/firmware)")
    p.add_argument("--clock-mhz", type=positive_float, help="clock for the latency estimate (default per target: M4 80, "
                                                   "M33 160, M55 160)")
    p.add_argument("--cpi", type=positive_float, default=1.0, help="cycles per instruction for the estimate (default 1.0)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep the generated sources, ELF and map in DIR (one artifact, target and kernel set)")
    p.add_argument("--out", type=Path, help="folder for the record (default ARTIFACT/bench/; one artifact)")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="also write every combination as a study record NAME.json and its table NAME.md, beside "
                        "the estimates edgekd made before measuring (`edgekd report NAME.json` regenerates it)")
    p.add_argument("--json", action="store_true", help="print the record(s) as JSON instead of tables")
    p.set_defaults(func=run)


def combinations(args: argparse.Namespace) -> list[tuple[Path, str, str | None]]:
    """(artifact, target, kernels) to build, in order; checked before the first build."""
    from edgekd.errors import EdgekdError
    from edgekd.firmware_targets import get_target

    combos = []
    artifacts = list(dict.fromkeys(args.artifacts))  # each combination once, however often it was typed
    for target in dict.fromkeys(args.target):
        default = get_target(target).default_kernels
        # the target's default set last: its record is the one left in ARTIFACT/bench/ (one per target)
        kernel_sets = [k for k in dict.fromkeys(args.kernels or [default]) if k != "cmsis-nn" or default == "cmsis-nn"]
        if not kernel_sets:
            raise EdgekdError(f"firmware: --kernels cmsis-nn needs a Cortex-M target; nothing to build on {target} "
                              f"(add --kernels reference, or leave {target} out)")
        for kernels in sorted(kernel_sets, key=lambda k: k == default):
            combos += [(art, target, kernels) for art in artifacts]
    if len(combos) > 1 and (args.keep or args.out):
        raise EdgekdError(f"firmware: --{'keep' if args.keep else 'out'} takes one artifact, target and kernel set; "
                          f"this builds {len(combos)}")
    return combos


def run(args: argparse.Namespace) -> int:
    from edgekd.layout import BENCH_DIR
    from firmware_bench import records
    from firmware_bench.firmware.run import firmware_check

    from tqdm import tqdm

    recs = []
    combos = combinations(args)
    check_table(args, "firmware")  # before minutes of building, not after
    bar = tqdm(combos, desc="firmware", unit="build", disable=None if len(combos) > 1 else True)  # None: a terminal
    for art, target, kernels in bar:
        bar.set_postfix_str(f"{art.name} {target} {kernels or 'default'}")
        rec = firmware_check(art, target, kernels, args.tflm, args.windows, args.data, args.cache, args.cpi,
                             args.clock_mhz, keep=args.keep)
        records.write_records([rec], args.out or art / BENCH_DIR)
        recs.append((art, rec))
    if args.table:
        _table(args, recs)
    oks = [_identical(rec) for _, rec in recs]
    if args.json:
        print_json(recs[0][1] if len(recs) == 1 else [rec for _, rec in recs])
        return 0 if all(oks) else 1
    if len(recs) > 1:
        print_table([{"artifact": str(art), "target": rec["settings"]["target"], "kernels": rec["settings"]["kernels"],
                      "windows": rec["figures"]["windows"], "int8 mismatches": rec["figures"]["int8_mismatches"],
                      "BPM mismatches": rec["figures"]["bpm_mismatches"],
                      "instructions / window": rec["figures"].get("instructions_per_window"),
                      "result": "IDENTICAL" if ok else "DIFFERS"} for (art, rec), ok in zip(recs, oks)],
                    title="firmware against the Python TFLM interpreter and edgekd's decoder")
        return 0 if all(oks) else 1
    rec, ok = recs[0][1], oks[0]
    f, s = rec["figures"], rec["settings"]
    rows = [{"figure": k, "value": v} for k, v in f.items() if not isinstance(v, dict)]
    if isinstance(f.get("latency_ms_estimate"), dict):
        e = f["latency_ms_estimate"]
        rows.append({"figure": "latency_ms_estimate", "value": f"{e['ms']:.2f} ms at {e['clock_mhz']:g} MHz, CPI "
                                                               f"{e['cpi']:g} (estimate)"})
    print_table(rows, ["figure", "value"], title=f"firmware {s['target']} ({s['kernels']} kernels)")
    if "flash_by_component" in f:
        comps = sorted(set(f["flash_by_component"]) | set(f["ram_by_component"]))
        print_table([{"component": c, "flash": f["flash_by_component"].get(c, 0), "ram": f["ram_by_component"].get(c, 0)}
                     for c in comps], ["component", "flash", "ram"], ["component", "flash (B)", "RAM (B)"],
                    title="linked size build (newlib-nano, no stdio)")
    print(f"firmware: {'IDENTICAL' if ok else 'DIFFERS'} to the Python TFLM interpreter and edgekd's decoder on "
          f"{f['windows']} windows")
    return 0 if ok else 1


def _identical(rec: dict) -> bool:
    f = rec["figures"]
    return f["input_mismatches"] == 0 and f["int8_mismatches"] == 0 and f["bpm_mismatches"] == 0


def _table(args: argparse.Namespace, recs: list) -> None:
    from firmware_bench.artifact import load_artifact
    from firmware_bench.firmware.summary import summary_row

    publish_table(args, "firmware", rows=[summary_row(load_artifact(art), rec) for art, rec in recs])
