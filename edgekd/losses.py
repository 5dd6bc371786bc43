"""Distillation strategies (REFERENCE.md section 2), each a small loss module, composable by weights.

Total loss for a batch = label cross-entropy (dropped when a strategy replaces the labels: ``hard``)
+ sum over the strategy composition of ``weight * term``. Every term reads the student's outputs and
the cached teacher outputs for the same windows (:mod:`edgekd.teacher`), never the teacher model.

Each term declares its parameters as a dataclass (``Term.Params``: defaults and allowed ranges); what a run
stores and ``RunConfig.params`` overrides is their union, one flat table (``DEFAULTS``) where a name two terms
share (``T``) means the same thing in both. Defaults:

- ``soft`` (Hinton): T^2 * KL(softmax(t/T) || softmax(s/T)), T = 4.
- ``dkd`` (Zhao 2022): warm-up * (alpha * TCKD + beta * NCKD), alpha 1, beta 8, T 4; the warm-up factor
  ramps linearly to 1 over ``warmup`` epochs (20, capped at a quarter of the run so short runs reach 1).
- ``feature`` (FitNets): 1x1-conv adapter from the student's stage to the teacher's width, student map
  average-pooled (or interpolated) to the teacher's length; MSE divided by the teacher map's mean square
  so the term does not depend on the teacher's feature scale.
- ``ppg-distill`` (Ni et al. 2025): soft KD + global feature term (linear adapter on the pooled embedding,
  normalised MSE) + patch morphology InfoNCE (tau 0.1) + patch rhythm smooth-L1 on pairwise patch-distance
  matrices each divided by its mean non-zero distance; 1 s patches (8 per 8 s window).

Stages: ``student_stage`` -1 = the student's last block; ``teacher_stage`` None = the deepest teacher block
whose output still has at least one step per patch (12 blocks: block index 8, 128 channels, 13 steps).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.bpm import gaussian_targets
from edgekd.errors import EdgekdError
from edgekd.geometry import FS, WINDOW
from edgekd.model import block_specs, lengths


@dataclass(frozen=True)
class Range:
    """Which values a strategy parameter takes: a finite number >= (or >) ``lo``, optionally integer, or null."""

    lo: float
    inclusive: bool = False
    integer: bool = False
    nullable: bool = False


def param(default: Any, allowed: Range) -> Any:
    """A field of a term's parameter dataclass: its default and its allowed values."""
    return field(default=default, metadata={"range": allowed})


# Parameters several terms read, declared once so they mean the same everywhere.
def temperature() -> Any:
    return param(4.0, Range(0.0))


def student_stage() -> Any:
    return param(-1, Range(-math.inf, inclusive=True, integer=True))  # -1: the student's last block


def teacher_stage() -> Any:
    return param(None, Range(-math.inf, inclusive=True, integer=True, nullable=True))  # None: see module docstring


def patch_seconds() -> Any:
    return param(1.0, Range(0.0))


@dataclass
class StudentOut:
    """What ``ResNet1D.forward_features`` returns for a batch."""

    logits: torch.Tensor
    feats: list[torch.Tensor]
    pooled: torch.Tensor


@dataclass
class TeacherBatch:
    """Cached teacher outputs for the batch's windows; ``stage``/``pooled`` only when a term needs them."""

    logits: torch.Tensor
    stage: torch.Tensor | None = None
    pooled: torch.Tensor | None = None


# ---- pure loss functions (what the tests re-derive) ----------------------------------------------------

