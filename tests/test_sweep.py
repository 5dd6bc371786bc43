"""edgekd sweep: the plan, deterministic run names, resume after a kill, the results table, Ray backend."""

from __future__ import annotations

import json
import re
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import edgekd.sweep as sweep_mod
from edgekd.cli.main import main
from edgekd.errors import EdgekdError
from edgekd.sweep import RESULT_KEYS, SweepConfig, load_sweep_config, plan, read_results, run_sweep

REPO = Path(__file__).resolve().parent.parent
TINY = SweepConfig(teachers=[2], students=[1, 2], strategies=["scratch", "soft"], folds=2,
                   train={"epochs": 1, "batch_size": 64})


@pytest.fixture(scope="module")
def tiny_ws():
    from edgekd.data.synthetic import generate

    return generate(subjects=4, minutes=1.0, seed=3)


def test_plan_counts_dedups_and_orders(tmp_path):
    sweep = SweepConfig(teachers=[4, 8], students=[1, 4], strategies=["scratch", "soft", "dkd"], folds=2,
                        seeds=[0, 1])
    runs = plan(sweep, tmp_path, "data")
    # per fold and seed: teachers 4, 8; scratch students 1 (4 is the teacher run); 2 KD x 2 students x 2 teachers
    assert len(runs) == 2 * 2 * (2 + 1 + 8)
    assert len({r.name for r in runs}) == len(runs)
    names = [r.name for r in runs]
    assert all(names.index(r.teacher) < names.index(r.name) for r in runs if r.teacher)
    assert [r.name for r in plan(sweep, tmp_path / "elsewhere", "data")] == names  # not the folder's path
    assert [r.name for r in plan(sweep, tmp_path, "other data")] != names


def test_config_errors_name_the_file(tmp_path):
    bad = tmp_path / "s.toml"
    bad.write_text('students = [1]\nteachere = [4]\n')
    with pytest.raises(EdgekdError, match="unknown key.*teachere"):
        load_sweep_config(bad)
    bad.write_text('students = [1]\nteacher = [4]\n')  # sizes typed where the teachers' settings go
    with pytest.raises(EdgekdError, match="sizes go in 'teachers'"):
        load_sweep_config(bad)
    bad.write_text('students = [1]\nteachers = [4]\n[train]\nblocks = 3\n')
    with pytest.raises(EdgekdError, match=r"\[train\] cannot set blocks"):
        load_sweep_config(bad)
    bad.write_text('students = [1]\n[train]\nfamily = "tcn"\n')
    with pytest.raises(EdgekdError, match=r"\[train\] cannot set family.*student label its family"):
        load_sweep_config(bad)
    bad.write_text('students = [1]\n[train]\nsynthetic = 2\n')  # a RunConfig field to_dict leaves out at 0
    assert load_sweep_config(bad).train == {"synthetic": 2}
    bad.write_text('students = [1]\nstrategies = ["soft"]\n')
    with pytest.raises(EdgekdError, match="need 'teachers'"):
        load_sweep_config(bad)
    bad.write_text('teachers = [2]\nstudents = [1]\nstrategies = ["scratch", "soft"]\n[params]\ntau = 0.2\n')
    with pytest.raises(EdgekdError, match=r"\[params\] tau read by none of the strategies"):
        load_sweep_config(bad)


def test_grid_params_reach_only_the_strategies_that_read_them(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('teachers = [2]\nstudents = [1]\nstrategies = ["scratch", "soft"]\n[params]\nT = 2\n')
    runs = plan(load_sweep_config(path), tmp_path, "data")
    by_strategy = {r.config.strategy_label(): r.config.params for r in runs if r.config.blocks == 1}
    assert by_strategy == {"scratch": {}, "soft": {"T": 2}}
    path.write_text('teachers = [2]\nstudents = [1]\nstrategies = ["scratch", "soft"]\n[params]\nT = 3\n')
    other = {r.name for r in plan(load_sweep_config(path), tmp_path, "data")}
    assert {r.name for r in runs if r.config.strategy == "scratch"} <= other  # scratch runs are reused


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "models" / "sweeps").glob("*.toml")
                                         if not p.name.startswith("lodo-")))  # lodo-*: study plans (test_report)
def test_shipped_sweeps_parse(name):
    assert load_sweep_config(REPO / "models" / "sweeps" / name).students


