"""Generic CSV recordings, and the column reader the CSV-based loaders (BIDMC, GalaxyPPG) share.

``root`` is one ``.csv`` file or a folder of them; each file is one recording of one subject (both named by the file stem).
The user names the columns and gives the sampling rate::

    edgekd data prepare --dataset csv --root rec.csv --out rec.npz \\
        --option ppg_column=green --option fs=64 --option acc_columns=ax,ay,az --option hr_column=hr

Labels come either from ``hr_column`` (a per-sample HR series, averaged over each 8 s window) or from
``labels_file`` (a CSV with one HR per 8 s / 2 s window in column ``labels_column``, default ``hr``,
row i = window i). ACC columns must already be in g (scale them with ``acc_scale`` otherwise).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgekd.data.recording import Tally, check_fs, finish, labels_from_series, window_recording
from edgekd.errors import DataError
from edgekd.windowset import WindowSet


def read_columns(path: Path, names: Sequence[str]) -> dict[str, np.ndarray]:
    """Numeric columns of a CSV by header name (surrounding spaces ignored; empty or 'NaN' cells -> NaN)."""
    try:
        with open(path, newline="") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if not header:
        raise DataError(f"{path}: empty CSV file (no header)")
    cols = [h.strip() for h in header]
    missing = [n for n in names if n.strip() not in cols]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(repr(m) for m in missing)} "
                        f"(found: {', '.join(cols)})")
    idx = [cols.index(n.strip()) for n in names]
    try:  # the fast path reads every field, so a row with too many or too few fails here too
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
        if table.shape[1] != len(cols):
            raise ValueError("field count differs from the header")
        data = table[:, idx]
    except ValueError:
        data = _read_rows(path, idx, len(cols))
    if data.shape[0] == 0:
        raise DataError(f"{path}: no data rows")
    return {n: data[:, i] for i, n in enumerate(names)}


def _read_rows(path: Path, idx: list[int], n_fields: int) -> np.ndarray:
    """The slow, careful parser: empty, 'NaN' or non-numeric cells become NaN (their windows are dropped
    and counted later); a row with the wrong number of fields is refused by line number, never skipped,
    since skipping it would shift every later sample against its label."""
    rows: list[list[float]] = []
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if not row:
                    continue  # a blank line carries no sample
                if len(row) != n_fields:
                    raise DataError(f"{path}: line {reader.line_num} has {len(row)} field(s), the header has "
                                    f"{n_fields}; fix or remove the line")
                rows.append([_cell(row[i]) for i in idx])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(idx))


def _cell(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def check_time_column(t: np.ndarray, fs: float, source: str) -> None:
    """Refuse a stated sampling rate that the file's own time column contradicts by more than 2%.

    Uses the mean step over the whole file: time columns rounded to a few decimals (BIDMC) make single
    steps jitter while their average stays exact."""
    t = t[np.isfinite(t)]
    if len(t) < 2:
        return
    step = float(t[-1] - t[0]) / (len(t) - 1)
    if step <= 0 or abs(step * fs - 1) > 0.02:
        rate = f"{1 / step:g} Hz" if step > 0 else "not increasing"
        raise DataError(f"{source}: sampling rate {fs:g} Hz does not match the time column (mean step "
                        f"{step:g} s: {rate})")


def _number(name: str, value: object, root: Path) -> float:
    """A finite number from a loader option (``--option fs=abc`` is refused here, not deep in NumPy)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{root}: option {name} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise DataError(f"{root}: option {name} must be a finite number, got {value!r}")
    return number


def _parse_names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v) for v in value]


def load(root: Path, *, ppg_column: str | None = None, fs: float | None = None,
         acc_columns: str | Sequence[str] | None = None, acc_scale: float = 1.0, hr_column: str | None = None,
         labels_file: str | None = None, labels_column: str = "hr", time_column: str | None = None,
         progress: bool = False) -> WindowSet:
    """Recordings in CSV files with user-named columns (see the module docstring)."""
    from tqdm import tqdm

    if ppg_column is None or fs is None:
        raise DataError("csv dataset needs --option ppg_column=NAME and --option fs=HZ")
    if (hr_column is None) == (labels_file is None):
        raise DataError("csv dataset needs exactly one of --option hr_column=NAME or --option labels_file=PATH")
    fs = check_fs(_number("fs", fs, root), f"{root}: option fs")
    acc_scale = _number("acc_scale", acc_scale, root)
    if acc_scale == 0:
        raise DataError(f"{root}: option acc_scale must not be 0")
    # Column names are text even when they look like numbers (--option ppg_column=1 names a column "1").
    ppg_column, labels_column = str(ppg_column), str(labels_column)
    hr_column = None if hr_column is None else str(hr_column)
    time_column = None if time_column is None else str(time_column)
    acc_names = _parse_names(acc_columns)
    if acc_names and len(acc_names) != 3:
        raise DataError(f"acc_columns must name 3 columns (x, y, z), got {acc_names}")
    files = [root] if root.is_file() else sorted(root.glob("*.csv"))
    if labels_file is not None and len(files) != 1:
        raise DataError(f"{root}: labels_file works with exactly one CSV recording, found {len(files)}")
    if not files:
        raise DataError(f"{root}: no .csv files found")
    tally, sets = Tally(), []
    for path in tqdm(files, desc="csv", unit="rec", disable=None if progress else True):
        names = [ppg_column, *acc_names] + ([hr_column] if hr_column else []) + ([time_column] if time_column else [])
        cols = read_columns(path, names)
        tally.add_file(path, path.parent)
        if time_column:
            check_time_column(cols[time_column], fs, str(path))
        n = len(cols[ppg_column])
        if hr_column:
            labels = labels_from_series(np.arange(n) / fs, cols[hr_column], n / fs)
        else:
            lab_path = Path(str(labels_file))
            labels = read_columns(lab_path, [labels_column])[labels_column]
            tally.add_file(lab_path, lab_path.parent)
        acc = np.vstack([cols[a] for a in acc_names]) * acc_scale if acc_names else None
        sets.append(window_recording(cols[ppg_column][None], fs, labels, acc=acc, subject=path.stem,
                                     recording=path.stem, source=str(path), tally=tally))
    options = {"ppg_column": ppg_column, "fs": fs, "acc_columns": acc_names, "acc_scale": acc_scale,
               "hr_column": hr_column, "labels_file": labels_file, "labels_column": labels_column,
               "time_column": time_column}
    return finish("csv", root, sets, tally, options)
