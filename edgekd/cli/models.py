"""`edgekd models`: the size table of the ResNet family (Table 1 plus deployment sizes)."""

from __future__ import annotations

import argparse

from edgekd.cli.output import print_json, print_table
from edgekd.model import MAX_BLOCKS, PAPER_BLOCKS, size_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="print the ResNet1D size table (params, MACs, weight bytes)",
                       description="Blocks, WildPPG paper parameter count, deployed parameters, MACs per "
                                   "8 s window and FP32/INT8 weight bytes for the 1D-ResNet family.")
    p.add_argument("--blocks", type=int, nargs="+", choices=range(1, MAX_BLOCKS + 1), metavar="N",
                   help="block counts to list (default: the paper's 1 2 3 4 5 6 8 10 12)")
    p.add_argument("--in-channels", type=int, default=1, help="1 = PPG, 4 = PPG + 3-axis ACC (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = size_table(tuple(args.blocks or PAPER_BLOCKS), args.in_channels)
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["blocks", "paper_params", "deployed_params", "macs", "fp32_weight_bytes",
                           "int8_weight_bytes"],
                    ["blocks", "paper params", "deployed params", "MACs/window", "FP32 bytes", "INT8 bytes (est.)"])
    return 0