def test_killed_sweep_resumes_without_duplicates(tmp_path, tiny_ws, monkeypatch):
    torch.set_num_threads(1)
    from edgekd import executor

    real, calls = executor.train_one, []

    def dies_on_third(ws, job, folder, progress=False, teacher_cache=None):
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C or a kill leaves: runs 1-2 done, run 3 in flight
        calls.append(folder.name)
        return real(ws, job, folder, progress, teacher_cache)

    monkeypatch.setattr(executor, "train_one", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(TINY, tiny_ws, tmp_path, progress=False)
    assert len(read_results(tmp_path)) == 2
    monkeypatch.setattr(executor, "train_one", real)
    summary = run_sweep(TINY, tiny_ws, tmp_path, progress=False)
    # teacher 2 (= scratch 2), scratch 1, soft 1 and soft 2 from teacher 2: 4 runs per fold
    assert summary["runs"] == 8 and summary["skipped_complete"] == 2 and summary["trained"] == 6
    rows = read_results(tmp_path)
    assert len(rows) == 8 and len({r["run"] for r in rows}) == 8
    assert list(rows[0])[:len(RESULT_KEYS)] == list(RESULT_KEYS)
    soft = [r for r in rows if r["strategy"] == "soft"]
    assert {r["teacher"] for r in soft} == {2} and all(r["mae_argmax"] > 0 for r in rows)
    assert [r["run"] for r in json.loads((tmp_path / "results.json").read_text())] == [r["run"] for r in rows]
    assert run_sweep(TINY, tiny_ws, tmp_path, progress=False)["trained"] == 0
    # A run whose metrics.json is lost (killed while writing) is the only one redone.
    next((tmp_path / "runs").glob("b1-soft-*")).joinpath("metrics.json").unlink()
    assert run_sweep(TINY, tiny_ws, tmp_path, progress=False)["trained"] == 1


def test_cli_sweep_json(tmp_path, tiny_ws, capsys):
    data = tiny_ws.save(tmp_path / "ws.npz")
    cfg = tmp_path / "s.toml"
    cfg.write_text('teachers = []\nstudents = [1]\nstrategies = ["scratch"]\nfolds = 2\n[train]\nepochs = 1\n')
    assert main(["sweep", str(cfg), "--data", str(data), "--out", str(tmp_path / "o"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 2
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2


def _kill_one_task_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker seen running an edgekd task (its process title is ray::_ray_task)."""
    import signal

    while not stop.is_set() and not killed:
        for proc in Path("/proc").iterdir():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if proc.name.isdigit() and cmdline.startswith(b"ray::_ray_task"):
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return
        stop.wait(0.02)


def test_ray_backend_needs_no_shared_disk_and_survives_a_killed_worker(tmp_path, tiny_ws, monkeypatch):
    """A 2-node local Ray cluster whose workers run in another folder than the driver: tasks get the data and
    their teachers' runs as objects and return run folders, which the driver writes; one worker is killed
    mid-task, Ray retries it, and the sweep completes with every run written once, resumable by `local`."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    workers_dir, driver_dir = tmp_path / "workers", tmp_path / "driver"
    workers_dir.mkdir()
    driver_dir.mkdir()
    monkeypatch.chdir(workers_dir)  # the nodes (raylets, workers) start here
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    stop, killed = threading.Event(), []
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        monkeypatch.chdir(driver_dir)
        sweep = SweepConfig(teachers=[2], students=[1], strategies=["scratch", "soft"], folds=2,
                            train={"epochs": 3})
        killer = threading.Thread(target=_kill_one_task_worker, args=(stop, killed))
        killer.start()
        summary = run_sweep(sweep, tiny_ws, Path("sweep"), backend="ray", progress=False)
    finally:
        stop.set()
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no task worker was seen running, so none was killed"
    assert summary["trained"] == 6 and len(read_results(driver_dir / "sweep")) == 6
    runs = sorted(p.name for p in (driver_dir / "sweep" / "runs").iterdir())
    assert len(runs) == 6 and not any(n.startswith(".") for n in runs)  # written once, no partial folders left
    assert not any(workers_dir.rglob("config.json"))  # nothing landed where the workers run
    soft = next(driver_dir.glob("sweep/runs/b1-soft-*/config.json"))
    assert json.loads(soft.read_text())["teachers"][0].startswith(str((driver_dir / "sweep" / "runs").resolve()))
    assert run_sweep(sweep, tiny_ws, driver_dir / "sweep", progress=False)["trained"] == 0  # local resumes them

def test_teacher_table_trains_the_teachers_only_with_their_settings(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('teachers = [4]\nstudents = [1, 4]\nstrategies = ["scratch", "dkd"]\n'
                    '[train]\nepochs = 3\n[teacher]\nepochs = 7\n')
    runs = plan(load_sweep_config(path), tmp_path, "data")
    teachers = {r.teacher for r in runs if r.teacher}
    assert {r.config.epochs for r in runs if r.name in teachers} == {7}
    assert {r.config.epochs for r in runs if r.name not in teachers} == {3}
    # a 4-block student from scratch is now its own run, not the teacher's
    assert sum(r.config.blocks == 4 and r.config.strategy == "scratch" for r in runs) == 2 * 2
    for text, problem in (('students = [1]\n[teacher]\nepochs = 7\n', "lists none"),
                          ('teachers = [4]\nstudents = [1]\n[teacher]\nblocks = 7\n', "[teacher] cannot set blocks"),
                          ('teachers = [4]\nstudents = [1]\n[teacher]\nlr = -1\n', "lr")):
        path.write_text(text)
        with pytest.raises(EdgekdError, match=re.escape(problem)):
            load_sweep_config(path)


def test_a_composition_is_a_strategy_of_the_grid(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('teachers = [2]\nstudents = [1]\nstrategies = ["dkd+feature", "dkd=1,feature=0.5"]\n'
                    '[params]\nbeta = 4\n')
    runs = [r for r in plan(load_sweep_config(path), tmp_path, "data") if r.teacher]
    assert {json.dumps(r.config.strategy, sort_keys=True) for r in runs} == {
        '{"dkd": 1.0, "feature": 1.0}', '{"dkd": 1.0, "feature": 0.5}'}
    assert {r.config.strategy_label() for r in runs} == {"dkd+feature", "dkd+feature=0.5"} and len({r.name for r in runs}) == 4
    assert all(r.config.params == {"beta": 4} for r in runs)  # DKD's parameter reaches the composition
    for bad, problem in (('"dkd=x+feature"', "weight 'x' of 'dkd' is not a number"), ('"dkd+nope"', "nope")):
        path.write_text(f'teachers = [2]\nstudents = [1]\nstrategies = [{bad}]\n')
        with pytest.raises(EdgekdError, match=re.escape(problem)):
            load_sweep_config(path)


def test_folds_may_be_generated_from_the_data(tmp_path, tiny_ws):
    from edgekd.runs import fold_specs

    path = tmp_path / "g.toml"
    path.write_text('students = [1]\nfolds = "loso"\n')
    sweep = load_sweep_config(path)
    specs = fold_specs(sweep.folds, tiny_ws)
    assert specs == [f"loso:{s}" for s in tiny_ws.subjects()] and len(specs) >= 2
    runs = plan(sweep, tmp_path, "data", specs)
    assert sorted(r.config.fold for r in runs) == sorted(specs)  # one run per held-out subject
    assert all("-floso-" in r.name for r in runs)
    with pytest.raises(EdgekdError, match="needs the data"):
        plan(sweep, tmp_path, "data")
    with pytest.raises(EdgekdError, match="at least two data sets"):
        fold_specs("lodo", tiny_ws)  # one data set: nothing to hold out against
    assert fold_specs("holdout:0.3") == ["holdout:0.3"] and fold_specs(3) == ["1/3", "2/3", "3/3"]
    for bad in ("1", '"kfold"', '"holdout:2"', "true"):
        path.write_text(f'students = [1]\nfolds = {bad}\n')
        with pytest.raises(EdgekdError, match=r"'folds': .*(integer K >= 2|between 0 and 1)"):
            load_sweep_config(path)


def test_a_loso_sweep_trains_and_tables_every_subject(tmp_path, tiny_ws, capsys):
    path = tmp_path / "g.toml"
    path.write_text('students = [1]\nfolds = "loso"\n[train]\nepochs = 1\ndevice = "cpu"\n')
    data = tmp_path / "w.npz"
    tiny_ws.save(data)
    assert main(["sweep", str(path), "--data", str(data), "--out", str(tmp_path / "s"), "--json"]) == 0
    rows = read_results(tmp_path / "s")
    assert sorted(r["fold"] for r in rows) == sorted(f"loso:{s}" for s in tiny_ws.subjects())


def test_results_keep_roles_weights_and_clean_run_names(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('teachers = [2]\nstudents = [1, 2]\nstrategies = ["scratch", "dkd+feature", "dkd=1,feature=0.5"]\n'
                    '[teacher]\nepochs = 7\n')
    runs = plan(load_sweep_config(path), tmp_path, "data")
    rows = [sweep_mod.result_row(r, {"mae_argmax": 1.0}) for r in runs]
    labels = {(r["student"], r["strategy"], r["role"]) for r in rows}
    assert (2, "scratch", "teacher") in labels and (2, "scratch", None) in labels  # the teacher is its own row
    assert {(1, "dkd+feature", None), (1, "dkd+feature=0.5", None)} <= labels  # weights stay in the label
    from edgekd.scaling import fit_groups

    scratch = [f for f in fit_groups(rows) if f["strategy"] == "scratch"]  # the teacher-only run is no student
    assert scratch[0]["points"] == 4 and scratch[0]["sizes"] == [1, 2]  # 2 sizes x 2 folds, no teacher run
    path.write_text('teachers = [2]\nstudents = [1]\nstrategies = ["dkd=1,dkd=2"]\n')
    with pytest.raises(EdgekdError, match="named twice"):
        load_sweep_config(path)
    from dataclasses import replace

    from edgekd.data.synthetic import generate
    from edgekd.runs import fold_specs

    ws = generate(subjects=2, minutes=1.0, seed=3)
    ws = replace(ws, subject=np.array([f"set/{s}" for s in ws.subject]))  # merged data's subject ids
    path.write_text('students = [1]\nfolds = "loso"\n')
    names = [r.name for r in plan(load_sweep_config(path), tmp_path, "data", fold_specs("loso", ws))]
    assert all(":" not in n and "/" not in n for n in names) and len(names) == 2
