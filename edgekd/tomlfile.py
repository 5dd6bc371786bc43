"""Reading the project's TOML files (budgets, sweep configs, study plans): every problem one EdgekdError naming
the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable

from edgekd.errors import EdgekdError


def read_toml(path: Path, what: str, allowed: Iterable[str] | None = None) -> dict[str, Any]:
    """The document of the ``what`` file (budget, sweep config, study plan) at ``path``; with ``allowed``, a
    top-level key outside it is refused (a misspelt key must not silently fall back to its default)."""
    if not path.is_file():
        raise EdgekdError(f"{path}: {what} file does not exist")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise EdgekdError(f"{path}: malformed TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgekdError(f"{path}: cannot read {what} ({exc})") from None
    if allowed is not None:
        unknown = sorted(set(doc) - set(allowed))
        if unknown:
            raise EdgekdError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return doc
