"""Scaling-law fit: recovers known constants, matches the paper's x axis, fails clearly on too few points."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.scaling import B_MIN, fit_groups, fit_scaling, law

PAPER_SOFT_T12 = {1: 10.38, 2: 7.70, 3: 7.20, 4: 7.11, 5: 7.04, 6: 6.80, 8: 6.68, 10: 6.33}  # REFERENCE.md s.3
PAPER_FIT_T12 = (11.607, 1.172, 6.755)


def _noisy(rng, a=11.0, b=1.3, c=7.0, sizes=(1, 2, 3, 4, 5, 6, 8, 10), reps=3, sd=0.1):
    x = np.repeat(np.asarray(sizes, dtype=float), reps)
    return x, law(x, a, b, c) + rng.normal(0, sd, len(x))


def test_recovers_known_constants_with_noise(rng):
    x, y = _noisy(rng)
    fit = fit_scaling(x, y)
    se = fit.stderr
    for est, true, s in zip((fit.a, fit.b, fit.c), (11.0, 1.3, 7.0), se):
        assert abs(est - true) < 4 * s, (est, true, s)
        assert 0 < s < 0.5 * abs(true)
    assert fit.r2 > 0.98 and fit.n == len(x)


def test_prediction_interval_covers_truth_and_widens_off_data(rng):
    x, y = _noisy(rng, sizes=(1, 2, 3, 4, 5, 6))
    fit = fit_scaling(x, y)
    mean, lo, hi = fit.predict(3.0)
    assert lo < law(np.array(3.0), 11.0, 1.3, 7.0) < hi and lo < mean < hi
    assert (hi - lo) < 1.0  # sd 0.1 noise: a tight interval inside the data
    _, lo12, hi12 = fit.predict(12.0)
    assert hi12 - lo12 >= hi - lo - 1e-9


def test_paper_constants_use_blocks_as_x():
    """The paper's soft-KD constants reproduce its Table 2 row only with x = student blocks."""
    blocks = np.array(list(PAPER_SOFT_T12), dtype=float)
    table = np.array(list(PAPER_SOFT_T12.values()))
    assert np.abs(law(blocks, *PAPER_FIT_T12) - table).max() < 0.5
    fit = fit_scaling(blocks, table)
    assert 0.8 < fit.b < 1.6 and abs(fit.c - 6.75) < 0.6 and fit.r2 > 0.9


@pytest.mark.parametrize("x,y", [([], []), ([1, 2], [9.0, 8.0]), ([1, 1, 2, 2], [9.0, 9.1, 8.0, 8.1])])
def test_fewer_than_three_sizes_is_a_clear_error(x, y):
    with pytest.raises(EdgekdError, match=">= 3 distinct student sizes"):
        fit_scaling(x, y)


def test_exactly_three_points_fit_without_an_interval():
    fit = fit_scaling([1, 2, 4], [10.0, 8.0, 7.0])
    assert fit.r2 == pytest.approx(1.0)
    mean, lo, hi = fit.predict(3.0)
    assert math.isfinite(mean) and lo == -math.inf and hi == math.inf


def _results(tmp_path, rng):
    """A results.csv like edgekd sweep writes: teachers 4 and 8, soft + scratch, 2 folds."""
    rows = []
    for fold in ("1/2", "2/2"):
        for s in (1, 2, 3, 4):
            rows.append({"run": f"s{s}-{fold}", "student": s, "teacher": "", "strategy": "scratch", "fold": fold,
                         "mae_argmax": float(law(np.array(s), 9, 1.0, 8) + rng.normal(0, 0.1))})
            for t, c in ((4, 7.5), (8, 7.0)):
                rows.append({"run": f"s{s}-t{t}-{fold}", "student": s, "teacher": t, "strategy": "soft", "fold": fold,
                             "mae_argmax": float(law(np.array(s), 10, 1.2, c) + rng.normal(0, 0.1))})
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path, rows


def test_fit_groups_one_fit_per_teacher_and_strategy(tmp_path, rng):
    _, rows = _results(tmp_path, rng)
    for r in rows:
        r["teacher"] = r["teacher"] or None
    fits = {(f["teacher"], f["strategy"]): f for f in fit_groups(rows, predict=2.5)}
    assert set(fits) == {(None, "scratch"), (4, "soft"), (8, "soft")}
    assert fits[(8, "soft")]["c"] < fits[(4, "soft")]["c"]
    assert all(f["pi_low"] < f["predicted_mae"] < f["pi_high"] for f in fits.values())


def test_cli_writes_fit_scaling_and_heatmap_pngs(tmp_path, rng, capsys):
    path, _ = _results(tmp_path, rng)
    out = tmp_path / "plots"
    assert main(["scaling", str(path), "--predict", "3", "--out", str(out), "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    assert len(fits) == 3 and all(f["predicted_mae"] > 0 for f in fits)
    for png in ("scaling.png", "heatmap.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "scaling.json").read_text())[0]["r2"] > 0.8


def test_table_writes_a_study_record_that_report_redraws(tmp_path, rng, capsys):
    from edgekd.study_report import render

    path, _ = _results(tmp_path, rng)
    table = tmp_path / "results" / "law.md"
    assert main(["scaling", str(path), "--predict", "3", "--table", str(table), "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)
    text = table.read_text()
    assert text == render(table.with_suffix(".json"))
    # one row per fit with its constants, as the JSON output has them
    soft8 = next(f for f in fits if f["teacher"] == 8)
    assert f"| 8b | soft | {soft8['points']} | 1, 2, 3, 4 | {soft8['a']:.3g} |" in text and "heat map shows soft" in text
    pngs = [table.with_suffix(".png"), tmp_path / "results" / "law-heatmap.png"]
    for png in pngs:
        assert png.read_bytes()[:4] == b"\x89PNG"
        png.unlink()
    assert main(["report", str(table.with_suffix(".json"))]) == 0  # tables and both plots from the record alone
    assert all(png.is_file() for png in pngs)


def test_a_parameter_the_data_do_not_constrain_has_no_standard_error():
    # MAE that rises then falls: the best decay runs into its bound (b = B_MIN), where curve_fit's covariance
    # says nothing about b
    fit = fit_scaling([1, 1, 2, 2, 4, 4], [20.0, 20.2, 25.0, 25.1, 20.0, 19.9])
    assert fit.b == pytest.approx(B_MIN)
    a_se, b_se, c_se = fit.stderr
    assert math.isinf(b_se) and math.isfinite(a_se) and math.isfinite(c_se)
    assert fit.predict(3.0)[1] == -math.inf  # no interval from a fit that cannot say how b varies


def test_report_refuses_a_bad_scaling_record_before_writing_and_table_never_takes_a_strangers_file(tmp_path, rng,
                                                                                                    capsys):
    path, _ = _results(tmp_path, rng)
    notes = tmp_path / "notes.md"
    notes.write_text("my notes")
    assert main(["scaling", str(path), "--table", str(notes)]) == 2  # a NAME.md that is not a record's table
    assert "exists without its record" in capsys.readouterr().err and notes.read_text() == "my notes"
    table = tmp_path / "law.md"
    assert main(["scaling", str(path), "--table", str(table)]) == 0
    record = json.loads(table.with_suffix(".json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**record, "points": []}))
    capsys.readouterr()
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "incomplete scaling record" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad.md").exists()  # nothing written from a record its plots cannot be drawn from
