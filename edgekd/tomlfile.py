"""Reading the project's TOML files (budgets, sweep configs, study plans): every problem one EdgekdError naming
the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The document of the ``what`` file (budget, sweep config, study plan) at ``path``."""
    if not path.is_file():
        raise EdgekdError(f"{path}: {what} file does not exist")
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise EdgekdError(f"{path}: malformed TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekdError(f"{path}: cannot read {what} ({exc})") from None
