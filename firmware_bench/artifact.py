"""Read an artifact folder (``models/<name>/``) by its files: the benchmark layer never imports ``export``.

The file names (``edgekd.layout``) and the card.json keys (named once, in ``edgekd.layout.CARD_KEYS``) are the export
layer's contract (DESIGN.md "Artifact").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.checkpoint import model_spec
from edgekd.errors import EdgekdError
from edgekd.layout import CARD, CARD_KEYS, TFLITE_INT8, card_entry, files_sha256, read_card, read_flatbuffer


@dataclass(frozen=True)
class Artifact:
    folder: Path
    card: dict[str, Any]
    spec: dict[str, int] = field(default_factory=dict)  # blocks, in_channels, n_classes

    @property
    def name(self) -> str:
        return self.folder.name

    def path(self, filename: str) -> Path:
        """A file of the artifact; EdgekdError naming it when the export did not write it."""
        p = self.folder / filename
        if not self.has(filename):
            raise EdgekdError(f"{p}: missing from the artifact (re-run `edgekd export --int8`)")
        return p

    def has(self, filename: str) -> bool:
        """Part of the artifact: listed in its card (whose hashes load_artifact checked) and present."""
        files = self.card.get("files")
        return isinstance(files, dict) and filename in files and (self.folder / filename).is_file()

    def tflite_bytes(self) -> bytes:
        """The INT8 flatbuffer, checked to be one (a truncated or foreign file fails here, by name)."""
        return read_flatbuffer(self.path(TFLITE_INT8))

    def card_int(self, field: str) -> int | None:
        """The positive integer card entry ``edgekd.layout.CARD_KEYS[field]`` names (e.g. "arena_bytes"), or
        None when the card lacks it; a wrong type is an error."""
        value = card_entry(self.card, field)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise EdgekdError(f"{self.folder / CARD}: '{'.'.join(CARD_KEYS[field])}' must be a positive integer, "
                              f"got {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        """Identity for a benchmark record: name, path, architecture and the flatbuffer's hash."""
        out: dict[str, Any] = {"name": self.name, "path": str(self.folder), **self.spec}
        if self.has(TFLITE_INT8):  # load_artifact checked the file against this recorded hash
            out["tflite_sha256"] = self.card["files"][TFLITE_INT8]["sha256"]
        out["files_sha256"] = files_sha256(self.card)  # all of the files: what a firmware record was built from
        return out


def load_artifact(folder: str | Path) -> Artifact:
    """Open an artifact folder; a missing folder or a missing/corrupt card.json is a clean EdgekdError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgekdError(f"{folder}: no such artifact folder (expected models/<name>/ from `edgekd export`)")
    card = read_card(folder)
    return Artifact(folder, card, model_spec(folder))  # model_spec checks every file against the card
