"""The typed card (edgekd.model_card): what export writes is what its readers parse, and a wrong entry reads as
None with its reason, never as a value."""

from __future__ import annotations

import json

import pytest

from edgekd.errors import EdgekdError
from edgekd.model_card import FIELDS, FP32_FIELDS, ModelCard, read_card, where


def test_an_exported_card_holds_every_field_its_readers_use(tiny_artifact):
    card = read_card(tiny_artifact)
    card.require(*FIELDS)  # export checks this before the artifact is moved into place
    assert not card.problems
    assert card.flatbuffer_bytes == (tiny_artifact / "model_int8.tflite").stat().st_size
    assert card.mae_fp32 == card.doc["accuracy"]["mae_bpm"]["torch"]["mae_fused"]
    assert card.eval_windows >= 1 and card.c_identifier.isidentifier()
    assert set(card.fusion) >= {"weight", "floor"} and "sigma" in json.dumps(card.tracker)
    assert set(FP32_FIELDS) < set(FIELDS)


@pytest.mark.parametrize("field,value", [("arena_bytes", -5), ("arena_bytes", 26.5), ("arena_bytes", True),
                                         ("mae_fp32", float("nan")), ("mae_fp32", -1.0), ("mae_fp32", "3.1"),
                                         ("c_identifier", "not an identifier"), ("c_identifier", "modèle"),
                                         ("fusion", [1, 2])])
def test_a_wrong_entry_reads_as_none_with_its_reason(field, value):
    doc: dict = {}
    node = doc
    *parents, leaf = FIELDS[field].path
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    card = ModelCard.parse(doc, "x/card.json")
    assert getattr(card, field) is None
    assert card.why(field).startswith(f"card's {where(field)} is ")
    with pytest.raises(EdgekdError, match=r"x/card.json: card's"):
        card.get(field)
    with pytest.raises(EdgekdError, match="re-export"):
        card.require(field)


def test_an_absent_entry_is_named_and_get_allows_it():
    card = ModelCard.parse({"architecture": {"blocks": 2}}, "c.json")
    assert card.blocks == 2 and card.get("arena_bytes") is None
    assert card.why("blocks", "macs", "arena_bytes") == "card lacks architecture/macs or tflm/arena_bytes"
    assert card.why("blocks") == ""


def test_read_card_refuses_a_missing_or_non_object_card(tmp_path):
    with pytest.raises(EdgekdError, match="no card.json"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text("[1, 2]")
    with pytest.raises(EdgekdError, match="JSON object"):
        read_card(tmp_path)
