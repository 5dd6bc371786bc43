"""`edgekd bench`: what an exported student costs to run (measured and estimated), and the paper's Table 3.

Imports firmware_bench lazily: `edgekd --help` and the training commands never load ONNX Runtime or TFLM.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgekd.cli.args import positive_int, table_file
from edgekd.cli.output import print_json, print_table
from edgekd.cli.report import check_table, publish_table
from edgekd.errors import EdgekdError
from edgekd.runtimes import RUNTIMES
from edgekd.study_report import table3_where

RUNTIME_HELP = ", ".join(RUNTIMES)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark an artifact (GPU, ONNX Runtime, LiteRT, TFLM; MCU estimates) or run Table 3",
        description="Measure latency and memory of an exported artifact (models/NAME from `edgekd export --int8`)\n"
                    "on each runtime, its static costs (flash, arena, RAM, params, MACs) and MCU latency/energy\n"
                    "estimates; one JSON record per runtime is written to --out.\n"
                    "With --table3, time every model size over a fixed window set (randomly initialised models)\n"
                    "like the paper's Table 3: ONNX Runtime CPU always, PyTorch CUDA when a GPU is present.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  edgekd bench models/student-2b\n"
               "  edgekd bench models/student-2b --runtimes onnx,tflm --mcu m4-64-cmsisnn m7-216-plumerai --json\n"
               "  edgekd bench --table3 --windows 13000 --threads 2 --mcu m4-64-cmsisnn m7-216-plumerai")
    p.add_argument("artifact", nargs="?", type=Path, help="artifact folder models/NAME (not with --table3)")
    p.add_argument("--runtimes", help=f"comma-separated subset of {RUNTIME_HELP} (default: every runtime the "
                                      "artifact has files for; cuda only with a GPU)")
    p.add_argument("--mcu", nargs="+", metavar="NAME",
                   help="MCU targets from edgekd/mcu_targets.toml for estimates (default: all; with --table3: "
                        "none unless named, then one row per size and target)")
    p.add_argument("--repeat", type=positive_int, default=200, help="timed calls per runtime at batch 1 (default 200; "
                                                           "the large batch uses a tenth)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads for torch/ONNX Runtime/LiteRT (default 1; "
                                                          "TFLM is single-threaded)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="large batch (default 256 for an artifact, 128 for --table3)")
    p.add_argument("--out", type=Path, help="folder for the JSON records (default ARTIFACT/bench/; "
                                            "for --table3 none unless given)")
    p.add_argument("--table3", action="store_true", help="reproduce the paper's Table 3 instead")
    p.add_argument("--blocks", type=int, nargs="+", metavar="N", help="--table3 sizes (default 1..12)")
    p.add_argument("--windows", type=positive_int, default=13_000, help="--table3 window count (default 13000, the paper's)")
    p.add_argument("--passes", type=positive_int, default=1, help="--table3 timed passes; the median is reported (default 1)")
    p.add_argument("--table", type=table_file, metavar="NAME.md",
                   help="with --table3: also write it as a study record NAME.json with its table NAME.md "
                        "(`edgekd report NAME.json` regenerates the table)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None)

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    return bar, step


def run(args: argparse.Namespace) -> int:
    if args.table and not args.table3:
        raise EdgekdError("--table writes the --table3 study; an artifact's records go to --out")
    if args.table3:
        if args.artifact is not None:
            raise EdgekdError("--table3 benchmarks random-init models of every size; do not name an artifact")
        return _table3(args)
    if args.artifact is None:
        raise EdgekdError("name an artifact folder (models/NAME) or use --table3")
    return _artifact(args)


def _artifact(args: argparse.Namespace) -> int:
    from firmware_bench import records
    from firmware_bench.bench import default_runtimes, run_bench
    from firmware_bench.artifact import load_artifact

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()] if args.runtimes else None
    n_steps = len(runtimes or default_runtimes(load_artifact(args.artifact))) + 1
    bar, step = _progress(n_steps, f"bench {args.artifact.name}")
    try:
        recs = run_bench(args.artifact, runtimes, args.mcu, args.repeat, args.threads, args.batch or 256, step)
    finally:
        bar.close()
    paths = records.write_records(recs, args.out or args.artifact / "bench")
    if args.json:
        print_json(recs)
        return 0
    print_tables(recs)
    print(f"\nrecords: {', '.join(str(p) for p in paths)}")
    return 0


def _ms(t: dict[str, Any] | None) -> float | None:
    return None if t is None else t["median_ms"]


def print_tables(recs: list[dict[str, Any]]) -> None:
    """The runtime table, the static costs and the MCU estimates of one artifact's records."""
    measured = [r for r in recs if r["runtime"] != "static"]
    rows = []
    for r in measured:
        f = r["figures"]
        large = next((v for k, v in f.items() if k.startswith("batch_") and k != "batch_1"), None)
        rows.append({"runtime": r["runtime"], "device": r["device"].get("name", "-"),
                     "threads": r["settings"]["threads"], "median_ms": _ms(f["batch_1"]),
                     "p90_ms": f["batch_1"]["p90_ms"], "large_batch": None if large is None else large["batch"],
                     "throughput": None if large is None else large["throughput_per_s"],
                     "peak_mb": None if large is None or large.get("peak_memory_bytes") is None
                     else large["peak_memory_bytes"] / 2**20})
    name = recs[0]["artifact"]["name"]
    if rows:
        print_table(rows, ["runtime", "threads", "median_ms", "p90_ms", "large_batch", "throughput", "peak_mb",
                           "device"],
                    ["runtime", "threads", "batch-1 median ms", "p90 ms", "large batch", "windows/s", "peak GPU MB",
                     "device"], title=f"{name}: measured latency (seeded random windows)")
    for r in measured:
        f = r["figures"]
        if r["runtime"] == "tflm" and "card_arena_bytes" in f:
            print(f"\nTFLM arena: measured {f['arena_bytes_measured']:,} B; card's {f['card_arena_bytes']:,} B "
                  f"allocates and runs; half ({f['half_arena_bytes']:,} B) "
                  f"{'refused' if f['half_arena_refused'] else 'NOT refused'}")
    static = next((r for r in recs if r["runtime"] == "static"), None)
    if static is None:
        return
    s = static["figures"]
    print()
    print_table([{"flatbuffer": s["flatbuffer_bytes"], "code_est": s.get("runtime_code_bytes_est"),
                  "flash_est": s["flash_bytes_est"], "arena": s["arena_bytes"], "io": s.get("io_bytes"),
                  "ram": s["ram_bytes"], "params": s["params"], "macs": s["macs"]}],
                headers=["flatbuffer B", "TFLM code B (est.)", "flash B (est.)", "arena B", "I/O B", "RAM B",
                         "params", "MACs/window"], title="static costs (INT8 TFLM)")
    if s.get("note"):
        print(s["note"])
    else:
        print(f"ops: {', '.join(s['ops'])}")
    if s["mcu"]:
        print()
        print_table(s["mcu"], ["target", "clock_mhz", "cycles_per_mac", "latency_ms", "latency_low_ms",
                               "latency_high_ms", "energy_mj", "stack"],
                    ["target", "MHz", "cycles/MAC", "latency ms", "low (/2)", "high (x2)", "energy mJ", "stack"],
                    title="MCU estimates (MACs x cycles/MAC / clock; MLPerf Tiny ResNet-8 table, +-2x)")
    e = s["ethos_u"]
    if "cycles_total" in e:
        print()
        print_table([e], ["accelerator", "clock_mhz", "sram_bytes", "flash_bytes", "npu_ops", "cpu_ops", "cycles_total",
                          "inference_ms"],
                    ["NPU", "MHz", "SRAM (B)", "flash (B)", "NPU ops", "CPU ops", "cycles", "ms"],
                    title=f"Ethos-U ({e['status']}; Vela {e['vela_version']}, {e['system_config']})")
    else:
        print(e["status"])


