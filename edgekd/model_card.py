"""card.json as its readers see it: a typed ``ModelCard``.

`edgekd export` writes the card and checks, before the artifact is moved into place, that it reads back as the
``ModelCard`` its readers expect (``require``); the gate, `edgekd rank`, bench, the firmware check, evaluation and
the runtime adapters read it through ``read_card``. Each field a reader uses is declared once here: where it sits in
the JSON document and what kind of value it must be. An entry that is absent, or present with the wrong kind of
value, reads as None, and ``why`` says which of the two it was (the gate fails closed on either, naming it).

flatbuffer_bytes is the INT8 .tflite's size (flash is the linked image: only a firmware record's flash_bytes); the
arena is the TFLM arena the exporter recorded; the MAEs are the shipped decoder's (fused) on PyTorch's FP32 logits
(``mae_fp32``) and on the TFLM host interpreter's INT8 ones (``mae_int8``: the kernels the device runs), on the same
held-out windows, which ``eval_windows`` / ``eval_subjects`` count. The descriptive rest of the card (source, data,
quantisation, per-layer errors, the architecture table) stays in ``doc``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.layout import CARD, TFLITE_INT8, read_json_object

COUNT, MAE, NAME, TABLE = "a positive integer", "a finite number >= 0", "a C identifier", "a table"


@dataclass(frozen=True)
class CardField:
    path: tuple[str, ...]  # keys from the document's root
    kind: str  # COUNT, MAE, NAME or TABLE


# The runtime names are edgekd.runtimes' ("torch": its FP32 reference, "tflm"), which imports this module.
FIELDS: dict[str, CardField] = {
    "flatbuffer_bytes": CardField(("files", TFLITE_INT8, "bytes"), COUNT),
    "arena_bytes": CardField(("tflm", "arena_bytes"), COUNT),
    "macs": CardField(("architecture", "macs"), COUNT),
    "blocks": CardField(("architecture", "blocks"), COUNT),
    "in_channels": CardField(("architecture", "in_channels"), COUNT),
    "mae_fp32": CardField(("accuracy", "mae_bpm", "torch", "mae_fused"), MAE),
    "mae_int8": CardField(("accuracy", "mae_bpm", "tflm", "mae_fused"), MAE),
    "eval_windows": CardField(("accuracy", "measured_on", "windows"), COUNT),
    "eval_subjects": CardField(("accuracy", "measured_on", "subjects"), COUNT),
    "c_identifier": CardField(("tflm", "c_identifier"), NAME),
    "fusion": CardField(("accuracy", "decoder", "fusion"), TABLE),  # edgekd.fusion.FusionConfig's fields
    "tracker": CardField(("accuracy", "decoder", "tracker"), TABLE),  # edgekd.tracking.TrackerConfig's
}
# What every export writes; an INT8 export adds the rest.
FP32_FIELDS = ("macs", "blocks", "in_channels", "mae_fp32", "eval_windows", "eval_subjects", "fusion", "tracker")


def where(name: str) -> str:
    """The field's place in card.json, as people read it: ``tflm/arena_bytes``."""
    return "/".join(FIELDS[name].path)


def _entry(doc: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = doc
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _valid(kind: str, value: Any) -> bool:
    if kind == TABLE:
        return isinstance(value, dict)
    if kind == NAME:  # the C arrays are named after it: ASCII letters, digits and _, not starting with a digit
        return isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) is not None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == COUNT:
        return isinstance(value, int) and value > 0
    return math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class ModelCard:
    """The card of one artifact; a field is None when the card lacks it or holds the wrong kind of value."""

    path: Path  # the card.json file
    doc: dict[str, Any]  # the whole document, as written
    flatbuffer_bytes: int | None = None
    arena_bytes: int | None = None
    macs: int | None = None
    blocks: int | None = None
    in_channels: int | None = None
    mae_fp32: float | None = None
    mae_int8: float | None = None
    eval_windows: int | None = None
    eval_subjects: int | None = None
    c_identifier: str | None = None
    fusion: dict[str, Any] | None = None
    tracker: dict[str, Any] | None = None
    problems: dict[str, str] = field(default_factory=dict)  # field -> why a present entry reads as None

    @classmethod
    def parse(cls, doc: dict[str, Any], path: str | Path) -> ModelCard:
        values: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, spec in FIELDS.items():
            present, value = _entry(doc, spec.path)
            if not present:
                continue
            if _valid(spec.kind, value):
                values[name] = float(value) if spec.kind == MAE else value
            else:
                problems[name] = f"card's {where(name)} is {value!r}, not {spec.kind}"
        return cls(Path(path), doc, **values, problems=problems)

    def why(self, *names: str) -> str:
        """Why these fields read as None: the first wrong value, else which are missing ('' when none is None)."""
        for name in names:
            if name in self.problems:
                return self.problems[name]
        missing = [name for name in names if getattr(self, name) is None]
        return "card lacks " + " or ".join(where(n) for n in missing) if missing else ""

    def get(self, name: str) -> Any:
        """The field's value, or None when the card lacks it; EdgekdError naming the card when it holds the wrong
        kind of value (for readers that may go on without the entry, never with a wrong one)."""
        if name in self.problems:
            raise EdgekdError(f"{self.path}: {self.problems[name]}")
        return getattr(self, name)

    def require(self, *names: str) -> None:
        """EdgekdError naming the card unless every one of ``names`` reads as a value."""
        if why := self.why(*names):
            raise EdgekdError(f"{self.path}: {why} (re-export with this edgekd)")

    @property
    def files(self) -> dict[str, Any]:
        files = self.doc.get("files")
        return files if isinstance(files, dict) else {}

    @property
    def architecture(self) -> dict[str, Any] | None:
        """The architecture table, read whole (edgekd.arch labels and checks it)."""
        table = self.doc.get("architecture")
        return table if isinstance(table, dict) else None


def read_card(artifact: str | Path) -> ModelCard:
    """The card of an artifact folder (or the card file itself); EdgekdError when missing or not a JSON object."""
    path = Path(artifact)
    card_path = path / CARD if path.is_dir() else path
    if not card_path.is_file():
        raise EdgekdError(f"{card_path}: no {CARD} (is {artifact} an exported artifact?)")
    return ModelCard.parse(read_json_object(card_path, "corrupt card"), card_path)
