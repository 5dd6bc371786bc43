"""Leave-one-dataset-out over IEEE SPC 2015, wrist-exercise and BIDMC (read from ../shared/data), every decoder
choice nested: `edgekd lodo` (edgekd/lodo.py) on the three sets as their loaders read them.

    .venv/bin/python tests/benchmarks/lodo.py --out runs/lodo [--blocks 1 2 4] [--seeds 0 1 2] [--strategies scratch dkd]
    .venv/bin/python tests/benchmarks/lodo.py --family spectral --blocks 4 --widths 7 --synthetic 60 \\
        --seeds 0 1 2 --int8 4 --out runs/lodo-spec-4x7 --table models/results/lodo-spectral-4x7.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekd.cli.lodo import add_study_args, study
from edgekd.data import load_dataset
from edgekd.errors import EdgekdError

SETS = {"ieee-spc2015": "ieee_spc2015", "wrist-exercise": "wrist_exercise", "bidmc": "bidmc"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", default="../shared/data", help="folder with ieee_spc2015, wrist_exercise, bidmc")
    p.add_argument("--out", type=Path, default=Path("runs/lodo"), help="runs and results go here")
    add_study_args(p)
    args = p.parse_args()
    try:
        sets = {name: load_dataset(name, Path(args.shared) / folder) for name, folder in SETS.items()}
        return study(sets, args, [".venv/bin/python", "tests/benchmarks/lodo.py"])
    except EdgekdError as exc:
        print(f"lodo: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
