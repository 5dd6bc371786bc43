"""edgekd.executor: the one planner/executor distill, sweep and lodo train through (order, reuse, subsets)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgekd.distill import DistillPlan, plan_jobs
from edgekd.errors import EdgekdError
from edgekd.executor import Job, execute, job, metrics_of, pending, reusable, stages
from edgekd.runs import RunConfig
from edgekd.windowset import identity_hash

FAST = dict(epochs=1, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def ws():
    from edgekd.data.synthetic import generate

    return generate(3, 3.0, seed=7)


def _names(groups: list[list[Job]]) -> list[list[str]]:
    return [sorted(j.folder.name for j in g) for g in groups]


def test_stages_put_every_teacher_before_what_it_teaches_and_refuse_a_cycle(ws, tmp_path):
    plan = DistillPlan(student=RunConfig(blocks=1, strategy="dkd", **FAST), teacher_blocks=2, intermediate_blocks=1)
    jobs = [j for _, j in plan_jobs(ws, plan, tmp_path)]
    # the scratch twin as late as it can: beside the distilled student (same shape: one group on a GPU)
    assert _names(stages(jobs[::-1])) == [["teacher"], ["intermediate"], ["scratch", "student"]]
    a, b = tmp_path / "a", tmp_path / "b"
    loop = [job(ws, RunConfig(blocks=1, strategy="soft", teachers=[str(b)], **FAST), a),
            job(ws, RunConfig(blocks=1, strategy="soft", teachers=[str(a)], **FAST), b)]
    with pytest.raises(EdgekdError, match="cycle"):
        stages(loop)


def test_a_retrained_teacher_makes_its_students_pending_and_nothing_else(ws, tmp_path):
    plan = DistillPlan(student=RunConfig(blocks=1, strategy="soft", **FAST), teacher_blocks=1)
    jobs = [j for _, j in plan_jobs(ws, plan, tmp_path)]
    assert execute(ws, jobs) == jobs and pending(jobs) == []
    assert execute(ws, jobs) == []  # done: reused
    assert all(metrics_of(j)["mae_argmax"] > 0 for j in jobs)
    longer = [j for _, j in plan_jobs(ws, replace(plan, teacher_epochs=2), tmp_path)]
    # the teacher's config changed; the student's did not, but it learns from the retrained teacher
    assert sorted(j.folder.name for j in pending(longer)) == ["student", "teacher"]
    # where a run trained is not part of what it is (a GPU run is reused on a CPU machine)
    moved = replace(jobs[1], config=replace(jobs[1].config, device="cuda"))
    assert reusable(moved.data_key, moved.config, moved.folder)
    assert not reusable("another-data-set", jobs[1].config, jobs[1].folder)


def test_a_job_on_a_subset_trains_on_those_windows_only(ws, tmp_path):
    rows = np.flatnonzero(ws.subject != ws.subject[0])
    j = job(ws, RunConfig(blocks=1, fold="all", **FAST), tmp_path / "sub", rows)
    assert j.data_key == identity_hash(ws.subset(rows)) != identity_hash(ws)
    execute(ws, [j])
    import json

    recorded = json.loads((tmp_path / "sub" / "config.json").read_text())["data"]
    assert recorded["hash"] == j.data_key and recorded["windows"] == len(rows)
    with pytest.raises(EdgekdError, match="not a complete run"):
        metrics_of(job(ws, RunConfig(blocks=1, fold="all", **FAST), Path(tmp_path / "never")))


def test_a_teacher_is_one_folder_however_the_plan_spells_it(ws, tmp_path):
    """Through a symlink or as its weights file: the student still comes after its teacher."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    teacher = job(ws, RunConfig(blocks=1, **FAST), tmp_path / "real" / "t")
    for spelled in (tmp_path / "link" / "t", tmp_path / "real" / "t" / "model.safetensors"):
        student = job(ws, RunConfig(blocks=1, strategy="soft", teachers=[str(spelled)], **FAST), tmp_path / "s")
        assert _names(stages([student, teacher])) == [["t"], ["s"]]


def test_a_retrained_init_from_makes_its_runs_pending(ws, tmp_path):
    start = job(ws, RunConfig(blocks=1, **FAST), tmp_path / "start")
    tuned = job(ws, RunConfig(blocks=1, init_from=str(tmp_path / "start"), **FAST), tmp_path / "tuned")
    execute(ws, [start, tuned])
    assert pending([tuned]) == []
    execute(ws, [job(ws, RunConfig(blocks=1, seed=3, **FAST), tmp_path / "start")])  # other weights, same folder
    assert pending([tuned]) == [tuned]  # the path is the same, what it starts from is not
