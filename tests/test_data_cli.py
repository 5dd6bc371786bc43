"""`edgekd data prepare|info|synth`: outputs, JSON, exit codes, and no partial files on failure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekd.cli.main import main
from edgekd.windowset import WindowSet


def write_csv(path: Path, seconds: float = 60.0, fs: float = 50.0) -> Path:
    t = np.arange(int(seconds * fs)) / fs
    hr = 70 + 20 * t / seconds
    ppg = np.sin(2 * np.pi * np.cumsum(hr / 60) / fs)
    np.savetxt(path, np.column_stack([t, ppg, hr]), delimiter=",", header="t,green,hr", comments="", fmt="%.6g")
    return path


def test_prepare_info_roundtrip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_csv(tmp_path / "rec.csv")
    out = tmp_path / "out" / "rec.npz"
    rc = main(["data", "prepare", "--dataset", "csv", "--root", str(src), "--out", str(out), "--json",
               "--option", "ppg_column=green", "--option", "fs=50", "--option", "hr_column=hr"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["windows"] == 27 and summary["subjects"] == 1 and summary["dropped"] == 0
    assert summary["dropped_windows"] == {"label_missing": 0, "nan_signal": 0}
    ws = WindowSet.load(out)
    assert len(ws) == 27 and ws.provenance["options"]["fs"] == 50.0
    assert json.loads(out.with_suffix(".json").read_text())["summary"]["windows"] == 27

    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["summary"]["windows"] == 27 and info["provenance"]["dataset"] == "csv"
    assert sum(info["summary"]["hr_histogram"].values()) == 27

    assert main(["data", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "HR histogram" in text and "rec" in text and "dropped_windows" in text


def test_prepare_failure_leaves_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = write_csv(tmp_path / "short.csv", seconds=4.0)
    out = tmp_path / "out.npz"
    rc = main(["data", "prepare", "--dataset", "csv", "--root", str(short), "--out", str(out),
               "--option", "ppg_column=green", "--option", "fs=50", "--option", "hr_column=hr"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "short.csv" in err and "shorter than one 8 s window" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["short.csv"]


def test_prepare_bad_option_and_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["data", "prepare", "--dataset", "bidmc", "--root", str(tmp_path), "--out", str(tmp_path / "x.npz"),
               "--option", "fs=125"])
    assert rc == 2 and "dataset 'bidmc' has no option 'fs'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", "--dataset", "mimic", "--root", str(tmp_path), "--out", str(tmp_path / "x.npz")])
    assert exc.value.code == 2 and "invalid choice: 'mimic'" in capsys.readouterr().err


def test_synth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth.npz"
    assert main(["data", "synth", "--subjects", "2", "--minutes", "1", "--seed", "3", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    ws = WindowSet.load(out)
    assert summary["windows"] == len(ws) == 2 * 27 and ws.subjects() == ["synth-S01", "synth-S02"]
    assert ws.provenance["parameters"] == {"subjects": 2, "minutes": 1.0, "seed": 3}


def test_info_on_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert main(["data", "info", str(bad)]) == 2
    assert "bad.npz: cannot read WindowSet" in capsys.readouterr().err


def test_check_records_counts_and_label_alignment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`edgekd data check`: the synthetic corpus's exact labels agree with its spectral peaks far more often than
    another subject's HR; --table writes a record `edgekd report` regenerates; a bad source is one line, exit 2."""
    from edgekd.label_check import shifted

    data = tmp_path / "s.npz"
    assert main(["data", "synth", "--subjects", "4", "--minutes", "3", "--out", str(data), "--json"]) == 0
    capsys.readouterr()
    table = tmp_path / "results" / "data.md"
    assert main(["data", "check", str(data), "--table", str(table), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["windows"], row["subjects"], row["checked_windows"]) == (348, 4, 174)  # ACC: the quieter half
    assert row["aligned"] > 0.8 and row["other_subject"] < row["aligned"] - 0.5 and row["prepare_s"] is None
    assert "| synthetic | 348 | 4 | 4 |" in table.read_text()
    assert main(["report", "--check", str(table.with_suffix(".json"))]) == 0
    ws = WindowSet.load(data)
    later = shifted(ws, 5)
    first = np.flatnonzero(ws.recording == ws.recording[0])
    assert later[first[0]] == ws.hr[first[5]] and np.isnan(later[first[-1]])
    capsys.readouterr()
    one = tmp_path / "one.npz"  # a single subject has no other subject to compare with
    assert main(["data", "synth", "--subjects", "1", "--minutes", "3", "--out", str(one), "--json"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(one), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["other_subject"] is None
    for bad in (["nope"], ["foo=bar"], ["ieee-spc2015="], ["ieee-spc2015=" + str(tmp_path / "missing")]):
        assert main(["data", "check", *bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1