def soft_kd(s_logits: torch.Tensor, t_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Hinton KD: T^2 * KL(teacher_T || student_T), mean over the batch."""
    log_ps = F.log_softmax(s_logits.float() / T, dim=-1)
    log_pt = F.log_softmax(t_logits.float() / T, dim=-1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * T * T


def dkd_parts(s_logits: torch.Tensor, t_logits: torch.Tensor, target: torch.Tensor,
              T: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD) of Decoupled KD, each scaled by T^2 and averaged over the batch.

    TCKD: KL between the binary distributions [p_target, 1 - p_target] of teacher and student.
    NCKD: KL between the softmaxes over the non-target classes only (target logit masked by -1000,
    as the reference code does).
    """
    if s_logits.shape[-1] < 3:
        raise EdgekdError("DKD needs at least 3 classes")
    s, t = s_logits.float() / T, t_logits.float() / T
    mask = F.one_hot(target, s.shape[-1]).bool()
    ps, pt = F.softmax(s, dim=-1), F.softmax(t, dim=-1)
    bs = torch.stack([ps[mask], (ps * ~mask).sum(-1)], dim=-1).clamp_min(1e-12)
    bt = torch.stack([pt[mask], (pt * ~mask).sum(-1)], dim=-1).clamp_min(1e-12)
    tckd = (bt * (bt.log() - bs.log())).sum(-1).mean() * T * T
    log_qs = F.log_softmax(s - 1000.0 * mask, dim=-1)
    log_qt = F.log_softmax(t - 1000.0 * mask, dim=-1)
    nckd = F.kl_div(log_qs, log_qt, reduction="batchmean", log_target=True) * T * T
    return tckd, nckd


def normalised_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE divided by the teacher's mean square: a feature-matching loss that ignores the teacher's scale."""
    teacher = teacher.float()
    return F.mse_loss(student.float(), teacher) / teacher.pow(2).mean().clamp_min(1e-8)


def align_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """[B, C, L] -> [B, C, length]: average-pool when shorter, linear interpolation when longer."""
    if x.shape[-1] == length:
        return x
    if x.shape[-1] > length:
        return F.adaptive_avg_pool1d(x, length)
    return F.interpolate(x, size=length, mode="linear", align_corners=False)


def patches(x: torch.Tensor, n_patches: int) -> torch.Tensor:
    """[B, C, L] feature map -> [B, P, C] per-patch features (mean over each patch's time span)."""
    return align_length(x.float(), n_patches).transpose(1, 2)


def morphology_infonce(s_patch: torch.Tensor, t_patch: torch.Tensor, tau: float) -> torch.Tensor:
    """InfoNCE: student patch i should match teacher patch i of the same window; other patches are negatives.

    Inputs [B, P, D] (already in a common space); both are L2-normalised here.
    """
    s, t = F.normalize(s_patch.float(), dim=-1), F.normalize(t_patch.float(), dim=-1)
    sim = s @ t.transpose(1, 2) / tau  # [B, P, P]
    target = torch.arange(sim.shape[1], device=sim.device).expand(sim.shape[0], -1)
    return F.cross_entropy(sim.reshape(-1, sim.shape[-1]), target.reshape(-1))


def distance_matrix(p: torch.Tensor) -> torch.Tensor:
    """Pairwise patch distances [B, P, P], each window's matrix divided by its mean non-zero distance."""
    d = torch.cdist(p.float(), p.float())
    off = ~torch.eye(d.shape[-1], dtype=torch.bool, device=d.device)
    nonzero = (d > 0) & off
    mean = (d * nonzero).sum((-1, -2)) / nonzero.sum((-1, -2)).clamp_min(1)
    return d / mean.clamp_min(1e-8)[:, None, None]


def rhythm_loss(s_patch: torch.Tensor, t_patch: torch.Tensor) -> torch.Tensor:
    """Relational KD over patches: smooth-L1 between normalised distance matrices (widths may differ)."""
    return F.smooth_l1_loss(distance_matrix(s_patch), distance_matrix(t_patch))


# ---- strategy modules -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shapes:
    """What a term needs to size its adapters: the student's and teacher's block specs and the stages read."""

    student: list[int]  # channels of each student stage (edgekd.arch.stage_widths)
    teacher: list[int]  # channels of each teacher stage (a ResNet1D's block outputs)
    student_stage: int
    teacher_stage: int | None  # set when a selected term reads a teacher stage


@dataclass(frozen=True)
class NoParams:
    pass


class Term(nn.Module):
    """One distillation term. ``stage``/``pooled``: which cached teacher features it reads; ``Params``: the
    dataclass of the strategy parameters it reads (a parameter no selected term reads is refused)."""

    replaces_labels = False
    uses_stage = False
    uses_pooled = False
    Params: type = NoParams

    @classmethod
    def build(cls, p: Any, shapes: Shapes) -> Term:
        """The term for parameters ``p`` (a ``cls.Params``) and the student's and teacher's ``shapes``."""
        return cls()

    def forward(self, s: StudentOut, t: TeacherBatch, target: torch.Tensor, epoch: int) -> torch.Tensor:
        raise NotImplementedError


class Hard(Term):
    """Cross-entropy on the teacher's argmax class instead of the label."""

    replaces_labels = True

    def forward(self, s, t, target, epoch):
        return F.cross_entropy(s.logits.float(), t.logits.argmax(-1))


@dataclass(frozen=True)
class SoftParams:
    T: float = temperature()


class Soft(Term):
    Params = SoftParams

    def __init__(self, T: float):
        super().__init__()
        self.T = T

    @classmethod
    def build(cls, p, shapes):
        return cls(float(p.T))

    def forward(self, s, t, target, epoch):
        return soft_kd(s.logits, t.logits, self.T)


@dataclass(frozen=True)
class DKDParams:
    T: float = temperature()
    alpha: float = param(1.0, Range(0.0, inclusive=True))  # target-class term weight
    beta: float = param(8.0, Range(0.0, inclusive=True))  # non-target-class term weight
    warmup: int = param(20, Range(0.0, inclusive=True, integer=True))  # epochs to full weight


class DKD(Term):
    Params = DKDParams

    def __init__(self, T: float, alpha: float, beta: float, warmup: int):
        super().__init__()
        self.T, self.alpha, self.beta, self.warmup = T, alpha, beta, max(1, warmup)

    @classmethod
    def build(cls, p, shapes):
        return cls(float(p.T), float(p.alpha), float(p.beta), int(p.warmup))

    def forward(self, s, t, target, epoch):
        tckd, nckd = dkd_parts(s.logits, t.logits, target, self.T)
        return min(1.0, (epoch + 1) / self.warmup) * (self.alpha * tckd + self.beta * nckd)


@dataclass(frozen=True)
class FeatureParams:
    student_stage: int = student_stage()
    teacher_stage: int | None = teacher_stage()
    patch_seconds: float = patch_seconds()  # sets the default teacher stage


class Feature(Term):
    """FitNets hint: adapter(student stage) ~ teacher stage, lengths aligned to the teacher's."""

    uses_stage = True
    Params = FeatureParams

    def __init__(self, student_stage: int, s_width: int, t_width: int):
        super().__init__()
        self.stage = student_stage
        self.adapter = nn.Conv1d(s_width, t_width, 1)

    @classmethod
    def build(cls, p, shapes):
        return cls(shapes.student_stage, shapes.student[shapes.student_stage], shapes.teacher[shapes.teacher_stage])

    def forward(self, s, t, target, epoch):
        assert t.stage is not None
        hint = self.adapter(align_length(s.feats[self.stage].float(), t.stage.shape[-1]))
        return normalised_mse(hint, t.stage)


@dataclass(frozen=True)
class PPGDistillParams:
    T: float = temperature()
    tau: float = param(0.1, Range(0.0))  # InfoNCE temperature
    patch_seconds: float = patch_seconds()
    student_stage: int = student_stage()
    teacher_stage: int | None = teacher_stage()


class PPGDistill(Term):
    """Prediction + global-feature + patch morphology (InfoNCE) + patch rhythm (relational) terms, summed."""

    uses_stage = True
    uses_pooled = True
    Params = PPGDistillParams

    def __init__(self, student_stage: int, s_width: int, t_width: int, s_pooled: int, t_pooled: int,
                 T: float, tau: float, n_patches: int):
        super().__init__()
        self.stage, self.T, self.tau, self.n_patches = student_stage, T, tau, n_patches
        self.patch_adapter = nn.Linear(s_width, t_width)
        self.global_adapter = nn.Linear(s_pooled, t_pooled)

    @classmethod
    def build(cls, p, shapes):
        return cls(shapes.student_stage, shapes.student[shapes.student_stage], shapes.teacher[shapes.teacher_stage],
                   shapes.student[-1], shapes.teacher[-1], float(p.T), float(p.tau), n_patches(p.patch_seconds))

    def forward(self, s, t, target, epoch):
        assert t.stage is not None and t.pooled is not None
        sp = patches(s.feats[self.stage], self.n_patches)
        tp = patches(t.stage, self.n_patches)
        return (soft_kd(s.logits, t.logits, self.T)
                + normalised_mse(self.global_adapter(s.pooled.float()), t.pooled)
                + morphology_infonce(self.patch_adapter(sp), tp, self.tau)
                + rhythm_loss(sp, tp))


# ---- registry and composition --------------------------------------------------------------------------

# name -> term: a new strategy is one Term subclass (with its Params) and one line here ("scratch" = labels only).
TERMS: dict[str, type[Term]] = {"hard": Hard, "soft": Soft, "dkd": DKD, "feature": Feature, "ppg-distill": PPGDistill}
STRATEGIES = ("scratch", *TERMS)


def _flat_table() -> tuple[dict[str, Any], dict[str, Range]]:
    """(defaults, ranges) of every term's parameters, one flat table: what configs store and ``--param`` sets."""
    defaults: dict[str, Any] = {}
    ranges: dict[str, Range] = {}
    for term in TERMS.values():
        for f in fields(term.Params):
            if f.name in ranges and (defaults[f.name], ranges[f.name]) != (f.default, f.metadata["range"]):
                raise AssertionError(f"strategy parameter {f.name} is declared two ways")  # one meaning per name
            defaults[f.name], ranges[f.name] = f.default, f.metadata["range"]
    return defaults, ranges


DEFAULTS, PARAM_RANGES = _flat_table()


def parse_strategy(text: str) -> str | dict[str, float]:
    """A strategy as written on a command line or in a sweep: 'dkd' -> 'dkd'; 'dkd+feature' -> {dkd: 1,
    feature: 1}; 'dkd=1,feature=0.5' (or 'dkd=1+feature=0.5') -> those weights. Names are checked by
    RunConfig.validate."""
    if "=" not in text and "+" not in text:
        return text
    out: dict[str, float] = {}
    for part in text.replace("+", ",").split(","):
        name, _, weight = part.partition("=")
        if name.strip() in out:
            raise EdgekdError(f"{text}: '{name.strip()}' is named twice")
        try:
            out[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise EdgekdError(f"{text}: weight '{weight}' of '{name}' is not a number") from None
    return out


def parse_params(items: list[str]) -> dict[str, Any]:
    """Strategy parameters as written on a command line: ['T=4', 'warmup=null'] -> {T: 4, warmup: None}; a value
    is a number or null (names and ranges are checked by RunConfig.validate)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise EdgekdError(f"{item}: expected NAME=VALUE")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = None
        if out[name] is not None and (isinstance(out[name], bool) or not isinstance(out[name], (int, float))) \
                or (out[name] is None and value.strip() != "null"):
            raise EdgekdError(f"{item}: value must be a number or null")
    return out


def params_read(strategies: list[str]) -> set[str]:
    """The strategy parameters (``DEFAULTS`` keys) the terms of ``strategies`` read (each a name or a
    composition such as 'dkd+feature')."""
    names: list[str] = []
    for s in strategies:
        parsed = parse_strategy(s)
        names += [parsed] if isinstance(parsed, str) else list(parsed)
    return {f.name for s in names if s in TERMS for f in fields(TERMS[s].Params)}


def term_params(term: type[Term], params: dict[str, Any]) -> Any:
    """``term``'s parameter dataclass filled from the flat table ``params`` (resolved: every name present)."""
    return term.Params(**{f.name: params[f.name] for f in fields(term.Params)})


def resolve_params(params: dict[str, Any], epochs: int, strategies: list[str] | None = None) -> dict[str, Any]:
    """Defaults filled in; unknown names rejected, and with ``strategies`` also names none of them reads
    (``--param tau=0.2`` with dkd would otherwise be silently ignored); the DKD warm-up capped at a quarter
    of the run."""
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise EdgekdError(f"unknown strategy parameter(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(DEFAULTS)}")
    for name, value in params.items():
        _check_param(name, value)
    if strategies is not None:
        read = params_read(strategies)
        unused = sorted(set(params) - read)
        if unused:
            raise EdgekdError(f"strategy parameter(s) {', '.join(unused)} are not read by "
                              f"{'+'.join(strategies)} (it reads: {', '.join(sorted(read)) or 'none'})")
    out = {**DEFAULTS, **params}
    out["warmup"] = int(min(int(out["warmup"]), max(1, epochs // 4)))
    return out


def _check_param(name: str, value: Any) -> None:
    """A strategy parameter must be a finite number in its range (T = 0 would divide logits by zero)."""
    r = PARAM_RANGES[name]
    lo, inclusive, integer, nullable = r.lo, r.inclusive, r.integer, r.nullable
    if value is None and nullable:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or (integer and value != int(value)) \
            or value < lo or (value == lo and not inclusive):
        kind = "an integer" if integer else "a number"
        bound = "" if lo == -math.inf else f" {'>=' if inclusive else '>'} {lo:g}"
        raise EdgekdError(f"strategy parameter {name} must be {kind}{bound}"
                          f"{' or null' if nullable else ''}, got {value!r}")


def teacher_stage_for(teacher_blocks: int, stage: int | None, n_patches: int) -> int:
    """Teacher block index whose output the stage terms read (see module docstring for the default)."""
    if stage is None:
        lens = lengths(teacher_blocks)[1:]
        return max(i for i, n in enumerate(lens) if n >= n_patches) if lens[0] >= n_patches else 0
    if not -teacher_blocks <= stage < teacher_blocks:
        raise EdgekdError(f"teacher_stage {stage} is out of range for a {teacher_blocks}-block teacher")
    return stage % teacher_blocks


def n_patches(seconds: float) -> int:
    """Patches per window of ``seconds`` each (at least 2)."""
    return max(2, round(WINDOW / FS / float(seconds)))


class DistillLoss(nn.Module):
    """Label CE + weighted terms. Learnable adapters live here: optimise ``parameters()`` with the student."""

    def __init__(self, weights: dict[str, float], params: dict[str, Any], student_widths: list[int],
                 teacher_blocks: int | None, label_sigma: float = 0.0):
        super().__init__()
        if label_sigma < 0:
            raise EdgekdError(f"label_sigma must be >= 0 BPM, got {label_sigma}")
        self.label_sigma = float(label_sigma)
        unknown = [k for k in weights if k not in STRATEGIES]
        if unknown:
            raise EdgekdError(f"unknown strategy '{unknown[0]}'; known: {', '.join(STRATEGIES)}")
        for k, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise EdgekdError(f"strategy weight of '{k}' must be a non-negative number, got {w!r}")
        self.weights = {k: float(w) for k, w in weights.items() if k != "scratch" and w != 0}
        if self.weights and teacher_blocks is None:
            raise EdgekdError(f"strategy {'+'.join(self.weights)} needs a teacher (none given)")
        p = params
        self.terms = nn.ModuleDict()
        self.teacher_stage: int | None = None
        s_stage = int(p["student_stage"])
        if not -len(student_widths) <= s_stage < len(student_widths):
            raise EdgekdError(f"student_stage {s_stage} is out of range for a {len(student_widths)}-block student")
        if self.weights:
            assert teacher_blocks is not None
            if any(TERMS[name].uses_stage for name in self.weights):
                self.teacher_stage = teacher_stage_for(teacher_blocks, p["teacher_stage"],
                                                       n_patches(p["patch_seconds"]))
            shapes = Shapes(list(student_widths), [b.out_ch for b in block_specs(teacher_blocks)], s_stage,
                            self.teacher_stage)
            for name in self.weights:
                self.terms[name] = TERMS[name].build(term_params(TERMS[name], p), shapes)
        self.label_ce = not any(t.replaces_labels for t in self.terms.values())

    @property
    def needs_teacher(self) -> bool:
        return bool(self.terms)

    @property
    def needs_pooled(self) -> bool:
        return any(t.uses_pooled for t in self.terms.values())

    def forward(self, s: StudentOut, t: TeacherBatch | None, target: torch.Tensor,
                epoch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, {part: detached value}) for one batch (tensors: no device sync per step)."""
        zero = s.logits.new_zeros((), dtype=torch.float32)
        if not self.label_ce:
            total = zero
        elif self.label_sigma > 0:
            total = F.cross_entropy(s.logits.float(), gaussian_targets(target, self.label_sigma))
        else:
            total = F.cross_entropy(s.logits.float(), target)
        parts = {"ce": total.detach()} if self.label_ce else {}
        for name, term in self.terms.items():
            assert t is not None
            value = term(s, t, target, epoch)
            parts[name] = value.detach()
            total = total + self.weights[name] * value
        return total, parts
