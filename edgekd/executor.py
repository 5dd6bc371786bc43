"""One executor for every command that trains: `distill`, `sweep` and `lodo` each plan ``Job``s (a run's config,
the windows it trains on, its folder), and ``execute`` trains the ones not already done, teachers before the runs
they teach, one at a time or as groups of same-shape runs (edgekd.grouped), in this process or as Ray tasks.

A job is done when its folder holds a complete run of exactly its config (resolved; where it trained is not part
of what it is) on exactly its windows (identity hash), taught by exactly its teachers' weights: ``reusable``. A
killed execution therefore resumes where it stopped, and changed arguments or re-prepared data retrain instead of
reusing a folder that merely exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.atomic import write_json
from edgekd.errors import EdgekdError
from edgekd.layout import CONFIG, read_json_object
from edgekd.runs import RunConfig, is_complete, read_config, read_metrics
from edgekd.windowset import WindowSet, identity_hash

GROUPING = ("auto", "on", "off")
MAX_GROUP = 16  # members per grouped network: enough to fill a GPU with small students, bounded memory
GPU_SHARE = 0.25  # of a GPU per Ray task on a cluster with GPUs: small students share one GPU


@dataclass(frozen=True)
class Job:
    """One planned training run: ``config`` trained on ``rows`` of the plan's windows (None: all of them) into
    ``folder``. ``data_key`` is the identity hash of those windows (``job``, below, computes it)."""

    folder: Path
    config: RunConfig
    data_key: str
    rows: np.ndarray | None = field(default=None, compare=False, repr=False)

    def data(self, ws: WindowSet) -> WindowSet:
        return ws if self.rows is None else ws.subset(self.rows)


def job(ws: WindowSet, cfg: RunConfig, folder: str | Path, rows: np.ndarray | None = None) -> Job:
    """The job that trains ``cfg`` on ``rows`` of ``ws`` (None: all) into ``folder``."""
    return Job(Path(folder), cfg, identity_hash(ws if rows is None else ws.subset(rows)), rows)


def reusable(data_key: str, cfg: RunConfig, folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete run of ``cfg`` on the windows ``data_key`` names, taught by the teachers'
    current weights (a retrained teacher means another student)."""
    from edgekd.train import resolved_config, teacher_weights

    folder = Path(folder)
    if not is_complete(folder):
        return False
    try:
        stored = read_json_object(folder / CONFIG)
        data, taught = stored.get("data"), stored.get("teacher")
        return (isinstance(data, dict) and data.get("hash") == data_key
                and replace(read_config(folder), device="cpu") == resolved_config(replace(cfg, device="cpu"))
                and not (isinstance(taught, dict) and "weights" in taught
                         and taught["weights"] != teacher_weights(cfg.teachers))
                # runs from before init weights were recorded are judged by the path alone
                and not ("init_weights" in stored and cfg.init_from
                         and stored["init_weights"] != teacher_weights([cfg.init_from])[0]))
    except EdgekdError:  # an unreadable config or a teacher that is not there (yet): not this run
        return False


def pending(jobs: list[Job]) -> list[Job]:
    """The jobs to train: not ``reusable``, or reading a job that is (its teacher will change under it)."""
    todo: set[str] = set()
    for stage in stages(jobs):
        for j in stage:
            if (any(_key(r) in todo for r in _reads(j.config))
                    or not reusable(j.data_key, j.config, j.folder)):
                todo.add(_key(j.folder))
    return [j for j in jobs if _key(j.folder) in todo]


def _reads(cfg: RunConfig) -> list[str]:
    """The model folders (or files) a run reads: its teachers and its starting weights."""
    return [*cfg.teachers, *([cfg.init_from] if cfg.init_from else [])]


def _key(path: str | Path) -> str:
    """One spelling of a model folder however a plan names it (relative, through a symlink, or its weights file)."""
    p = Path(path)
    return str((p.parent if p.suffix == ".safetensors" else p).resolve())


def stages(jobs: list[Job]) -> list[list[Job]]:
    """The jobs in order of what they read: a job comes in a later stage than every job whose folder it names as a
    teacher (or ``init_from``); jobs inside a stage are independent. Each job goes as late as it can (a student
    from scratch trains beside the distilled students, not beside the teachers), so a stage holds as many
    same-shape runs as possible to train as groups. A cycle is an EdgekdError."""
    keys = {_key(j.folder) for j in jobs}
    readers: dict[str, list[Job]] = {}
    for j in jobs:
        for r in {_key(r) for r in _reads(j.config)} & keys:
            readers.setdefault(r, []).append(j)
    height: dict[str, int] = {}  # the longest chain of jobs that read this one, and read those, ...

    def up(j: Job, seen: tuple[str, ...] = ()) -> int:
        key = _key(j.folder)
        if key in seen:
            raise EdgekdError(f"{j.folder}: the plan's runs teach each other in a cycle")
        if key not in height:
            height[key] = 1 + max((up(r, (*seen, key)) for r in readers.get(key, [])), default=-1)
        return height[key]

    top = max((up(j) for j in jobs), default=0)
    out: list[list[Job]] = [[] for _ in range(top + 1)]
    for j in jobs:
        out[top - height[_key(j.folder)]].append(j)
    return [s for s in out if s]


