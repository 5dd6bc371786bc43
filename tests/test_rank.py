"""edgekd rank: Pareto front, costs from the size table, card.json and benchmark records, budget marks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekd.budget import KB, Budget
from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.layout import file_record, files_sha256
from edgekd.model_card import FIELDS
from edgekd.model import size_table
from edgekd.rank import BENCH_BLOCKS, BENCH_LATENCY, BENCH_SCHEMA, pareto, rank

WEARABLE = Path(__file__).resolve().parent.parent / "models" / "budgets" / "wearable.toml"
# (student, teacher, strategy, MAE fold 1, MAE fold 2)
RUNS = [(1, None, "scratch", 12.0, 12.4), (2, None, "scratch", 9.0, 9.2), (4, None, "scratch", 8.6, 8.8),
        (1, 4, "soft", 10.0, 10.2), (2, 4, "soft", 9.4, 9.6), (4, 4, "soft", 8.0, 8.2)]


def _rows():
    return [{"run": f"{s}-{t}-{st}-{f}", "student": s, "teacher": t, "strategy": st, "fold": f"{f}/2",
             "in_channels": 1, "mae_argmax": m}
            for s, t, st, m1, m2 in RUNS for f, m in ((1, m1), (2, m2))]


def _nest(doc: dict, path: tuple[str, ...], value) -> None:
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


def test_pareto_marks_only_undominated():
    cands = [{"c": 1, "m": 5.0}, {"c": 2, "m": 4.0}, {"c": 2, "m": 4.5}, {"c": 3, "m": 4.0}, {"c": 4, "m": 3.0}]
    pareto(cands, "c", "m")
    assert [c["pareto"] for c in cands] == [True, True, False, False, True]


def test_weights_from_size_table_and_front():
    rows = rank(_rows(), "weights")
    by = {r["name"]: r for r in rows}
    assert by["2b soft <- 4b"]["weights_kb"] == pytest.approx(size_table((2,))[0]["int8_weight_bytes"] / KB)
    assert by["2b soft <- 4b"]["flatbuffer_kb"] is None and by["2b soft <- 4b"]["flash_kb"] is None  # never estimated
    assert by["1b soft <- 4b"]["mae_argmax"] == pytest.approx(10.1) and by["1b soft <- 4b"]["runs"] == 2
    front = {r["name"] for r in rows if r["pareto"]}
    # 1b: soft beats scratch; 2b: scratch (9.1) beats soft (9.5); 4b: soft (8.1) is the best overall.
    assert front == {"1b soft <- 4b", "2b scratch", "4b soft <- 4b"}
    assert [r["weights_kb"] for r in rows] == sorted(r["weights_kb"] for r in rows)


def test_costs_from_cards_and_bench_records(tmp_path):
    for blocks, flash, arena, ms in ((1, 30_000, 20_000, 3.0), (2, 40_000, 21_000, 5.0)):
        art = tmp_path / f"student{blocks}"
        art.mkdir()
        card: dict = {}
        for field, v in (("blocks", blocks), ("arena_bytes", arena)):
            _nest(card, FIELDS[field].path, v)
        (art / "model_int8.tflite").write_bytes(b"\0" * flash)  # the card must describe real files
        card["files"] = {"model_int8.tflite": file_record(art / "model_int8.tflite")}
        (art / "card.json").write_text(json.dumps(card))
        rec = {"schema": BENCH_SCHEMA, "runtime": "tflm"}
        _nest(rec, BENCH_BLOCKS, blocks)
        _nest(rec, BENCH_LATENCY, ms)
        (art / "tflm.json").write_text(json.dumps(rec))
    rows = rank(_rows(), "latency", bench_dir=tmp_path)
    by = {r["name"]: r for r in rows}
    assert by["2b scratch"]["latency_ms"] == 5.0 and by["2b scratch"]["arena_kb"] == pytest.approx(21_000 / KB)
    assert by["1b scratch"]["flatbuffer_kb"] == pytest.approx(30_000 / KB) and by["4b scratch"]["flatbuffer_kb"] is None
    assert by["1b scratch"]["flash_kb"] is None  # a card holds no image
    ranked = rank(_rows(), "flatbuffer", bench_dir=tmp_path)
    assert [r["student"] for r in ranked] == [1, 1, 2, 2, 4, 4]  # by flatbuffer; the 4b has none: last
    for cost in ("flash", "instructions"):
        with pytest.raises(EdgekdError, match="needs --firmware"):
            rank(_rows(), cost, bench_dir=tmp_path)
    with pytest.raises(EdgekdError, match="give --bench"):  # a --firmware nothing would read
        rank(_rows(), "weights", firmware="cortex-m4")
    assert by["4b soft <- 4b"]["latency_ms"] is None and not by["4b soft <- 4b"]["pareto"]
    with pytest.raises(EdgekdError, match="needs --bench"):
        rank(_rows(), "arena")
    (tmp_path / "student1" / "model_int8.tflite").write_bytes(b"\1" * 30_000)  # same size, other bytes
    with pytest.raises(EdgekdError, match="sha256 differs"):
        rank(_rows(), "latency", bench_dir=tmp_path)


def test_budget_marks_what_fits():
    budget = Budget("b", {"mae_bpm": 9.2, "arena_kb": 64, "flatbuffer_kb": 100})
    by = {r["name"]: r for r in rank(_rows(), "weights", budget=budget)}
    assert by["2b scratch"]["fits"] and not by["1b scratch"]["fits"]  # 9.1 and 10.x BPM
    # without artifacts nothing measures the arena or the flatbuffer: unchecked, never judged on the estimate
    assert by["2b scratch"]["unchecked"] == "arena_kb,flatbuffer_kb"


def test_mcu_latency_needs_an_mcu_and_cli_writes_png(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_rows()))
    assert main(["rank", str(results), "--cost", "mcu-latency"]) == 2
    assert "needs --mcu" in capsys.readouterr().err
    out = tmp_path / "rank"
    assert main(["rank", str(results), "--cost", "mcu-latency", "--budget",
                 str(WEARABLE), "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["mcu_latency_ms"] > 0 for r in rows)
    assert (out / "pareto_mcu-latency.png").read_bytes()[:4] == b"\x89PNG"


def test_rank_by_the_fused_tracker_mae(tmp_path, capsys):
    rows = _rows()
    for i, r in enumerate(rows):
        r["mae_fused"] = 10.0 - i  # reverses the argmax order
    results = tmp_path / "results.json"
    results.write_text(json.dumps(rows))
    assert main(["rank", str(results), "--metric", "mae_fused", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    # The largest student got the lowest fused MAE of all, so it is on the front; the ranking used mae_fused.
    best = min(ranked, key=lambda r: r["mae_fused"])
    assert best["student"] == max(r["student"] for r in ranked) and best["pareto"]
    assert "mae_argmax" not in best
    assert main(["rank", str(tmp_path / "results.json"), "--metric", "mae_causal"]) == 2  # no such column
    assert "mae_causal" in capsys.readouterr().err


def test_firmware_records_replace_the_estimates(tmp_path):
    """--firmware TARGET: the image, the target's arena and measured instructions (and mcu-latency from them);
    a record of another flatbuffer is an error, not a silent fallback to the card."""
    for blocks, instructions in ((1, 6e6), (2, 10e6)):
        art = tmp_path / f"student{blocks}"
        art.mkdir()
        card: dict = {}
        _nest(card, FIELDS["blocks"].path, blocks)
        (art / "model_int8.tflite").write_bytes(b"\0" * 1000 * blocks)
        card["files"] = {"model_int8.tflite": file_record(art / "model_int8.tflite")}
        (art / "card.json").write_text(json.dumps(card))
        (art / "bench").mkdir()
        (art / "bench" / "firmware-cortex-m4.json").write_text(json.dumps({
            "schema": BENCH_SCHEMA, "runtime": "firmware-cortex-m4", "settings": {"kernels": "cmsis-nn"},
            "artifact": {"blocks": blocks, "tflite_sha256": card["files"]["model_int8.tflite"]["sha256"],
                         "files_sha256": files_sha256(card)},
            "figures": {"windows": 8, "input_mismatches": 0, "int8_mismatches": 0, "bpm_mismatches": 0, "flash_bytes": 100_000 * blocks,
                        "ram_bytes": 40_000, "arena_bytes": 30_000, "instructions_per_window": instructions}}))
    rows = rank(_rows(), "instructions", bench_dir=tmp_path, mcu="m4-120-cmsisnn", firmware="cortex-m4")
    by = {r["name"]: r for r in rows}
    assert by["2b scratch"]["mcu_instructions_m"] == 10.0 and by["2b scratch"]["flash_kb"] == 200_000 / KB
    assert by["2b scratch"]["flatbuffer_kb"] == 2000 / KB and by["2b scratch"]["arena_kb"] == 30_000 / KB
    ranked = rank(_rows(), "flash", bench_dir=tmp_path, firmware="cortex-m4")
    assert [r["flash_kb"] for r in ranked][:4] == [100_000 / KB] * 2 + [200_000 / KB] * 2
    assert by["2b scratch"]["mcu_latency_ms"] == pytest.approx(10e6 / 120e6 * 1e3)
    assert by["4b scratch"]["mcu_instructions_m"] is None
    with pytest.raises(EdgekdError, match="needs --firmware"):
        rank(_rows(), "instructions", bench_dir=tmp_path)
    with pytest.raises(EdgekdError, match="no artifact has a bench/firmware-cortex-m33.json"):  # a misspelt target
        rank(_rows(), "flash", bench_dir=tmp_path, firmware="cortex-m33")
    rec = tmp_path / "student1" / "bench" / "firmware-cortex-m4.json"
    rec.write_text(rec.read_text().replace('"bpm_mismatches": 0', '"bpm_mismatches": 2'))
    with pytest.raises(EdgekdError, match="bpm_mismatches"):
        rank(_rows(), "flash", bench_dir=tmp_path, firmware="cortex-m4")


def _lodo_record(path: Path, sets=("a", "b", "c"), students=(({"blocks": 1}, 9.0), ({"blocks": 2}, 7.0))) -> Path:
    """A leave-one-dataset-out study record (edgekd lodo) with scratch and DKD rows over two seeds."""
    from edgekd.study_report import STUDY_SCHEMA

    rows = [{"spec": {"family": "resnet", **spec}, "student": f"ResNet1D {spec['blocks']}", "blocks": spec["blocks"],
             "strategy": strategy, "seed": seed, "held_out": held, "hmm": 10.0 + i, "argmax": 20.0,
             "causal": 15.0, "nested": mae + (1.0 if strategy == "dkd" else 0.0) + i + seed}
            for spec, mae in students for strategy in ("scratch", "dkd") for seed in (0, 1)
            for i, held in enumerate(sets)]
    path.write_text(json.dumps({"schema": STUDY_SCHEMA, "study": "lodo", "sets": list(sets), "rows": rows,
                                "settings": {"teacher_blocks": 8}}))
    return path


def test_rank_reads_lodo_records_and_table_writes_a_record_report_regenerates(tmp_path, capsys):
    from edgekd.study_report import read_record, render

    record = _lodo_record(tmp_path / "lodo.json")
    table = tmp_path / "results" / "pareto.md"
    assert main(["rank", str(record), "--metric", "mae_fused", "--table", str(table), "--json"]) == 0
    ranked = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    # mean over the three held-out sets and both seeds of the nested fused MAE; the teacher from the record
    assert ranked["2b scratch"]["mae_fused"] == pytest.approx(7.0 + 1.0 + 0.5) and ranked["2b scratch"]["runs"] == 6
    assert ranked["2b dkd <- 8b"]["mae_fused"] == pytest.approx(9.5)
    assert ranked["2b scratch"]["pareto"] and not ranked["2b dkd <- 8b"]["pareto"]
    written = read_record(table.with_suffix(".json"))
    assert written["study"] == "rank" and written["source_kind"] == "lodo" and written["hmm"] == pytest.approx(11.0)
    assert written["command"] == f"edgekd rank {record} --metric mae_fused --table {table} --json"
    assert table.read_text() == render(table.with_suffix(".json"))
    assert "the spectral HMM alone: 11.00" in table.read_text()
    png = table.with_suffix(".png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    png.unlink()
    assert main(["report", str(table.with_suffix(".json"))]) == 0  # the table and the plot, from the record alone
    assert png.is_file()


def test_rank_refuses_mixed_or_mismatched_sources(tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_rows()))
    one = _lodo_record(tmp_path / "one.json")
    other = _lodo_record(tmp_path / "other.json", sets=("a", "b", "d"))
    for argv, problem in (([str(results), str(one)], "not both"), ([str(one), str(other)], "different data sets")):
        assert main(["rank", *argv, "--metric", "mae_fused"]) == 2
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1
    assert main(["rank", str(one), "--metric", "mae_fused", "--table", str(tmp_path / "r.md")]) == 0
    capsys.readouterr()
    assert main(["rank", str(tmp_path / "r.json")]) == 2  # a rank record has no per-student MAE to rank
    assert "a rank record" in capsys.readouterr().err


def test_rank_counts_each_measurement_once_and_never_writes_over_its_input(tmp_path, capsys):
    one = _lodo_record(tmp_path / "one.json")
    assert main(["rank", str(one), str(one), "--metric", "mae_fused"]) == 2  # the same study twice
    assert "given twice" in capsys.readouterr().err
    copy = tmp_path / "copy.json"
    copy.write_text(one.read_text())
    assert main(["rank", str(one), str(copy), "--metric", "mae_fused"]) == 2  # two records of one measurement
    assert "give each study of a student once" in capsys.readouterr().err
    doc = json.loads(one.read_text())
    doc["sets"] = list(reversed(doc["sets"]))  # the same held-out sets in another order
    doc["rows"] = [r for r in doc["rows"] if r["student"] == "ResNet1D 2"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(doc))
    one_doc = json.loads(one.read_text())
    one_doc["rows"] = [r for r in one_doc["rows"] if r["student"] == "ResNet1D 1"]
    one.write_text(json.dumps(one_doc))
    assert main(["rank", str(one), str(other), "--metric", "mae_fused"]) == 0
    capsys.readouterr()
    before = one.read_text()
    assert main(["rank", str(one), "--metric", "mae_fused", "--table", str(tmp_path / "one.md")]) == 2
    assert "exists and is not a rank record" in capsys.readouterr().err and one.read_text() == before
    with pytest.raises(SystemExit) as stop:  # not a NAME.md: refused by the parser, before any work
        main(["rank", str(one), "--table", "."])
    assert stop.value.code == 2 and "NAME.md" in capsys.readouterr().err
    for key, value in (("sets", None), ("rows", [{**one_doc["rows"][0], "argmax": "x"}]),
                       ("rows", [{**one_doc["rows"][0], "hmm": None}])):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({**one_doc, key: value}))
        assert main(["rank", str(bad), "--metric", "mae_fused"]) == 2
        err = capsys.readouterr().err
        assert "incomplete lodo record" in err and str(bad) in err and len(err.strip().splitlines()) == 1
