"""`edgekd gate`: check artifacts against a budget TOML; exit 0 pass, 1 over a limit, 2 cannot evaluate."""

from __future__ import annotations

import argparse

from edgekd.atomic import write_text
from edgekd.budget import DEFAULT_MCU_TARGETS, load_budget
from edgekd.cli.output import print_json, print_table
from edgekd.gate import exit_code, gate, junit_xml, markdown, to_rows


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gate", help="check artifacts against a size/latency/accuracy budget (CI gate)",
                       description="Checks each artifact against the limits in BUDGET (INT8 flatbuffer KB, arena KB, "
                                   "estimated latency on the budget's MCU, FP32 / INT8 MAE of the shipped decoder, "
                                   "INT8 MAE drop; with a [firmware] table, the linked image's flash KB and the "
                                   "firmware's measured arena and instructions). "
                                   "Exit 0: all pass; 1: a limit failed; 2: the gate could not evaluate "
                                   "(missing/corrupt artifact, malformed budget, unknown key or MCU).")
    p.add_argument("budget", metavar="BUDGET.toml", help="budget file (see models/budgets/)")
    p.add_argument("artifacts", metavar="ARTIFACT", nargs="+", help="artifact folder (models/<name>/) or its card.json")
    p.add_argument("--mcu-targets", default=str(DEFAULT_MCU_TARGETS), metavar="FILE",
                   help="MCU table for the latency estimate (default: edgekd/mcu_targets.toml)")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one testcase per artifact and limit)")
    p.add_argument("--markdown", metavar="FILE", help="also write a Markdown summary")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    budget = load_budget(args.budget)
    checks = gate(budget, args.artifacts, args.mcu_targets)
    code = exit_code(checks)
    if args.junit:
        write_text(args.junit, junit_xml(budget, checks))
    if args.markdown:
        write_text(args.markdown, markdown(budget, checks))
    if args.json:
        print_json({"budget": budget.name, "exit_code": code, "checks": to_rows(checks)})
    else:
        print_table(to_rows(checks), ["artifact", "label", "value", "threshold", "verdict", "detail"],
                    ["artifact", "limit", "value", "max", "verdict", "note"], title=f"budget: {budget.name}")
        print({0: "gate: PASS", 1: "gate: FAIL (a limit was exceeded)",
               2: "gate: ERROR (could not evaluate; failing closed)"}[code])
    return code
