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
from edgekd.train import refuse_synthetic_leaks, train_or_reuse
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
    if s.strategy == "scratch":
        if plan.teachers or plan.intermediate_blocks is not None:
            raise EdgekdError("a scratch student learns from no teacher: drop the teacher and intermediate, or name a "
                              "distillation strategy")
        return [_row("scratch student", out / "student", model_entry(s), train_or_reuse(ws, s, out / "student", progress))]
    rows: list[dict[str, Any]] = []
    if plan.teachers:
        teachers = [str(t) for t in plan.teachers]
        for t in teachers:
            spec = model_spec(t)
            rows.append(_row("teacher", t, spec, None))
    else:
        # Teachers (and intermediates, which teach) are ResNet1D whatever family the student is.
        tcfg = replace(s, family="resnet", blocks=plan.teacher_blocks, in_channels=plan.teacher_in_channels,
                       strategy="scratch", params={}, teachers=[], epochs=plan.teacher_epochs or s.epochs,
                       init_from=None)
        metrics = train_or_reuse(ws, tcfg, out / "teacher", progress)
        teachers = [str(out / "teacher")]
        rows.append(_row("teacher", teachers[0], model_entry(tcfg), metrics))
    if plan.intermediate_blocks is not None:
        icfg = replace(s, family="resnet", blocks=plan.intermediate_blocks, teachers=teachers, init_from=None)
        rows.append(_row("intermediate", out / "intermediate", model_entry(icfg),
                         train_or_reuse(ws, icfg, out / "intermediate", progress)))
        teachers = [str(out / "intermediate")]
    if plan.scratch:
        ccfg = replace(s, strategy="scratch", params={}, teachers=[])
        rows.append(_row("scratch student", out / "scratch", model_entry(s), train_or_reuse(ws, ccfg, out / "scratch", progress)))
    dcfg = replace(s, teachers=teachers)
    rows.append(_row(f"{dcfg.strategy_label()} student", out / "student", model_entry(s),
                     train_or_reuse(ws, dcfg, out / "student", progress)))
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
