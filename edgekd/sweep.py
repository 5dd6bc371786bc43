"""Sweeps: a grid of teachers x students x strategies x folds x seeds, resumable, with one results table.

Config (TOML; see models/sweeps/)::

    data = "path/to/windows.npz"     # optional, relative to the config file; --data overrides; none = synthetic
    teachers = [4, 8, 12]            # teacher blocks (ResNet1D)
    students = [1, 2, 4, "tcn:6x16"] # ResNet1D blocks, or tcn:DEPTHxWIDTH (edgekd.tcn)
    strategies = ["scratch", "soft", "dkd", "feature", "dkd+feature"]  # a composition: summed terms
    folds = 2                        # K of a K-fold subject split, or "loso", "lodo", "holdout[:F]"; every fold runs
    seeds = [0]
    [train]                          # any other RunConfig field, shared by every run (epochs, lr, ...)
    epochs = 30
    [teacher]                        # the same fields for the teachers only, over [train] (epochs = 40)
    [params]                         # strategy hyper-parameters (RunConfig.params), e.g. T = 4

The plan: per fold and seed, each teacher is a from-scratch run of its size (trained once, reused by every
student), each student is trained from scratch once and distilled from every teacher with every other
strategy. A from-scratch run is one run whatever its role, so a student size equal to a teacher size is
trained once (unless ``[teacher]`` gives teachers their own settings). Each run's folder name is a function of
its resolved config, its teacher's run name and the data's content hash; edgekd.executor trains the runs (teachers
first; locally or on Ray, one by one or grouped) and skips a complete one, so re-running a killed sweep loses only
the runs that were in flight.

Results table (``results.csv`` + ``results.json``, rewritten atomically after every run) has one row per
complete run: ``RESULT_KEYS`` then every other scalar entry of its metrics.json.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekd.arch import parse_student, size_tag, student_label
from edgekd.atomic import write_json, write_text
from edgekd.errors import EdgekdError
from edgekd.evaluate import MAE_KEYS
from edgekd.losses import params_read, parse_strategy
from edgekd.runs import RunConfig, fold_specs, is_complete, model_entry, parse_fold_spec, read_metrics
from edgekd.tomlfile import read_toml
from edgekd.windowset import WindowSet, identity_hash

RESULTS_CSV = "results.csv"
RESULTS_JSON = "results.json"
RUNS_DIR = "runs"
TEACHER_CACHE = "teacher_cache"
# The columns every consumer (scaling, rank, plots) reads; teacher is empty for from-scratch runs.
# The MAE columns a results table can be ranked and fitted by (metrics.json of older runs lacks the later ones).
MAE_METRICS = MAE_KEYS
RESULT_KEYS = ("run", "student", "teacher", "strategy", "fold", "seed", "epochs", "in_channels", "role",
               "mae_argmax", "mae_expectation")
GRID_KEYS = {"data", "teachers", "students", "strategies", "folds", "seeds", "train", "teacher", "params"}
SCRATCH = "scratch"
# RunConfig fields added after sweeps were first written: at their default they stay out of the run
# name, so a sweep folder from an earlier edgekd resumes instead of retraining every run.
NAMED_ONLY_WHEN_SET: dict[str, Any] = {"label_sigma": 0.0, "init_from": None}


@dataclass
class SweepConfig:
    teachers: list[int]
    students: list[int | str]  # edgekd.arch student labels
    strategies: list[str]
    folds: int | str = 2  # edgekd.runs.fold_specs
    seeds: list[int] = field(default_factory=lambda: [0])
    train: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    data: Path | None = None
    teacher: dict[str, Any] = field(default_factory=dict)  # [train] settings of the teachers only


@dataclass(frozen=True)
class PlannedRun:
    name: str
    config: RunConfig
    teacher: str | None  # name of the teacher's run, or None when trained from scratch
    teacher_blocks: int | None = None
    role: str | None = None  # "teacher": trained with the [teacher] settings, for teaching only


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Parse and validate a sweep TOML; EdgekdError naming the file and the key on any problem."""
    path = Path(path)
    doc = read_toml(path, "sweep config", GRID_KEYS)

    def int_list(key: str, default: list[int] | None = None) -> list[int]:
        value = doc.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise EdgekdError(f"{path}: '{key}' must be a list of integers")
        return value

    strategies = doc.get("strategies", [SCRATCH])
    if not isinstance(strategies, list) or not strategies or not all(isinstance(s, str) for s in strategies):
        raise EdgekdError(f"{path}: 'strategies' must be a non-empty list of strategy names")
    for strategy in strategies:  # a composition ('dkd+feature', 'dkd=1,feature=0.5') must parse
        try:
            parse_strategy(strategy)
        except EdgekdError as exc:
            raise EdgekdError(f"{path}: 'strategies': {exc}") from None
    train, params, teacher = doc.get("train", {}), doc.get("params", {}), doc.get("teacher", {})
    if not isinstance(teacher, dict):
        raise EdgekdError(f"{path}: 'teacher' must be a table, [teacher], of the teachers' training settings (their "
                          f"sizes go in 'teachers')")
    if not isinstance(train, dict) or not isinstance(params, dict):
        raise EdgekdError(f"{path}: [train] and [params] must be tables")
    fixed = {"blocks", "family", "width", "strategy", "teachers", "fold", "seed", "params"}
    known = {f.name for f in fields(RunConfig)}
    for table, settings in (("train", train), ("teacher", teacher)):
        bad = sorted((set(settings) - known) | (set(settings) & fixed))
        if bad:
            raise EdgekdError(f"{path}: [{table}] cannot set {', '.join(bad)} (the grid sets blocks, strategy, "
                              f"teachers, fold, seed, and each student label its family and width; allowed: "
                              f"{', '.join(sorted(known - fixed))})")
    folds = doc.get("folds", 2)
    try:
        if folds not in ("loso", "lodo"):  # those two list the data's subjects / data sets when the sweep runs
            fold_specs(folds)
    except EdgekdError as exc:
        raise EdgekdError(f"{path}: 'folds': {exc}") from None
    students = doc.get("students")
    if not isinstance(students, list):
        raise EdgekdError(f"{path}: 'students' must be a list of ResNet block counts or FAMILY:DEPTHxWIDTH labels (tcn:6x16, spec:3x16)")
    for s in students:
        try:
            parse_student(s)
        except ValueError as exc:
            raise EdgekdError(f"{path}: 'students': {exc}") from None
    teachers = int_list("teachers", [])
    if not students:
        raise EdgekdError(f"{path}: 'students' must list at least one student size")
    if any(s != SCRATCH for s in strategies) and not teachers:
        raise EdgekdError(f"{path}: distillation strategies need 'teachers'")
    data = doc.get("data")
    if data is not None and not isinstance(data, str):
        raise EdgekdError(f"{path}: 'data' must be a path to a WindowSet .npz")
    if teacher and not teachers:
        raise EdgekdError(f"{path}: [teacher] sets the teachers' training, but 'teachers' lists none")
    sweep = SweepConfig(teachers=teachers, students=students, strategies=strategies, folds=folds,
                        seeds=int_list("seeds", [0]), train=train, params=params,
                        data=None if data is None else path.parent / data, teacher=teacher)
    if any(seed < 0 for seed in sweep.seeds):
        raise EdgekdError(f"{path}: 'seeds' must be non-negative integers")
    # The whole plan is checked before the first run trains: a bad student size or learning rate must not
    # surface after hours of teacher training.
    # [params] apply to the strategies that read them (a scratch run ignores T): each must be read by one.
    unread = sorted(set(params) - params_read(strategies))
    if unread:
        raise EdgekdError(f"{path}: [params] {', '.join(unread)} read by none of the strategies "
                          f"{', '.join(strategies)}")
    checks = [({**train, **parse_student(s), "strategy": parse_strategy(strategy),
                "params": params_for(strategy, params)}) for s in students for strategy in strategies]
    checks += [{**train, **teacher, "blocks": t} for t in teachers]
    for settings in checks:
        try:
            RunConfig(**settings).validate()
        except EdgekdError as exc:
            raise EdgekdError(f"{path}: {exc}") from None
    return sweep


