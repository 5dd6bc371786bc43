"""Loaders for data we do not have (PPG-DaLiA, WildPPG, GalaxyPPG, generic CSV), tested on small files written
here in the published layouts, plus every kind of bad input each loader must refuse or count."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from edgekd.data import LOADERS, load_dataset
from edgekd.data.galaxyppg import ACC_COUNTS_PER_G, POLAR_OFFSET_MS
from edgekd.data.safe_pickle import load_pickle
from edgekd.errors import DataError
from edgekd.windowset import CHANNEL_NAMES_PPG_ACC
from spectral import peak_bpm

SECONDS = 120.0


def hr_track(t: np.ndarray, lo: float = 60.0, hi: float = 150.0) -> np.ndarray:
    """A steep HR ramp: a label shifted by even one window would be off by 1.5 BPM, by five by 7.5 BPM."""
    return lo + (hi - lo) * t / SECONDS


def ppg_signal(fs: float, seconds: float = SECONDS, rng: np.random.Generator | None = None) -> np.ndarray:
    """Pulse wave whose rate follows ``hr_track``: fundamental + harmonic + slow baseline + a little noise."""
    t = np.arange(int(seconds * fs)) / fs
    phase = 2 * np.pi * np.cumsum(hr_track(t) / 60.0) / fs
    rng = rng or np.random.default_rng(0)
    return np.sin(phase) + 0.4 * np.sin(2 * phase + 1) + 0.5 * np.sin(2 * np.pi * 0.1 * t) \
        + 0.05 * rng.standard_normal(len(t))


def window_labels(seconds: float = SECONDS) -> np.ndarray:
    """True mean HR of each 8 s / 2 s window (what the published per-window labels hold)."""
    starts = np.arange(int((seconds - 8) // 2) + 1) * 2.0
    return hr_track(starts + 4.0)


def motion_acc(fs: float, seconds: float = SECONDS) -> np.ndarray:
    """[3, T] in g: gravity on z plus a 2 Hz arm swing of 0.5 g on x."""
    t = np.arange(int(seconds * fs)) / fs
    return np.vstack([0.5 * np.sin(2 * np.pi * 2.0 * t), 0.1 * np.ones_like(t), np.ones_like(t)])


# --- PPG-DaLiA --------------------------------------------------------------------------------------------

def write_dalia(root: Path, subject: int, bvp: np.ndarray | None = None, labels: np.ndarray | None = None,
                drop_acc: bool = False) -> Path:
    folder = root / "PPG_FieldStudy" / f"S{subject}"
    folder.mkdir(parents=True, exist_ok=True)
    activity = np.zeros((int(SECONDS * 4), 1))
    activity[: int(SECONDS * 2)] = 1.0  # sitting for the first minute, walking for the second
    activity[int(SECONDS * 2):] = 7.0
    wrist = {"BVP": (ppg_signal(64.0) if bvp is None else bvp)[:, None], "EDA": np.zeros((480, 1))}
    if not drop_acc:
        wrist["ACC"] = (motion_acc(32.0) * 64.0).T  # E4 units: 1/64 g
    data = {"signal": {"wrist": wrist, "chest": {"ECG": np.zeros((10, 1))}},
            "label": window_labels() if labels is None else labels, "activity": activity,
            "subject": f"S{subject}", "questionnaire": {"AGE": 30, "Gender": " m"}}
    path = folder / f"S{subject}.pkl"
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)  # the published files are Python 2 pickles, read as latin1
    return path


def test_dalia_layout_labels_acc_activity(tmp_path: Path) -> None:
    write_dalia(tmp_path, 1)
    write_dalia(tmp_path, 2)
    ws = load_dataset("ppg-dalia", tmp_path)
    n = len(window_labels())
    assert len(ws) == 2 * n and ws.subjects() == ["S1", "S2"]
    assert ws.channels == CHANNEL_NAMES_PPG_ACC
    np.testing.assert_allclose(ws.hr[:n], window_labels(), rtol=1e-6)
    assert np.mean(np.abs(peak_bpm(ws.x[:, 0]) - ws.hr) < 3) > 0.9
    # 1/64 g counts became g: the 0.5 g swing on x survives the band-pass, gravity on z does not
    assert 0.3 < ws.x[:, 1].std(axis=1).mean() < 0.4 and ws.x[:, 3].std() < 0.05
    assert ws.activity[0] == "sitting" and ws.activity[n - 1] == "walking"
    assert ws.provenance["dataset"] == "ppg-dalia" and len(ws.provenance["source_files"]) == 2
    assert all(len(f["sha256"]) == 64 for f in ws.provenance["source_files"])


def test_dalia_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "S1" / "S1.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps({"signal": {"wrist": {"BVP": Evil()}}}, protocol=2))
    with pytest.raises(DataError, match=r"S1\.pkl.*refused to load 'posix\.system'"):
        load_dataset("ppg-dalia", tmp_path)
    assert not marker.exists()


def test_safe_pickle_reads_arrays_in_every_protocol(tmp_path: Path) -> None:
    data = {"a": np.arange(6.0).reshape(3, 2), "b": [1, "x", (2.5, None)], "c": np.float32(3.0)}
    for proto in (2, 4, 5):
        path = tmp_path / f"p{proto}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=proto))
        out = load_pickle(path)
        np.testing.assert_array_equal(out["a"], data["a"])
        assert out["b"] == data["b"] and out["c"] == 3.0


def test_dalia_truncated_pickle(tmp_path: Path) -> None:
    path = write_dalia(tmp_path, 1)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"S1\.pkl.*corrupt pickle"):
        load_dataset("ppg-dalia", tmp_path)


def test_dalia_missing_key(tmp_path: Path) -> None:
    write_dalia(tmp_path, 3, drop_acc=True)
    with pytest.raises(DataError, match=r"S3\.pkl: missing key \['signal'\]\['wrist'\]\['ACC'\]"):
        load_dataset("ppg-dalia", tmp_path)


def test_nan_run_drops_exactly_the_windows_touching_it(tmp_path: Path) -> None:
    bvp = ppg_signal(64.0)
    bvp[int(50 * 64): int(53 * 64)] = np.nan  # 3 s gap at 50-53 s: windows starting at 44..52 s touch it
    write_dalia(tmp_path, 1, bvp=bvp)
    ws = load_dataset("ppg-dalia", tmp_path)
    assert ws.provenance["dropped_windows"]["nan_signal"] == 5
    assert len(ws) == len(window_labels()) - 5
    assert np.isfinite(ws.x).all()
    kept = np.setdiff1d(np.arange(len(window_labels())), np.arange(22, 27))
    np.testing.assert_allclose(ws.hr, window_labels()[kept], rtol=1e-6)  # survivors keep their own labels


def test_missing_labels_are_dropped_and_counted(tmp_path: Path) -> None:
    labels = window_labels()
    labels[[3, 10]] = np.nan
    labels[20] = 0.0  # "no beats" marker
    write_dalia(tmp_path, 1, labels=labels[:-4])  # and no labels at all for the last 4 windows
    ws = load_dataset("ppg-dalia", tmp_path)
    assert ws.provenance["dropped_windows"]["label_missing"] == 3 + 4
    assert len(ws) == len(labels) - 7
    keep = np.setdiff1d(np.arange(len(labels) - 4), [3, 10, 20])
    np.testing.assert_allclose(ws.hr, window_labels()[keep], rtol=1e-6)


# --- WildPPG ----------------------------------------------------------------------------------------------

def ecg_signal(fs: float, seconds: float = SECONDS, flat_from: float | None = None) -> np.ndarray:
    """R-waves (10 ms Gaussians) at beat times following ``hr_track``, plus small noise."""
    t = np.arange(int(seconds * fs)) / fs
    phase = np.cumsum(hr_track(t) / 60.0) / fs
    beats = np.searchsorted(phase, np.arange(1, int(phase[-1]) + 1))
    ecg = 0.02 * np.random.default_rng(1).standard_normal(len(t))
    for b in beats:
        ecg += np.exp(-0.5 * ((t - t[min(b, len(t) - 1)]) / 0.01) ** 2)
    if flat_from is not None:
        ecg[int(flat_from * fs):] = 0.0
    return ecg


def write_wildppg(root: Path, pid: str, fs: float = 128.0, with_acc: bool = True,
                  flat_ecg_from: float | None = None) -> Path:
    def sensor(v: np.ndarray, descr: str) -> dict:
        return {"v": v[:, None], "fs": np.array([[fs]]), "descr": descr}

    wrist = {"ppg_g": sensor(ppg_signal(fs), "green"), "ppg_ir": sensor(ppg_signal(fs), "infrared"),
             "ppg_r": sensor(ppg_signal(fs), "red"), "temperature": sensor(np.full(int(SECONDS * fs), 31.0), "C")}
    if with_acc:
        for axis, v in zip("xyz", motion_acc(fs)):
            wrist[f"acc_{axis}"] = sensor(v, f"acc {axis}")
    data = {"id": pid, "notes": "", "wrist": wrist, "head": {"ppg_g": sensor(ppg_signal(fs), "green")},
            "ankle": {"ppg_g": sensor(ppg_signal(fs), "green")},
            "sternum": {"ecg": sensor(ecg_signal(fs, flat_from=flat_ecg_from), "ecg"),
                        "ppg_g": sensor(ppg_signal(fs), "green")}}
    path = root / f"WildPPG_Part_{pid}.mat"
    scipy.io.savemat(str(path), data)
    return path


def test_wildppg_layout_ecg_labels(tmp_path: Path) -> None:
    write_wildppg(tmp_path, "an0")
    write_wildppg(tmp_path, "e61", flat_ecg_from=100.0)  # ECG lost for the last 20 s: no labels there
    ws = load_dataset("wildppg", tmp_path)
    assert ws.subjects() == ["an0", "e61"] and ws.channels == CHANNEL_NAMES_PPG_ACC
    n = len(window_labels())
    a = ws.recording == "WildPPG_Part_an0"
    assert a.sum() == n
    np.testing.assert_allclose(ws.hr[a], window_labels(), atol=1.5)  # R-peak HR matches the true HR
    assert np.mean(np.abs(peak_bpm(ws.x[:, 0]) - ws.hr) < 3) > 0.9
    # windows whose centred RR intervals fall after 100 s have fewer than 2 beats
    assert ws.provenance["dropped_windows"]["label_missing"] >= 5
    assert (~a).sum() == n - ws.provenance["dropped_windows"]["label_missing"]


def test_wildppg_missing_sensor_and_corrupt_file(tmp_path: Path) -> None:
    path = write_wildppg(tmp_path, "x1")
    data = {k: v for k, v in scipy.io.loadmat(str(path), simplify_cells=True).items() if not k.startswith("__")}
    del data["sternum"]["ecg"]
    scipy.io.savemat(str(path), data)
    with pytest.raises(DataError, match=r"WildPPG_Part_x1\.mat: missing sensor 'sternum\.ecg'"):
        load_dataset("wildppg", tmp_path)
    path.write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 50)
    with pytest.raises(DataError, match=r"WildPPG_Part_x1\.mat: cannot read MATLAB file"):
        load_dataset("wildppg", tmp_path)


# --- GalaxyPPG --------------------------------------------------------------------------------------------

T0_MS = 1_718_000_000_000


def write_galaxy(root: Path, pid: str, gap: tuple[float, float] | None = None) -> Path:
    rng = np.random.default_rng(int(pid[1:]))
    watch, polar = root / pid / "GalaxyWatch", root / pid / "PolarH10"
    watch.mkdir(parents=True)
    polar.mkdir()
    (root / pid / "E4").mkdir()
    t = np.arange(int(SECONDS * 25)) / 25.0
    t_ms = T0_MS + np.round(t * 1000 + rng.uniform(-4, 4, len(t)))  # the watch streams with jitter
    ppg = 2e5 + 3e3 * ppg_signal(25.0, rng=rng)
    acc = motion_acc(25.0) * ACC_COUNTS_PER_G
    keep = np.ones(len(t), bool) if gap is None else ~((t >= gap[0]) & (t < gap[1]))
    with open(watch / "PPG.csv", "w") as fh:
        fh.write("dataReceived,timestamp,ppg,status\n")
        fh.writelines(f"{int(m) + 500},{int(m)},{v:.1f},0\n" for m, v in zip(t_ms[keep], ppg[keep]))
    with open(watch / "ACC.csv", "w") as fh:
        fh.write("dataReceived,timestamp,x,y,z\n")
        fh.writelines(f"{int(m) + 500},{int(m)},{x:.0f},{y:.0f},{z:.0f}\n" for m, x, y, z in zip(t_ms, *acc))
    th = np.arange(int(SECONDS))
    with open(polar / "HR.csv", "w") as fh:
        fh.write("phoneTimestamp,sensorTimestamp,hr\n")
        fh.writelines(f"{T0_MS + POLAR_OFFSET_MS + int(s * 1000)},{s},{hr_track(s + 0.5):.2f}\n" for s in th)
    with open(root / pid / "Event.csv", "w") as fh:
        fh.write("timestamp,session,status\n")
        for name, a, b in (("baseline", 0, 50), ("walking", 60, 119)):
            fh.write(f"{T0_MS + a * 1000},{name},ENTER\n{T0_MS + b * 1000},{name},EXIT\n")
    return root / pid


def test_galaxyppg_layout_gap_and_sessions(tmp_path: Path) -> None:
    write_galaxy(tmp_path, "P01")
    write_galaxy(tmp_path, "P02", gap=(30.0, 33.0))
    ws = load_dataset("galaxyppg", tmp_path)
    assert ws.subjects() == ["P01", "P02"] and ws.channels == CHANNEL_NAMES_PPG_ACC
    p1 = ws.subject == "P01"
    n = int(p1.sum())
    assert n >= len(window_labels()) - 1
    np.testing.assert_allclose(ws.hr[p1], window_labels()[:n], atol=0.6)
    assert np.mean(np.abs(peak_bpm(ws.x[:, 0]) - ws.hr) < 3) > 0.9
    assert 0.3 < ws.x[p1, 1].std(axis=1).mean() < 0.4  # counts -> g
    assert ws.provenance["dropped_windows"]["nan_signal"] >= 5  # the 3 s gap in P02
    assert set(ws.activity) == {"baseline", "walking", "transition"}
    assert ws.activity[0] == "baseline" and ws.activity[n - 1] == "walking"


def test_galaxyppg_missing_file(tmp_path: Path) -> None:
    (write_galaxy(tmp_path, "P03") / "PolarH10" / "HR.csv").unlink()
    with pytest.raises(DataError, match=r"P03/PolarH10/HR\.csv: file is missing"):
        load_dataset("galaxyppg", tmp_path)


# --- generic CSV ------------------------------------------------------------------------------------------

def write_csv(path: Path, fs: float = 50.0, seconds: float = SECONDS, nan_hr: bool = False) -> Path:
    t = np.arange(int(seconds * fs)) / fs
    hr = hr_track(t)
    if nan_hr:
        hr[: int(20 * fs)] = np.nan  # no reference HR for the first 20 s
    acc = motion_acc(fs, seconds)
    rows = np.column_stack([t, ppg_signal(fs, seconds), acc.T, hr])
    np.savetxt(path, rows, delimiter=",", header="time,green,ax,ay,az,hr", comments="", fmt="%.6g")
    return path


def test_csv_with_hr_column_and_acc(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rec1.csv", nan_hr=True)
    ws = load_dataset("csv", path, ppg_column="green", fs=50, acc_columns="ax,ay,az", hr_column="hr",
                      time_column="time")
    assert ws.channels == CHANNEL_NAMES_PPG_ACC and ws.subjects() == ["rec1"]
    # windows with HR for under 3/4 of their span (those starting before 18 s) get no label, never a
    # mean over their last few seconds
    assert ws.provenance["dropped_windows"]["label_missing"] == 9
    assert abs(ws.hr[0] - window_labels()[9]) < 1.0  # HR known for 6 of its 8 s
    np.testing.assert_allclose(ws.hr[1:], window_labels()[10:], atol=0.2)
    assert np.mean(np.abs(peak_bpm(ws.x[:, 0]) - ws.hr) < 3) > 0.9


def test_csv_with_label_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rec.csv")
    labels = tmp_path / "labels.csv"
    np.savetxt(labels, window_labels()[:, None], header="bpm", comments="", fmt="%.3f")
    ws = load_dataset("csv", path, ppg_column="green", fs=50, labels_file=str(labels), labels_column="bpm")
    assert ws.channels == ("ppg",) and len(ws) == len(window_labels())
    np.testing.assert_allclose(ws.hr, window_labels(), atol=1e-3)


def test_csv_missing_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rec.csv")
    with pytest.raises(DataError, match=r"rec\.csv: missing column\(s\) 'pleth'"):
        load_dataset("csv", path, ppg_column="pleth", fs=50, hr_column="hr")


def test_implausible_or_wrong_sampling_rate(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rec.csv")
    with pytest.raises(DataError, match=r"rec\.csv: option fs: implausible sampling rate 50000"):
        load_dataset("csv", path, ppg_column="green", fs=50000, hr_column="hr")
    with pytest.raises(DataError, match=r"rec\.csv: option fs: implausible sampling rate 2\.0"):
        load_dataset("csv", path, ppg_column="green", fs=2, hr_column="hr")
    with pytest.raises(DataError, match=r"rec\.csv: sampling rate 64 Hz does not match the time column"):
        load_dataset("csv", path, ppg_column="green", fs=64, hr_column="hr", time_column="time")


def test_recording_shorter_than_one_window(tmp_path: Path) -> None:
    write_csv(tmp_path / "a_long.csv")
    write_csv(tmp_path / "b_short.csv", seconds=5.0)
    ws = load_dataset("csv", tmp_path, ppg_column="green", fs=50, hr_column="hr")
    assert ws.subjects() == ["a_long"]
    assert "shorter than one 8 s window" in ws.provenance["skipped_recordings"][str(tmp_path / "b_short.csv")]
    (tmp_path / "a_long.csv").unlink()
    with pytest.raises(DataError, match=r"b_short\.csv: recording is 5\.0 s long, shorter than one 8 s window"):
        load_dataset("csv", tmp_path, ppg_column="green", fs=50, hr_column="hr")


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'mimic'; known: .*ieee-spc2015"):
        load_dataset("mimic", tmp_path)
    assert {"ieee-spc2015", "bidmc", "ppg-dalia", "wildppg", "galaxyppg", "csv"} <= set(LOADERS)
