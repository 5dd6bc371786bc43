"""Read an artifact folder (``models/<name>/``) by its files: the benchmark layer never imports ``export``.

The file names (``edgekd.layout``) and the typed card (``edgekd.model_card``) are the export layer's contract
(DESIGN.md "Artifact").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.checkpoint import model_spec
from edgekd.errors import EdgekdError
from edgekd.layout import TFLITE_INT8, files_sha256, read_flatbuffer
from edgekd.model_card import ModelCard, read_card


@dataclass(frozen=True)
class Artifact:
    folder: Path
    card: ModelCard
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
        return filename in self.card.files and (self.folder / filename).is_file()

    def tflite_bytes(self) -> bytes:
        """The INT8 flatbuffer, checked to be one (a truncated or foreign file fails here, by name)."""
        return read_flatbuffer(self.path(TFLITE_INT8))

    def describe(self) -> dict[str, Any]:
        """Identity for a benchmark record: name, path, architecture and the flatbuffer's hash."""
        out: dict[str, Any] = {"name": self.name, "path": str(self.folder), **self.spec}
        if self.has(TFLITE_INT8):  # load_artifact checked the file against this recorded hash
            out["tflite_sha256"] = self.card.files[TFLITE_INT8]["sha256"]
        out["files_sha256"] = files_sha256(self.card.doc)  # all of the files: what a firmware record was built from
        return out


def load_artifact(folder: str | Path) -> Artifact:
    """Open an artifact folder; a missing folder or a missing/corrupt card.json is a clean EdgekdError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgekdError(f"{folder}: no such artifact folder (expected models/<name>/ from `edgekd export`)")
    card = read_card(folder)
    return Artifact(folder, card, model_spec(folder))  # model_spec checks every file against the card
