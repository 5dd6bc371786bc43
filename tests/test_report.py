"""edgekd report: study tables rendered from their JSON records alone, and the committed ones kept true."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekd.cli.main import main
from edgekd.study_report import STUDY_SCHEMA, render, summarise_lodo, table_path
from edgekd.windowset import WindowSet

RESULTS = Path(__file__).resolve().parent.parent / "models" / "results"
SETS = ["a", "b"]


def _row(seed: int, held: str, nested: float, hmm: float) -> dict:
    return {"student": "spectral CNN 4 blocks x 7 channels", "spec": {"family": "spectral", "blocks": 4, "width": 7},
            "blocks": 4, "strategy": "scratch", "seed": seed, "held_out": held, "windows": 10, "hmm": hmm,
            "argmax": 9.0, "causal": 8.0, "fused_previous": 7.0, "fused_default": 6.0, "nested_plain": 5.5,
            "nested": nested, "nested_cov90": 4.5, "nested_cov80": 4.0, "hmm_cov80": 3.0, "choice": "model only"}


def _record() -> dict:
    rows = [_row(0, "a", 2.0, 3.0), _row(0, "b", 10.0, 8.0), _row(1, "a", 4.0, 3.0), _row(1, "b", 6.0, 8.0)]
    return {"schema": STUDY_SCHEMA, "study": "lodo", "sets": SETS, "command": "edgekd lodo all.npz --seeds 0 1",
            "settings": {"out": "runs/x", "blocks": [4], "seeds": [0, 1], "epochs": 30, "label_sigma": 3.0,
                         "augment": False, "init_from": None, "teacher_blocks": 8, "int8": []},
            "decoders": {"previous": "a=1 w=4", "default": "a=0.25 w=1 q=0.2 u=0.25"}, "rows": rows,
            "shipped_decoder": {"spectral CNN 4 blocks x 7 channels": "a=0.25 w=1 q=0.35 u=0"},
            "hindsight": {"spectral CNN 4 blocks x 7 channels scratch": {
                "decoder": "HMM", "mae": {"a": 3.0, "b": 8.0}, "mean": 5.5, "never_worse_than_hmm": 1,
                "candidates": 94}}}


def test_the_summary_averages_seeds_per_held_out_set_and_counts_sets_no_worse_than_the_hmm():
    (s,) = summarise_lodo(_record()["rows"], SETS)
    assert (s["seeds"], s["a"], s["b"], s["mean"], s["hmm_mean"]) == (2, 3.0, 8.0, 5.5, 5.5)
    assert s["sets_no_worse_than_hmm"] == 2  # 3.0 <= 3.0 and 8.0 <= 8.0: "no worse" includes a tie


def test_report_writes_the_tables_beside_the_record_and_check_finds_a_hand_edit(tmp_path, capsys):
    record = tmp_path / "lodo-x.json"
    record.write_text(json.dumps(_record()))
    assert main(["report", str(record)]) == 0
    table = (tmp_path / "lodo-x.md").read_text()
    assert "| spectral CNN 4 blocks x 7 channels scratch | 2 | 3.00 | 8.00 | 5.50 | 2 of 2 |" in table
    assert "fused a=1 w=4 (previous default)" in table and "model only |" in table
    assert "a=0.25 w=1 q=0.35 u=0" in table and "1 of 94 candidates" in table
    assert "Regenerate: `edgekd lodo all.npz --seeds 0 1`" in table
    assert "| b | 10 |" in table and "| 10.00 |" in table  # the first seed's row per held-out set
    assert main(["report", "--check", str(record)]) == 0
    (tmp_path / "lodo-x.md").write_text(table.replace("5.50", "4.50"))
    capsys.readouterr()
    assert main(["report", "--check", "--json", str(record)]) == 1
    assert json.loads(capsys.readouterr().out)[0]["state"] == "differs"
    assert (tmp_path / "lodo-x.md").read_text() != table  # --check writes nothing
    (tmp_path / "rank.json").write_text("[]")  # `rank --out`'s list: not a study record, not an error in a folder
    assert main(["report", str(tmp_path)]) == 0  # a folder: every study record in it
    assert (tmp_path / "lodo-x.md").read_text() == table
    assert main(["report", str(tmp_path / "rank.json")]) == 2  # named on its own, it is refused
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert main(["report", str(empty)]) == 2 and "no study records" in capsys.readouterr().err
    (empty / "cut.json").write_text('{"schema": "edgekd.st')  # a record cut short is not skipped in silence
    assert main(["report", "--check", str(empty)]) == 2 and "cut.json: unreadable JSON" in capsys.readouterr().err


@pytest.mark.parametrize("content, problem", [
    ("{", "not valid JSON"), ("[1]", "JSON object"), (json.dumps({"study": "lodo"}), "schema"),
    (json.dumps({"schema": STUDY_SCHEMA, "study": "nope"}), "unknown study"),
    (json.dumps({"schema": STUDY_SCHEMA, "study": "lodo", "rows": []}), "incomplete lodo record")])
def test_a_bad_record_is_one_line_naming_the_file_and_exit_2(tmp_path, capsys, content, problem):
    record = tmp_path / "r.json"
    record.write_text(content)
    assert main(["report", str(record)]) == 2
    err = capsys.readouterr().err
    assert str(record) in err and problem in err and len(err.strip().splitlines()) == 1
    assert not table_path(record).exists()


def test_every_committed_results_table_is_what_its_record_renders():
    docs = {r: json.loads(r.read_text()) for r in sorted(RESULTS.glob("*.json"))}
    studies = [r for r, doc in docs.items() if isinstance(doc, dict) and doc.get("schema") == STUDY_SCHEMA]
    assert studies, "models/results holds no study record"
    for record in studies:
        assert table_path(record).read_text() == render(record), f"{table_path(record)} differs from {record}"


def _set(name: str, seed: int):
    from dataclasses import replace

    import numpy as np

    from edgekd.data.synthetic import generate

    ws = generate(subjects=2, minutes=1.0, seed=seed)
    return replace(ws, dataset=np.full(len(ws), name), provenance={**ws.provenance, "dataset": name})


def test_lodo_holds_out_each_set_chooses_the_decoder_without_it_and_resumes(tmp_path, capsys):
    files = []
    for i, name in enumerate(["a", "b", "c"]):
        files.append(tmp_path / f"{name}.npz")
        _set(name, 10 + i).save(files[-1])
    out = tmp_path / "study"
    plan = tmp_path / "plans" / "lodo-t.toml"  # the study as a plan file; its paths are relative to it
    plan.parent.mkdir()
    plan.write_text('family = "spectral"\nblocks = [1]\nwidths = [4]\nepochs = 1\ninner = "datasets"\n'
                    'out = "../study"\ntable = "../res/lodo-t.md"\n[data]\n'
                    + "".join(f'{f.stem} = "../{f.name}"\n' for f in files))
    argv = ["lodo", "--plan", str(plan), "--threads", "1", "--quiet"]
    assert main(argv) == 0
    record = json.loads((out / "lodo.json").read_text())
    assert record["command"] == f"edgekd lodo --plan {plan}" and record["settings"]["epochs"] == 1
    assert record["sets"] == ["a", "b", "c"] and len(record["rows"]) == 3
    assert {r["held_out"] for r in record["rows"]} == {"a", "b", "c"}
    for row in record["rows"]:  # the outer student never saw its held-out set: lodo fold, trained on the others
        cfg = json.loads((Path(row["run"]) / "config.json").read_text())
        assert cfg["fold"] == f"lodo:{row['held_out']}"
        assert row["spec"] == {"family": "spectral", "blocks": 1, "width": 4}
    assert all("m=" not in r["choice_quality"] and r["nested_quality"] >= 0 for r in record["rows"])
    assert (tmp_path / "res" / "lodo-t.md").read_text() == render(tmp_path / "res" / "lodo-t.json")
    assert main(["report", "--check", str(out / "lodo.json")]) == 0
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 6  # three inner models (one set each) and three outer students
    stamps = [(r / "metrics.json").stat().st_mtime_ns for r in runs]
    assert main(argv) == 0  # a re-run reuses every complete run of the same config and data
    assert [(r / "metrics.json").stat().st_mtime_ns for r in runs] == stamps
    capsys.readouterr()
    assert main(["lodo", *map(str, files[:2]), "--out", str(tmp_path / "two"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "at least 3 data sets" in err and len(err.strip().splitlines()) == 1


def test_the_nested_rule_picks_the_lowest_mean_ratio_among_the_candidates_it_is_given():
    """Each inner direction's MAE relative to its HMM, averaged: a motion-gated decoder that wins there is chosen,
    and the choice without the gate (the table's column beside it) never returns one."""
    from edgekd.lodo import DECODERS, HMM, nested_choice, without_motion_gate, without_switch

    gated = next(c for c in DECODERS if c.motion_g > 0)
    quality = next(c for c in DECODERS if c.clear_quality > 0 and c.motion_g == 0)
    inner = [{c: 10.0 for c in DECODERS}, {c: 2.0 for c in DECODERS}]
    inner[0][gated], inner[1][gated] = 9.5, 1.2  # ratios 0.95, 0.6: mean 0.775 (mean MAE 5.35)
    inner[0][quality], inner[1][quality] = 7.0, 2.0  # ratios 0.7, 1.0: mean 0.85, although its mean MAE is 4.5
    assert nested_choice(inner) == gated
    assert nested_choice(inner, without_motion_gate) == quality
    assert not nested_choice(inner, without_switch).switches
    assert nested_choice([{c: 3.0 for c in DECODERS}] * 2) == HMM  # ties: the first candidate, the spectrum
    assert {c.motion_g for c in DECODERS} == {0.0, 0.05, 0.1, 0.2} and len(set(DECODERS)) == len(DECODERS)


def test_lodo_inner_subjects_chooses_from_subject_folds_of_the_training_sets_only(tmp_path):
    """--inner subjects: per held-out set, K subject folds over the other sets (the outer student's data); no inner
    model trains on the held-out set, and the record says which inner protocol chose. A held-out set without ACC
    (c, PPG only) is a PPG-only device: its fold chooses on inner windows with the ACC zeroed, while the shipped
    decoder keeps pooling the with-ACC scores of every fold."""
    from dataclasses import replace

    files = []
    for i, name in enumerate(["a", "b", "c"]):
        files.append(tmp_path / f"{name}.npz")
        ws = _set(name, 20 + i)
        (replace(ws, x=ws.x[:, :1].copy(), channels=ws.channels[:1]) if name == "c" else ws).save(files[-1])
    out = tmp_path / "study"
    assert main(["lodo", *map(str, files), "--out", str(out), "--family", "spectral", "--blocks", "1", "--widths",
                 "4", "--epochs", "1", "--threads", "1", "--quiet", "--inner", "subjects", "--inner-folds", "2"]) == 0
    record = json.loads((out / "lodo.json").read_text())
    assert record["settings"]["inner"] == "subjects" and "--inner subjects" in record["command"]
    configs = [json.loads((r / "config.json").read_text()) for r in (out / "runs").iterdir()]
    inner = [c for c in configs if c["fold"] in ("1/2", "2/2")]
    assert len(inner) == 6 and len(configs) == 9  # 2 folds x 3 held-out sets, and the 3 outer students
    sizes = {name: len(WindowSet.load(f)) for name, f in zip("abc", files)}
    held_sizes = sorted(sum(sizes.values()) - n for n in sizes.values())  # each set left out once, twice per fold
    assert sorted(c["data"]["windows"] for c in inner) == sorted(held_sizes * 2)
    assert {r["held_out"]: r["held_out_acc"] for r in record["rows"]} == {"a": True, "b": True, "c": False}
    assert "without accelerometer (c) is a PPG-only device" in (out / "lodo.md").read_text()

    from edgekd.fusion import spectral_evidence, window_motion
    from edgekd.lodo import Spectrum, StudyRuns, _inner_subject_folds, as_device, without_acc
    from edgekd.windowset import merge

    full = merge({f.stem: WindowSet.load(f) for f in files})
    assert as_device(full, True) is full and not as_device(full, False).x[:, 1:].any()
    base = dict(blocks=1, in_channels=4, epochs=1, label_sigma=3.0, select_on="val_mae", device="cpu",
                init_from=None, augment=False, family="spectral", width=4)  # what run_lodo trained them with
    acc_of = {h: not without_acc(full, h) for h in "abc"}
    assert acc_of == {"a": True, "b": True, "c": False}
    rows_of = {h: np.flatnonzero(full.dataset != h) for h in "abc"}  # each fold's training windows
    views = _inner_subject_folds(StudyRuns(full, out / "runs"), Spectrum(spectral_evidence(full), window_motion(full)),
                                 ["a", "b", "c"], acc_of, base, 2, rows_of)
    assert {h: set(v) for h, v in views.items()} == {"a": {True}, "b": {True}, "c": {True, False}}
    assert views["c"][True] != views["c"][False]  # a and b seen without their ACC score differently
    assert len(list((out / "runs").iterdir())) == 9  # the same inner models, nothing retrained


@pytest.mark.parametrize("plan, beside, problem", [
    ('blocks = [1]\n[data]\na = "a.npz"\n', ["--epochs", "2"], "give --epochs in the plan"),
    # typed beside a plan, a flag is refused even at its default value (it would be silently ignored)
    ('blocks = [1]\n[data]\na = "a.npz"\n', ["--epochs", "30"], "give --epochs in the plan"),
    ('blocks = [1]\n[data]\na = "a.npz"\n', ["--out", "runs/lodo"], "give --out in the plan"),
    ('blocks = [1]\n[data]\na = "a.npz"\n', ["--inner", "subjects"], "give --inner in the plan"),
    ('blocks = [1]\n[data]\na = "a.npz"\n', ["x.npz"], "give DATA in the plan"),
    ('blocks = [1]\n', [], "needs a [data] table"),
    ('blok = [1]\n[data]\na = "a.npz"\n', [], "unknown key(s) blok"),
    ('threads = 4\n[data]\na = "a.npz"\n', [], "unknown key(s) threads"),
    ('blocks = [99]\n[data]\na = "a.npz"\n', [], "argument --blocks: invalid choice"),
    ('inner = "people"\n[data]\na = "a.npz"\n', [], "argument --inner: invalid choice"),
    ('blocks = [1]\n[data]\nnosuchloader = "folder"\n', [], "[data] nosuchloader: "),
    ('blocks = [1]\n[data]\na = "a.npz"\n', [], "[data] a: "),
    ('blocks = [\n', [], "malformed TOML"),
    ('augment = 0\n[data]\na = "a.npz"\n', [], "augment must be true or false"),
    ('epochs = [5, 7]\n[data]\na = "a.npz"\n', [], "epochs must be one value"),
    ('seeds = []\n[data]\na = "a.npz"\n', [], "seeds needs at least one value"),
    ('family = "-x"\n[data]\na = "a.npz"\n', [], "argument --family: invalid choice: '-x'"),
    ('strategies = ["nonsense"]\n[data]\na = "a.npz"\n', [], "unknown strategy 'nonsense'"),
])
def test_a_bad_plan_is_refused_in_one_line_naming_it(tmp_path, capsys, plan, beside, problem):
    path = tmp_path / "p.toml"
    path.write_text(plan)
    (tmp_path / "a.npz").write_bytes(b"not a WindowSet")  # read last: every other problem is found first
    assert main(["lodo", "--plan", str(path), *beside]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and problem in err, err


def test_every_committed_lodo_table_has_the_plan_that_regenerates_it():
    """models/results/NAME.json (a lodo record) <- `edgekd lodo --plan models/sweeps/NAME.toml`: the record's
    command is that, and the plan's settings are the record's (run-only flags and the retired benchmark script's
    --shared aside)."""
    from edgekd.cli.lodo import NOT_SETTINGS, RUN_ONLY, read_plan
    from edgekd.cli.main import build_parser

    root = RESULTS.parent.parent
    records = [p for p in sorted(RESULTS.glob("*.json")) if '"study": "lodo"' in p.read_text()]
    assert records
    for path in records:
        record = json.loads(path.read_text())
        plan = Path("models/sweeps") / f"{path.stem}.toml"
        assert record["command"] == f"edgekd lodo --plan {plan}", path
        # a record made before the device view says so: its plan now runs the study under today's protocol
        assert all("held_out_acc" in r for r in record["rows"]) or "Made before" in table_path(path).read_text(), path
        planned, sources = read_plan(build_parser().parse_args(["lodo", "--plan", str(root / plan)]))
        settings = json.loads(json.dumps({k: v for k, v in vars(planned).items() if k not in NOT_SETTINGS},
                                         default=str))
        for key, value in record["settings"].items():
            if key in ("out", "table"):
                assert (root / value).resolve() == Path(settings[key]).resolve(), (path, key)
            elif key not in (*RUN_ONLY, "shared"):
                assert settings[key] == value, (path, key)
        assert set(sources) == set(record["sets"])


def test_every_committed_plan_is_a_valid_study():
    """Each models/sweeps/lodo-*.toml parses into the study's settings (a plan is only run by hand, for hours)."""
    from edgekd.cli.lodo import lodo_plan, read_plan
    from edgekd.cli.main import build_parser

    plans = sorted((RESULTS.parent / "sweeps").glob("lodo-*.toml"))
    assert plans
    for plan in plans:
        planned, sources = read_plan(build_parser().parse_args(["lodo", "--plan", str(plan)]))
        lodo_plan(planned)
        assert planned.table and Path(planned.table).name == f"{plan.stem}.md", plan  # NAME.toml -> NAME.md
        assert set(sources) == {"ieee-spc2015", "wrist-exercise", "bidmc"}, plan


def test_a_plan_may_leave_a_list_empty_that_the_study_can_do_without(tmp_path):
    from edgekd.cli.lodo import read_plan
    from edgekd.cli.main import build_parser

    path = tmp_path / "p.toml"
    path.write_text('int8 = []\nseeds_for = []\n[data]\na = "a.npz"\n')
    planned, _ = read_plan(build_parser().parse_args(["lodo", "--plan", str(path)]))
    assert planned.int8 == [] and planned.seeds_for is None


def test_a_plan_without_out_writes_its_own_folder(tmp_path):
    """Two plans without ``out`` never share (and overwrite) one study record; run-only flags may be typed."""
    from edgekd.cli.lodo import DEFAULT_OUT, read_plan
    from edgekd.cli.main import build_parser

    path = tmp_path / "my-study.toml"
    path.write_text('blocks = [1]\n[data]\na = "a.npz"\n')
    planned, _ = read_plan(build_parser().parse_args(["lodo", "--plan", str(path), "--threads", "1", "--quiet"]))
    assert planned.out == DEFAULT_OUT / "my-study" and planned.blocks == [1] and planned.epochs == 30
    assert (planned.threads, planned.quiet, planned.json) == (1, True, False)


def test_lodo_within_folds_scores_every_subject_once_beside_the_held_out_numbers(tmp_path):
    """--within-folds K: the same students on K subject folds over all the sets together; each set is scored on
    out-of-fold outputs only (every window by the one fold model that never saw its subject), with the family's
    shipped decoder, and the table sets the within number beside the held-out one."""
    files = []
    for i, name in enumerate(["a", "b", "c"]):
        files.append(tmp_path / f"{name}.npz")
        _set(name, 30 + i).save(files[-1])
    out = tmp_path / "study"
    argv = ["lodo", *map(str, files), "--out", str(out), "--family", "spectral", "--blocks", "1", "--widths", "4",
            "--epochs", "1", "--threads", "1", "--quiet", "--inner", "datasets", "--within-folds", "2"]
    assert main(argv) == 0
    record = json.loads((out / "lodo.json").read_text())
    within = record["within"]
    assert [r["data_set"] for r in within] == ["a", "b", "c"]
    assert [r["windows"] for r in within] == [len(WindowSet.load(f)) for f in files]
    assert all(r["decoder"] == "a=0.5 w=1 q=0.25 u=0.25 m=0.05" for r in within)  # the spectral family's
    fold_runs = [json.loads((r / "config.json").read_text()) for r in (out / "runs").iterdir()]
    folds = sorted(c["fold"] for c in fold_runs if "/" in c["fold"])
    assert folds == ["1/2", "2/2"]  # one model per fold, trained on all three sets' other subjects
    for c in fold_runs:
        if c["fold"] == "1/2":
            assert c["data"]["windows"] == sum(len(WindowSet.load(f)) for f in files)
    table = (out / "lodo.md").read_text()
    assert "2-fold subject-independent cross-validation over all 3 sets" in table
    assert f"{within[0]['fused']:.2f} / " in table
    assert main(["report", "--check", str(out / "lodo.json")]) == 0
    assert main(argv[:-2] + ["--within-folds", "1"]) == 2  # one fold has no training side
    assert "--command" not in record["command"]  # the record's command can be typed again
    fresh = tmp_path / "fresh"
    assert main(argv[:-2] + ["--within-folds", "50", "--out", str(fresh)]) == 2  # 6 subjects: before training
    assert not (fresh / "runs").exists()
