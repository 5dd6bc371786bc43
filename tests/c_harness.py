"""Compiling the firmware C of export/tracker with a test main (the C-vs-NumPy agreement tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TRACKER_DIR = Path(__file__).resolve().parent.parent / "export" / "tracker"


def compile_tracker_harness(folder: Path, harness: str, sources: tuple[str, ...],
                            fp_flags: tuple[str, ...] = ("-ffp-contract=off",)) -> Path:
    """Compile a test main against export/tracker sources; the executable's path.

    -std=c99 and no FP contraction: float rounding follows the source, as in the NumPy mirrors (the sources
    also turn contraction off themselves; ``fp_flags`` can ask for it to check that)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc/gcc) on PATH: the firmware C cannot be checked")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.c").write_text(harness)
    exe = folder / "harness"
    subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", *fp_flags, f"-I{TRACKER_DIR}",
                    str(folder / "main.c"), *(str(TRACKER_DIR / f) for f in sources), "-lm", "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    return exe