def params_for(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    """The grid's [params] that ``strategy`` reads (so a scratch run is the same run whatever T the grid sets)."""
    read = params_read([strategy])
    return {k: v for k, v in params.items() if k in read}


def run_name(cfg: RunConfig, teacher: str | None, data_key: str) -> str:
    """Deterministic folder name: readable prefix + hash of (config without teacher paths, teacher run, data)."""
    d = cfg.to_dict()
    d.pop("teachers")
    d.pop("device")  # where a run trains does not change what it is
    for key, default in NAMED_ONLY_WHEN_SET.items():
        if d.get(key) == default:
            del d[key]
    blob = json.dumps({"config": d, "teacher": teacher, "data": data_key}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    kfold = parse_fold_spec(cfg.fold)[0] == "kfold"  # 1/2 -> 1of2; loso:ieee/S01 -> loso-ieee-S01
    fold = "of".join(cfg.fold.split("/")) if kfold else re.sub(r"[^A-Za-z0-9.]+", "-", cfg.fold)
    t = teacher.split("-")[0][1:] if teacher else "none"  # teacher names start with b<blocks>
    size = size_tag(model_entry(cfg))
    return f"{size}-{cfg.strategy_label()}-t{t}-f{fold}-s{cfg.seed}-{digest}"


def plan(sweep: SweepConfig, runs_root: Path, data_key: str, folds: list[str] | None = None) -> list[PlannedRun]:
    """Every run of the grid, teachers before the students that need them, duplicates removed. ``folds``: the
    fold specs (edgekd.runs.fold_specs of the sweep's folds and data; the data are needed for loso / lodo)."""
    out: dict[str, PlannedRun] = {}
    for seed in sweep.seeds:
        for fold in folds or fold_specs(sweep.folds):
            def make(student: int | str, strategy: str, teacher: PlannedRun | None,
                     teacher_only: dict[str, Any] | None = None) -> PlannedRun:
                """One run; ``teacher_only``: the [teacher] settings of a run that only teaches."""
                cfg = RunConfig(**{**sweep.train, **(teacher_only or {}), **parse_student(student),
                                   "strategy": parse_strategy(strategy), "seed": seed, "fold": fold,
                                   "params": params_for(strategy, sweep.params),
                                   "teachers": [str(runs_root / teacher.name)] if teacher else []})
                run = PlannedRun(run_name(cfg, teacher.name if teacher else None, data_key), cfg,
                                 teacher.name if teacher else None,
                                 teacher.config.blocks if teacher else None, "teacher" if teacher_only else None)
                return out.setdefault(run.name, run)

            teacher_runs = {t: make(t, SCRATCH, None, sweep.teacher) for t in sweep.teachers}
            for s in sweep.students:
                for strategy in sweep.strategies:
                    if strategy == SCRATCH:
                        make(s, SCRATCH, None)
                    else:
                        for t in sweep.teachers:
                            make(s, strategy, teacher_runs[t])
    return list(out.values())


def result_row(run: PlannedRun, metrics: dict[str, Any]) -> dict[str, Any]:
    """One results-table row: the grid coordinates, then every scalar metric."""
    row: dict[str, Any] = {
        "run": run.name, "student": student_label(model_entry(run.config)), "teacher": run.teacher_blocks,
        "strategy": run.config.strategy_label(), "fold": run.config.fold, "seed": run.config.seed,
        "epochs": run.config.epochs, "in_channels": run.config.in_channels, "role": run.role,
    }
    for k, v in metrics.items():
        if k not in row and (v is None or isinstance(v, (int, float, str))):
            row[k] = v
    return row


def write_results(out: Path, rows: list[dict[str, Any]]) -> None:
    """results.csv (columns: RESULT_KEYS, then the union of other keys) and results.json, atomically."""
    columns = list(RESULT_KEYS) + sorted({k for r in rows for k in r} - set(RESULT_KEYS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / RESULTS_CSV, buf.getvalue())
    write_json(out / RESULTS_JSON, rows)


def _number(text: str) -> Any:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.csv, each with exactly the header's fields (a short row means a cut-off file)."""
    reader = csv.reader(io.StringIO(path.read_text()))
    header = next(reader, None)
    if not header:
        return []
    rows = []
    for row in reader:
        if len(row) != len(header):
            raise EdgekdError(f"{path}: line {reader.line_num} has {len(row)} field(s), the header has "
                              f"{len(header)} (truncated or edited table)")
        rows.append({k: _number(v) for k, v in zip(header, row)})
    return rows


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results table (CSV or JSON, or a sweep folder holding results.csv), typed back to numbers."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_CSV
    if not path.is_file():
        raise EdgekdError(f"{path}: no results table (run `edgekd sweep` first)")
    try:
        rows = json.loads(path.read_text()) if path.suffix == ".json" else _csv_rows(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise EdgekdError(f"{path}: unreadable results table ({exc})") from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise EdgekdError(f"{path}: the results table is empty or not a list of rows")
    missing = [k for k in ("student", "teacher", "strategy", "mae_argmax") if k not in rows[0]]
    if missing:
        raise EdgekdError(f"{path}: not a sweep results table (missing columns: {', '.join(missing)})")
    for i, r in enumerate(rows, start=1):
        student, mae = r.get("student"), r.get("mae_argmax")
        try:
            parse_student(student)
        except ValueError:
            student = None
        if student is None or isinstance(mae, bool) or not isinstance(mae, (int, float)):
            raise EdgekdError(f"{path}: row {i} has no student (a block count, tcn:DxW or spec:DxW) and numeric "
                              f"'mae_argmax' (truncated or edited table); re-run `edgekd sweep` to rewrite it")
    for r in rows:
        if r.get("teacher") == "":
            r["teacher"] = None
    return rows


def collect(out: Path, runs: list[PlannedRun], current: set[str] | None = None) -> list[dict[str, Any]]:
    """Rows of the planned runs that are complete, in plan order; with ``current``, only the runs it names (a
    complete run whose teacher is being retrained is not a result of this sweep yet)."""
    root = out / RUNS_DIR
    return [result_row(r, read_metrics(root / r.name)) for r in runs
            if (current is None or r.name in current) and is_complete(root / r.name)]


def run_sweep(sweep: SweepConfig, ws: WindowSet, out: str | Path, backend: str = "local",
              progress: bool = True, grouping: str = "auto") -> dict[str, Any]:
    """Run every pending run of the grid with edgekd.executor (``grouping``: train same-shape runs as one network,
    see edgekd.executor.use_groups); returns counts and the results-table paths."""
    from tqdm import tqdm

    from edgekd.executor import Job, execute, pending

    out = Path(out)
    data_key = identity_hash(ws)
    runs = plan(sweep, (out / RUNS_DIR).resolve(), data_key, fold_specs(sweep.folds, ws))
    jobs = [Job(out / RUNS_DIR / r.name, r.config, data_key) for r in runs]
    todo = pending(jobs)
    already = len(runs) - len(todo)
    current = {r.name for r, j in zip(runs, jobs) if j not in todo}
    bar = tqdm(total=len(runs), initial=already, desc="sweep runs", unit="run", disable=None if progress else True,
               dynamic_ncols=True)

    def done(j: Job) -> None:
        current.add(j.folder.name)
        write_results(out, collect(out, runs, current))
        bar.set_postfix_str(j.folder.name[:40])
        bar.update(1)

    try:
        execute(ws, jobs, backend, grouping, done, teacher_cache=out / TEACHER_CACHE, todo=todo)
    finally:
        bar.close()
    rows = collect(out, runs, current)
    write_results(out, rows)
    return {"runs": len(runs), "skipped_complete": already, "trained": len(runs) - already,
            "results_csv": str(out / RESULTS_CSV), "results_json": str(out / RESULTS_JSON), "rows": len(rows)}