def _table3(args: argparse.Namespace) -> int:
    from edgekd.model import macs
    from firmware_bench import mcu, records
    from firmware_bench.table3 import ALL_BLOCKS, table3

    blocks = args.blocks or list(ALL_BLOCKS)
    targets = mcu.select(args.mcu) if args.mcu else []  # before the long run: a typo fails at once
    check_table(args, "table3")
    bar, step = _progress(len(blocks), "table3")
    try:
        rows = table3(blocks, args.windows, args.batch or 128, args.threads, passes=args.passes, progress=step)
    finally:
        bar.close()
    estimates = [{"blocks": b, **mcu.estimate(macs(b), t)} for b in blocks for t in targets]
    result = {"table3": rows, "mcu": estimates}
    if args.out:
        settings = {"windows": args.windows, "batch": args.batch or 128, "threads": args.threads,
                    "passes": args.passes, "models": "seeded random-init ResNet1D (timing does not depend on weights)"}
        rec = records.make_record({"name": "table3"}, "table3", records.host_device(), settings, result)
        records.write_records([rec], args.out)
    if args.table:
        publish_table(args, "table3", device=records.host_device(threads=args.threads), rows=rows, mcu=estimates)
    if args.json:
        print_json(result)
        return 0
    for runtime in dict.fromkeys(r["runtime"] for r in rows):
        sub = [{**r, "peak_mb": r["peak_memory_bytes"] / 2**20} for r in rows if r["runtime"] == runtime]
        first = sub[0]
        print_table(sub, ["blocks", "time_s", "peak_mb"], ["blocks", "inference s", "peak MB"],
                    title=f"Table 3 on {table3_where(first)}: {first['windows']:,} windows, batch {first['batch']} "
                          f"(peak = {first['memory_kind']})")
        print()
    if estimates:
        print_table(estimates, ["blocks", "target", "macs", "latency_ms", "latency_low_ms", "latency_high_ms",
                                "energy_mj"],
                    ["blocks", "target", "MACs/window", "latency ms", "low (/2)", "high (x2)", "energy mJ"],
                    title="MCU estimates per window (MACs x cycles/MAC / clock; +-2x)")
    return 0
