"""Entry point: builds the parser from each command module's ``register`` and maps errors to exit codes.

Exit codes: 0 success; 1 a check failed (e.g. `gate`, parity); 2 anything that stopped the command (bad
input or usage, a missing or corrupt file, a full disk, an unexpected error): one line on stderr, never a
traceback (set EDGEKD_DEBUG=1 to see one); 130 interrupted; 141 the reader of stdout went away. A crash
must never exit 1: CI reads 1 as "a gate limit failed".
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from edgekd import __version__
from edgekd.atomic import NO_SPACE
from edgekd.errors import EdgekdError

# Each module defines register(subparsers); handlers import their heavy dependencies lazily.
COMMAND_MODULES = (
    "edgekd.cli.data",
    "edgekd.cli.models",
    "edgekd.cli.export",
    "edgekd.cli.bench",
    "edgekd.cli.firmware",
    "edgekd.cli.train",
    "edgekd.cli.baseline",
    "edgekd.cli.gate",
    "edgekd.cli.sweep",
    "edgekd.cli.scaling",
    "edgekd.cli.rank",
    "edgekd.cli.lodo",
    "edgekd.cli.report",
)


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (exit 2): CI logs show the problem, --help shows the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="edgekd",
        description="Distil PPG heart-rate ResNets into wearable-sized students; export, benchmark, rank, gate.",
    )
    parser.add_argument("--version", action="version", version=f"edgekd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(argv)
        args.argv = argv  # what was typed: a study record's command (`rank --table`)
        return int(args.func(args) or 0)
    except EdgekdError as exc:
        print(f"edgekd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgekd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`edgekd ... | head`): stop quietly like other Unix tools; point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # A file the command reads or writes that no EdgekdError check named (third-party writers).
        name = exc.filename or "a file"
        problem = "disk full" if exc.errno in NO_SPACE else (exc.strerror or str(exc))
        print(f"edgekd: error: {name}: {problem}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - the boundary: a bug must not print a traceback or exit 1
        if os.environ.get("EDGEKD_DEBUG"):
            raise SystemExit(_traceback_exit()) from None
        detail = " ".join(str(exc).split())[:300]
        print(f"edgekd: error: internal error ({type(exc).__name__}: {detail}); please report it "
              f"(EDGEKD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


def _traceback_exit() -> int:
    import traceback

    traceback.print_exc()
    return 2


if __name__ == "__main__":
    sys.exit(main())