Done = Callable[[Job], None]
Backend = Callable[[WindowSet, list[Job], Done, str, bool, "Path | None"], None]


def check_grouping(grouping: str) -> None:
    if grouping not in GROUPING:
        raise EdgekdError(f"unknown grouping '{grouping}'; choose from {', '.join(GROUPING)}")


def use_groups(grouping: str, jobs: list[Job], gpus: bool) -> bool:
    """Whether a stage's runs train in groups: ``on``/``off``, or ``auto`` = when they train on a GPU (one small
    student leaves a GPU idle; on CPU a group is no faster, tests/benchmarks/sweep_throughput.py). ``gpus``:
    whether the machines the runs train on have one (the driver of a cluster may not)."""
    check_grouping(grouping)
    if grouping != "auto":
        return grouping == "on"
    return any(j.config.device.startswith("cuda") or (j.config.device == "auto" and gpus) for j in jobs)


def batches(ws: WindowSet, jobs: list[Job], grouped: bool) -> list[list[Job]]:
    """A stage's jobs as the groups that train together (same windows and edgekd.grouped.group_key), at most
    MAX_GROUP each; one job per batch when not grouped."""
    if not grouped:
        return [[j] for j in jobs]
    from edgekd.grouped import group_key

    by_key: dict[tuple[str, str], list[Job]] = {}
    for j in jobs:
        by_key.setdefault((j.data_key, group_key(j.data(ws), j.config)), []).append(j)
    return [g[i:i + MAX_GROUP] for g in by_key.values() for i in range(0, len(g), MAX_GROUP)]


def train_one(ws: WindowSet, j: Job, folder: Path, progress: bool = False,
              teacher_cache: Path | None = None) -> dict[str, Any]:
    """Train one job into ``folder`` (its own, or a worker's private copy of it)."""
    from edgekd.train import train_run

    return train_run(j.data(ws), j.config, folder, progress=progress, teacher_cache=teacher_cache)


def train_batch(ws: WindowSet, batch: list[Job], folders: list[Path], progress: bool = False,
                teacher_cache: Path | None = None) -> tuple[list[Job], list[EdgekdError]]:
    """Train one batch (a job alone, or a group as one network) into ``folders``: (the jobs that completed, the
    errors of those that did not). A failed run's folder stays incomplete, so a resumed execution retrains it."""
    if len(batch) == 1:
        try:
            train_one(ws, batch[0], folders[0], progress, teacher_cache)
        except EdgekdError as exc:
            return [], [exc]
        return batch, []
    from edgekd.grouped import train_group

    results = train_group(batch[0].data(ws), [j.config for j in batch], folders, progress=False,
                          teacher_cache=teacher_cache)
    return ([j for j, m in zip(batch, results) if not isinstance(m, EdgekdError)],
            [m for m in results if isinstance(m, EdgekdError)])


def local_backend(ws: WindowSet, jobs: list[Job], done: Done, grouping: str = "off", progress: bool = False,
                  teacher_cache: Path | None = None) -> None:
    """One run (or one group) at a time in this process (teacher outputs stay in the in-memory cache); the first
    error stops the execution after its batch."""
    import torch

    for batch in batches(ws, jobs, use_groups(grouping, jobs, torch.cuda.is_available())):
        completed, errors = train_batch(ws, batch, [j.folder for j in batch], progress, teacher_cache)
        for j in completed:
            done(j)
        if errors:
            raise errors[0]


