"""Distillation orchestration: teacher -> (intermediate ->) student, next to a student trained from scratch.

Folder layout under ``out``: ``teacher/`` (when trained here), ``intermediate/`` (progressive
distillation), ``scratch/`` and ``student/``, each a run folder (:mod:`edgekd.runs`). A complete run whose
config and data match what is asked is reused, so rerunning ``edgekd distill`` only trains what is missing.
Teachers given as folders may be several (an ensemble: averaged logits) and may read more channels than
the student (cross-modal: teacher PPG + ACC, student PPG). The student's ``init_from`` (pretrained
weights) starts both the scratch and the distilled student, never the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekd.checkpoint import model_spec
from edgekd.errors import EdgekdError
from edgekd import arch
from edgekd.runs import RunConfig, model_entry, resolve_fold
from edgekd.executor import Job, execute, job, metrics_of
from edgekd.train import refuse_synthetic_leaks
from edgekd.windowset import WindowSet


# The student that held up best on data sets it never saw (leave-one-dataset-out with nested choices, 3 seeds:
# models/results/lodo-spectral-4x7-subjects.md): a 4 x 7 spectral CNN from scratch with 60 synthetic subjects
# in its training data (RunConfig's 30 epochs and label sigma 3). DKD from an 8-block ResNet scored worse
# (lodo-spectral-4x7-dkd.md). `edgekd distill` defaults to it.
RECIPE = RunConfig(family="spectral", blocks=4, width=7, synthetic=60)


@dataclass
class DistillPlan:
    """What ``distill`` trains. ``teachers`` empty = train a ``teacher_blocks`` teacher on the same fold. A
    ``scratch`` student trains alone (no teacher, no twin)."""

    student: RunConfig
    teachers: list[str] = field(default_factory=list)
    teacher_blocks: int = 8  # 12 is the paper's; 8 trains in half the time and taught as well in the demo
    teacher_in_channels: int = 1
    teacher_epochs: int | None = None  # None = the student's epochs
    intermediate_blocks: int | None = None
    scratch: bool = True


def plan_jobs(ws: WindowSet, plan: DistillPlan, out: Path) -> list[tuple[str, Job]]:
    """(role, job) of every model ``plan`` trains, teachers first: a teacher (unless given), an intermediate, the
    scratch twin and the student, each in its own folder under ``out``."""
    s = plan.student
    if s.strategy == "scratch":
        if plan.teachers or plan.intermediate_blocks is not None:
            raise EdgekdError("a scratch student learns from no teacher: drop the teacher and intermediate, or name a "
                              "distillation strategy")
        return [("scratch student", job(ws, s, out / "student"))]
    jobs: list[tuple[str, Job]] = []
    teachers = [str(t) for t in plan.teachers]
    if not teachers:
        # Teachers (and intermediates, which teach) are ResNet1D whatever family the student is.
        tcfg = replace(s, family="resnet", blocks=plan.teacher_blocks, in_channels=plan.teacher_in_channels,
                       strategy="scratch", params={}, teachers=[], epochs=plan.teacher_epochs or s.epochs,
                       init_from=None)
        jobs.append(("teacher", job(ws, tcfg, out / "teacher")))
        teachers = [str(out / "teacher")]
    if plan.intermediate_blocks is not None:
        icfg = replace(s, family="resnet", blocks=plan.intermediate_blocks, teachers=teachers, init_from=None)
        jobs.append(("intermediate", job(ws, icfg, out / "intermediate")))
        teachers = [str(out / "intermediate")]
    if plan.scratch:
        jobs.append(("scratch student", job(ws, replace(s, strategy="scratch", params={}, teachers=[]), out / "scratch")))
    dcfg = replace(s, teachers=teachers)
    jobs.append((f"{dcfg.strategy_label()} student", job(ws, dcfg, out / "student")))
    return jobs


def distill(ws: WindowSet, plan: DistillPlan, out: str | Path, progress: bool = True) -> list[dict[str, Any]]:
    """Train (or reuse) teacher, optional intermediate, scratch and distilled student; one row per model."""
    out = Path(out)
    s = plan.student
    s.validate()  # every setting is checked before the teacher trains, not after
    # before the teacher or the scratch twin trains (each run checks again, too late to save their time)
    refuse_synthetic_leaks(replace(s, teachers=[str(t) for t in plan.teachers]),
                           ws.dataset[resolve_fold(ws, s.fold, s.split_seed).test].tolist())
    if plan.teacher_epochs is not None:
        replace(s, epochs=plan.teacher_epochs).validate()
    jobs = plan_jobs(ws, plan, out)
    # given teachers are read (an interrupted run refused) before anything trains, the scratch twin included
    rows = [_row("teacher", t, model_spec(t), None) for t in plan.teachers]
    execute(ws, [j for _, j in jobs], progress=progress)
    # a student row describes the student asked for (its twin's strategy aside), a teacher's its own
    rows += [_row(role, j.folder, model_entry(j.config if role in ("teacher", "intermediate") else s),
                  metrics_of(j)) for role, j in jobs]
    return rows


def _row(role: str, path: str | Path, spec: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": role, "family": arch.family(spec), "blocks": spec["blocks"], "in_channels": spec["in_channels"],
        "architecture": arch.describe(spec),
        "mae_argmax": None if metrics is None else metrics["mae_argmax"],
        "mae_expectation": None if metrics is None else metrics["mae_expectation"],
        "mae_causal": None if metrics is None else metrics.get("mae_causal"),  # older reused runs lack it
        "mae_fused": None if metrics is None else metrics.get("mae_fused"),
        "params": arch.params(spec), "macs": arch.macs(spec),
        "train_s": None if metrics is None else metrics["train_time_s"],
        "run": str(path),
    }