def ray_backend(ws: WindowSet, jobs: list[Job], done: Done, grouping: str = "off", progress: bool = False,
                teacher_cache: Path | None = None) -> None:
    """Each run (or group) a Ray task (the optional ``ray`` extra) on a running cluster, else a local one. No
    shared disk: a task gets the WindowSet by object reference and the run folders it reads (teachers,
    ``init_from``) by value, trains in its own temporary folder and returns its run folders' files, which the
    driver writes into place (each folder renamed into place whole). A worker that dies mid-task leaves nothing
    behind; Ray retries the task, and a run is written once, by the driver. A failed run or task does not discard
    the others: every finished run is written, then the first error is raised. (``progress`` and the on-disk
    teacher cache stay on the driver: the workers have neither.)"""
    try:
        import ray
    except ImportError:
        raise EdgekdError("--backend ray needs Ray: pip install 'edgekd[ray]'") from None
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    gpu_cluster = ray.cluster_resources().get("GPU", 0) > 0
    remote = ray.remote(num_gpus=GPU_SHARE if gpu_cluster and use_groups("auto", jobs, True) else 0,
                        max_retries=3)(_ray_task)
    ws_ref = ray.put(ws)
    inputs: dict[str, Any] = {}  # path -> object ref of its files, put once for every task that reads it
    by_ref = {}
    for batch in batches(ws, jobs, use_groups(grouping, jobs, gpu_cluster)):
        reads = {r for j in batch for r in _reads(j.config)}
        for path in reads - set(inputs):
            inputs[path] = ray.put(read_model_files(Path(path)))
        by_ref[remote.remote(ws_ref, batch, {path: inputs[path] for path in reads})] = batch
    waiting, errors = list(by_ref), []
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        try:
            files, failed = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - a task that failed for good (retries spent); the rest go on
            errors.append(exc if isinstance(exc, EdgekdError) else EdgekdError(f"ray task failed: {exc}"))
            continue
        errors += [EdgekdError(e) for e in failed]
        for i, j in enumerate(by_ref[ready[0]]):
            if i in files:
                write_run_files(j.folder, files[i])
                done(j)
    if errors:
        raise errors[0]


def read_model_files(path: Path) -> dict[str, bytes]:
    """The files a run reads from another model: a run or artifact folder (flat, as edgekd writes them), or one
    checkpoint file."""
    if path.is_file():
        return {path.name: path.read_bytes()}
    if not path.is_dir():
        raise EdgekdError(f"{path}: no such run, artifact or checkpoint")
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def write_run_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a run folder a worker returned: built beside it, then renamed into place (an old incomplete
    folder is replaced only once the new one is whole)."""
    import shutil
    import tempfile

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ray_task(ws: WindowSet, batch: list[Job], reads: dict[str, Any]) -> tuple[dict[int, dict[str, bytes]], list[str]]:
    """Train ``batch`` in a private temporary folder (the models it reads written there from ``reads``: planned
    path -> files) and return (each completed run folder's files by its place in the batch, the errors of the
    others); config.json records the paths the driver planned."""
    import tempfile

    import ray
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="edgekd-task-") as tmp:
        work = Path(tmp)
        local: dict[str, str] = {}
        for i, (path, ref) in enumerate(sorted(reads.items())):
            files = ray.get(ref)  # object refs inside an argument are not resolved by Ray
            folder = work / "inputs" / str(i)
            folder.mkdir(parents=True)
            for file, data in files.items():
                (folder / file).write_bytes(data)
            local[path] = str(folder / Path(path).name) if Path(path).suffix == ".safetensors" else str(folder)
        mine = [replace(j, config=replace(j.config, teachers=[local[t] for t in j.config.teachers],
                                          init_from=local.get(j.config.init_from, j.config.init_from)))
                for j in batch]
        folders = [work / "runs" / str(i) for i in range(len(batch))]
        completed, errors = train_batch(ws, mine, folders)
        finished = {id(j) for j in completed}
        out = {}
        for i, (planned, j) in enumerate(zip(batch, mine)):
            if id(j) not in finished:
                continue
            config = json.loads((folders[i] / CONFIG).read_text())
            config["teachers"], config["init_from"] = list(planned.config.teachers), planned.config.init_from
            write_json(folders[i] / CONFIG, config)
            out[i] = read_model_files(folders[i])
        return out, [str(e) for e in errors]


BACKENDS: dict[str, Backend] = {"local": local_backend, "ray": ray_backend}


def execute(ws: WindowSet, jobs: list[Job], backend: str = "local", grouping: str = "auto",
            done: Done | None = None, progress: bool = False, teacher_cache: Path | None = None,
            todo: list[Job] | None = None) -> list[Job]:
    """Train every job of ``jobs`` that is not done (``todo``: ``pending(jobs)``, when the caller has it already),
    stage by stage; ``done`` is called after each run is written. ``progress``: each run's own epoch bar (local
    backend). Returns the jobs it trained."""
    if backend not in BACKENDS:
        raise EdgekdError(f"unknown backend '{backend}'; choose from {', '.join(BACKENDS)}")
    check_grouping(grouping)
    todo = pending(jobs) if todo is None else todo
    for stage in stages(todo):
        BACKENDS[backend](ws, stage, done or (lambda j: None), grouping, progress, teacher_cache)
    return todo


def metrics_of(j: Job) -> dict[str, Any]:
    """The metrics of a job ``execute`` finished; EdgekdError when it is not done (a plan missed it)."""
    if not reusable(j.data_key, j.config, j.folder):
        raise EdgekdError(f"{j.folder}: not a complete run of its planned config and data")
    return read_metrics(j.folder)
