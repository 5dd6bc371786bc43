"""Leave-one-dataset-out with every decoder choice nested: the protocol that predicts what a new wearer sees.

For each held-out data set D, the student trains on every other set (``--fold lodo:D`` on the merged set) and
is scored on D. Decoder settings (edgekd.fusion.FusionConfig: model weight a, spectrum weight w, the
clear/unclear switch q, u and its motion gate m) are chosen WITHOUT D, by the setting with the lowest mean of
MAE / HMM MAE over inner scores (the target is relative to the spectral baseline on each set; an absolute mean
would be decided by the hardest set alone), and applied to the outer student on D. The inner scores
(``inner``):

- "subjects" (nested cross-validation, the default): K subject folds over D's training data (every remaining
  set and the always-trained ones); each remaining set is scored once, on its out-of-fold outputs. The inner
  models see as many data sets as the outer student.
- "datasets": models trained on one remaining set alone, scored on each other remaining set. Such a model has
  seen fewer data sets than the student (one trained on resting ICU data alone has never seen a moving wrist),
  so it misjudges what the student can do.

Inner windows are scored as the held-out device would see them: when the held-out set has no accelerometer (its
ACC channels are all zero, as ``merge`` fills them), the inner models read those windows with the ACC zeroed and
the decoder gets no ACC suppression and no motion, so a PPG-only device gets the decoder that works without ACC
(this uses what the device has, never its labels). The HMM itself (a = 0, w = 1) and the model alone (a = 1,
w = 0) are candidates, so the choice can fall back to either. A distillation strategy gets a ResNet teacher trained on the same sets as its student (the inner models
stay from scratch). Extra sets such as the synthetic corpus join every model's training data and are never
held out or scored. Every model is planned first (``plan_lodo``) and trained by edgekd.executor, which reuses a
run only when it is complete for the same resolved config and data (folder = config hash); the scoring after it
trains nothing.

``within_folds`` K > 0 adds the within-distribution number beside each held-out one: the same students trained
on K subject folds over all the sets together, every subject scored once with the decoder the family ships
(new people, but devices and motions seen in training: what leave-one-subject-out measures).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from edgekd.arch import default_decoder, describe, has_width
from edgekd.bpm import N_CLASSES, decode_argmax
from edgekd.checkpoint import load_model
from edgekd.errors import EdgekdError
from edgekd.evaluate import covered_mae, predict_logits
from edgekd.fusion import (MODEL_ONLY, SPECTRUM_ONLY, FusionConfig, decoder_label, fuse, plain, spectral_evidence,
                           window_motion)
from edgekd.losses import STRATEGIES
from edgekd.runs import RunConfig, resolve_fold
from edgekd.runtimes import artifact_logits
from edgekd.study_report import STUDY_SCHEMA, summarise_lodo
from edgekd.sweep import run_name
from edgekd.tracking import track_with_confidence
from edgekd.executor import Job, execute, metrics_of, pending
from edgekd.windowset import WindowSet, identity_hash

MODEL_WEIGHTS = (0.1, 0.25, 0.5, 1.0)
FUSION_WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)
CLEAR_QUALITIES = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
UNCLEAR_WEIGHTS = (0.0, 0.25, 0.5)
# Motion gates (g RMS): resting wrists move < 0.02 g, cycling about 0.05, walking 0.1-0.3, running 0.3 and more.
MOTION_GS = (0.05, 0.1, 0.2)
HMM = SPECTRUM_ONLY
PREVIOUS = plain(1.0, 4.0)  # the default before the switch (from leave-one-subject-out on IEEE SPC)
# the model alone, every plain fusion (a, w), and the switch with w = 1 (a clear window is then exactly the
# baseline's), on the spectrum's quality alone, on the wrist's motion alone, or on both
DECODERS = ((HMM, MODEL_ONLY) + tuple(plain(a, w) for a in MODEL_WEIGHTS for w in FUSION_WEIGHTS)
            + tuple(FusionConfig(weight=1.0, model_weight=a, clear_quality=q, unclear_weight=u, motion_g=m)
                    for m in (0.0, *MOTION_GS) for a in MODEL_WEIGHTS for q in (0.0, *CLEAR_QUALITIES)
                    for u in UNCLEAR_WEIGHTS if q or m))
Grid = dict[FusionConfig, float]  # every candidate decoder's MAE on one inner scoring
MIN_HELD_OUT = 3  # a held-out set leaves two others: the fewest that give an inner direction each way
INNER = ("datasets", "subjects")  # how the decoder is chosen inside a fold (module docstring)


class Spectrum(NamedTuple):
    """What the decoder reads of each window besides the model: the spectral evidence [N, 180] and the wrist's
    motion [N] (edgekd.fusion), computed once for the merged set."""

    evidence: np.ndarray
    motion: np.ndarray

    def subset(self, idx: np.ndarray) -> Spectrum:
        return Spectrum(self.evidence[idx], self.motion[idx])


@dataclass(frozen=True)
class LodoPlan:
    """The students of one study: every (blocks, width) of ``family`` with each strategy and seed. Inner models
    and teachers keep seed 0, so every seed shares the decoder choice and the teacher."""

    family: str = "resnet"
    blocks: tuple[int, ...] = (2,)
    widths: tuple[int, ...] = (16,)
    seeds: tuple[int, ...] = (0,)
    seeds_for: tuple[int, ...] | None = None  # sizes that get every seed (None: all); the others the first
    strategies: tuple[str, ...] = ("scratch",)
    epochs: int = RunConfig.epochs  # every model's training: RunConfig's defaults unless the plan says otherwise
    label_sigma: float = RunConfig.label_sigma
    augment: bool = False
    init_from: str | None = None
    teacher_blocks: int = 8
    int8: tuple[int, ...] = ()  # sizes whose first-seed students are also exported --int8 and scored in TFLM
    inner: str = "subjects"  # one of INNER
    inner_folds: int = 3  # subject folds per held-out set when inner == "subjects"
    within_folds: int = 0  # > 0: also K-fold subject CV over all the sets together (within distribution)

    def __post_init__(self) -> None:
        if self.inner not in INNER:
            raise EdgekdError(f"lodo: inner must be one of {', '.join(INNER)}, got {self.inner!r}")
        if self.inner_folds < 2:
            raise EdgekdError(f"lodo: inner_folds must be >= 2, got {self.inner_folds}")
        if self.within_folds == 1 or self.within_folds < 0:
            raise EdgekdError(f"lodo: within_folds must be 0 (none) or >= 2, got {self.within_folds}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:  # before any model trains, not after the inner models
            raise EdgekdError(f"lodo: unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}")


class StudyRuns:
    """Where a study's models go (``root``) and what each is: the job of ``cfg`` on ``rows`` of the merged set
    (None: all), its folder named by its config, its teacher's run and those windows (edgekd.sweep.run_name), so
    students of different teachers never share a folder. The planner and the scoring after it name every model
    through one of these, and each training set's identity hash is computed once."""

    def __init__(self, full: WindowSet, root: Path) -> None:
        self.full, self.root = full, root
        self._keys: dict[bytes | None, str] = {}

    def key(self, rows: np.ndarray | None) -> str:
        tag = None if rows is None else rows.tobytes()
        if tag not in self._keys:
            self._keys[tag] = identity_hash(self.full if rows is None else self.full.subset(rows))
        return self._keys[tag]

    def job(self, cfg: RunConfig, rows: np.ndarray | None = None, teacher: Job | None = None) -> Job:
        key = self.key(rows)
        return Job(self.root / run_name(cfg, teacher.folder.name if teacher else None, key), cfg, key, rows)


def _trained(j: Job) -> Path:
    """The folder of a job ``run_lodo`` executed (EdgekdError when the plan missed it: nothing trains here)."""
    metrics_of(j)
    return j.folder


def _base(plan: LodoPlan, blocks: int, width: int) -> dict[str, Any]:
    """Every model's settings for one student size (inner models and teachers included)."""
    return dict(blocks=blocks, in_channels=4, epochs=plan.epochs, label_sigma=plan.label_sigma, select_on="val_mae",
                device="cpu", init_from=plan.init_from, augment=plan.augment, family=plan.family, width=width)


def _sizes(plan: LodoPlan) -> list[tuple[int, int]]:
    widths = plan.widths if has_width(plan.family) else plan.widths[:1]  # a ResNet's widths follow from its blocks
    return list(itertools.product(plan.blocks, widths))


def _seeds(plan: LodoPlan, blocks: int) -> tuple[int, ...]:
    return plan.seeds if plan.seeds_for is None or blocks in plan.seeds_for else plan.seeds[:1]


def _inner_rows(full: WindowSet, plan: LodoPlan, sets: list[str], always: list[str]) -> dict[str, np.ndarray]:
    """The windows each inner model trains on: per remaining set alone (``datasets``; with the always-trained
    sets), or per held-out set its fold's whole training data (``subjects``)."""
    if plan.inner == "datasets":
        return {name: np.flatnonzero(np.isin(full.dataset, [name, *always])) for name in sets}
    return {held: np.flatnonzero(full.dataset != held) for held in sets}


def _inner_folds(plan: LodoPlan) -> list[str]:
    return ["all"] if plan.inner == "datasets" else [f"{k}/{plan.inner_folds}" for k in range(1, plan.inner_folds + 1)]


def plan_lodo(runs: StudyRuns, plan: LodoPlan, inner_rows: dict[str, np.ndarray], sets: list[str]) -> list[Job]:
    """Every model the study trains (edgekd.executor jobs, each once): per student size the inner models that
    choose the decoder (on ``inner_rows``, ``_inner_rows``), every outer student (and its teacher) per held-out
    set, strategy and seed, and the within-distribution folds."""
    jobs: dict[Path, Job] = {}
    for blocks, width in _sizes(plan):
        base = _base(plan, blocks, width)
        for rows in inner_rows.values():
            for fold in _inner_folds(plan):
                j = runs.job(RunConfig(**base, fold=fold), rows)
                jobs.setdefault(j.folder, j)
        folds = [f"lodo:{held}" for held in sets]
        if plan.within_folds:
            folds += [f"{k}/{plan.within_folds}" for k in range(1, plan.within_folds + 1)]
        for fold, strategy, seed in itertools.product(folds, plan.strategies, _seeds(plan, blocks)):
            for j in _student_jobs(runs, base, fold, seed, strategy, plan):
                jobs.setdefault(j.folder, j)
    return list(jobs.values())


def _student_jobs(runs: StudyRuns, base: dict[str, Any], fold: str, seed: int, strategy: str,
                  plan: LodoPlan) -> list[Job]:
    """One student on ``fold`` of the merged set, the last job; a distilled one first gets a ResNet teacher trained
    on the same fold (seed 0, shared by every seed), so it never sees the student's test side."""
    if strategy == "scratch":
        return [runs.job(RunConfig(**base, fold=fold, seed=seed))]
    teacher = runs.job(RunConfig(**{**base, "family": "resnet", "blocks": plan.teacher_blocks, "init_from": None},
                                 fold=fold))
    return [teacher, runs.job(RunConfig(**base, fold=fold, seed=seed, strategy=strategy,
                                        teachers=[str(teacher.folder)]), teacher=teacher)]


def decode(logits: np.ndarray, spectrum: Spectrum, ws: WindowSet, cfg: FusionConfig
           ) -> tuple[np.ndarray, np.ndarray]:
    """(absolute error, confidence) per window of the causal tracker on the fused logits (what firmware runs)."""
    bpm, conf = track_with_confidence(fuse(logits, spectrum.evidence, cfg, spectrum.motion), ws.recording)
    return np.abs(bpm - ws.hr), conf


def grid_mae(logits: np.ndarray, spectrum: Spectrum, ws: WindowSet) -> Grid:
    return {cfg: float(decode(logits, spectrum, ws, cfg)[0].mean()) for cfg in DECODERS}


def nested_choice(inner: list[Grid],
                  among: Callable[[FusionConfig], bool] = lambda c: True) -> FusionConfig:
    """The decoder with the lowest mean MAE / HMM MAE over the inner directions, among the candidates ``among``
    accepts (every one by default)."""
    return min((c for c in DECODERS if among(c)), key=lambda c: np.mean([g[c] / g[HMM] for g in inner]))


def without_switch(cfg: FusionConfig) -> bool:
    return not cfg.switches


def without_motion_gate(cfg: FusionConfig) -> bool:
    return cfg.motion_g == 0


def in_hindsight(per_set: dict[str, list[Grid]]) -> dict[str, Any]:
    """A sensitivity, not a result: the decoder with the lowest mean MAE / HMM MAE on the held-out sets
    themselves (seed means), its MAE per set, and how many candidates are no worse than the HMM on every set."""
    mean_of = {c: {h: float(np.mean([g[c] for g in grids])) for h, grids in per_set.items()} for c in DECODERS}
    ratio = {c: np.mean([m[h] / mean_of[HMM][h] for h in m]) for c, m in mean_of.items()}
    best = min(DECODERS, key=lambda c: ratio[c])
    never_worse = [c for c in DECODERS if all(mean_of[c][h] <= mean_of[HMM][h] for h in per_set)]
    return {"decoder": decoder_label(best), "mae": mean_of[best], "mean": float(np.mean(list(mean_of[best].values()))),
            "never_worse_than_hmm": len(never_worse), "candidates": len(DECODERS)}


def int8_logits(run_dir: Path, full: WindowSet, held: str, out: Path) -> np.ndarray:
    """Dequantised TFLM outputs on the held-out set of the fold's student, exported with --int8 and calibrated
    on (a sample of) its own training windows, the way a user ships it."""
    try:  # lazy: export is an optional extra
        from export.artifact import export_artifact
    except ImportError as exc:
        raise EdgekdError(f"--int8 needs the export package ({exc})") from None

    data = out / "data"
    calib, evaluate = data / f"train-{held}.npz", data / f"held-{held}.npz"
    train, test = full.subset(np.flatnonzero(full.dataset != held)), full.subset(np.flatnonzero(full.dataset == held))
    art = out / "artifacts" / run_dir.name
    if not (art / "card.json").is_file():  # the files are only read by the export
        train.save(calib)
        test.save(evaluate)
        export_artifact(run_dir, art, int8=True, calib=calib, evaluate=evaluate, progress=False, force=True)
    return artifact_logits(art, "tflm", test.x)


def without_acc(full: WindowSet, held: str) -> bool:
    """Whether the held-out set ``held`` comes from a device without accelerometer (every ACC value zero)."""
    return full.n_channels > 1 and not full.x[full.dataset == held, 1:].any()


def as_device(ws: WindowSet, acc: bool) -> WindowSet:
    """``ws`` as a device with (``acc``) or without accelerometer sees it: ACC channels zeroed for the latter."""
    if acc or ws.n_channels == 1:
        return ws
    return replace(ws, x=np.concatenate([ws.x[:, :1], np.zeros_like(ws.x[:, 1:])], axis=1))


def held_out_sets(full: WindowSet, always: list[str]) -> list[str]:
    """The data sets that take turns being held out: every set of ``full`` except ``always`` (in every
    training set), in order of first appearance."""
    missing = [a for a in always if a not in full.datasets()]
    if missing:
        raise EdgekdError(f"lodo: no windows of the always-trained set(s) {', '.join(missing)}")
    sets = [d for d in dict.fromkeys(full.dataset.tolist()) if d not in always]
    if len(sets) < MIN_HELD_OUT:
        raise EdgekdError(f"lodo needs at least {MIN_HELD_OUT} data sets to hold out (each fold chooses its decoder "
                          f"between two others), got {len(sets)}: {', '.join(sets) or 'none'}")
    return sets


def run_lodo(full: WindowSet, plan: LodoPlan, out: str | Path, always: tuple[str, ...] = (),
             progress: bool = False, backend: str = "local", grouping: str = "auto") -> dict[str, Any]:
    """Train (or reuse) every model of ``plan`` under ``out/runs`` (edgekd.executor: ``backend``, ``grouping``),
    then score them and return the study record (edgekd.study_report renders it): one row per student, seed and
    held-out set."""
    from tqdm import tqdm

    out = Path(out)
    sets = held_out_sets(full, list(always))
    if len(full.subjects()) < plan.within_folds:  # before any model trains
        raise EdgekdError(f"lodo: --within-folds {plan.within_folds} needs at least {plan.within_folds} subjects, "
                          f"got {len(full.subjects())}")
    inner_rows = _inner_rows(full, plan, sets, list(always))
    if plan.inner == "subjects":
        for held, rows in inner_rows.items():
            if (n := len(full.subset(rows).subjects())) < plan.inner_folds:
                raise EdgekdError(f"lodo: --inner-folds {plan.inner_folds} needs at least {plan.inner_folds} subjects "
                                  f"in the training data of the {held} fold, it has {n}")
    runs = StudyRuns(full, out / "runs")
    jobs = plan_lodo(runs, plan, inner_rows, sets)
    todo = pending(jobs)
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="lodo runs", unit="run",
              disable=None if progress else True, dynamic_ncols=True) as bar:
        execute(full, jobs, backend, grouping, lambda j: bar.update(1), todo=todo)
    spectrum = Spectrum(spectral_evidence(full), window_motion(full))
    acc_of = {held: not without_acc(full, held) for held in sets}  # whether each held-out device has ACC
    results: list[dict[str, Any]] = []
    within: list[dict[str, Any]] = []
    shipped: dict[str, str] = {}
    hindsight: dict[tuple[str, str], dict[str, list[Grid]]] = {}
    for blocks, width in _sizes(plan):
        spec = {"family": plan.family, "blocks": blocks, "width": width}
        student = describe(spec)
        base = _base(plan, blocks, width)
        if plan.inner == "datasets":
            inner_of = _inner_directions(runs, spectrum, sets, acc_of, base, inner_rows)
        else:
            inner_of = _inner_subject_folds(runs, spectrum, sets, acc_of, base, plan.inner_folds, inner_rows)
        # What to ship for data nobody has seen yet: the same rule over every inner grid (with ACC: the student
        # reads it). Not a result on any held-out set (every set is a target of some inner grid); the held-out rows
        # are the claim.
        pool = list({id(g): g for views in inner_of.values() for g in views[True]}.values())
        shipped[student] = decoder_label(nested_choice(pool))
        seeds = _seeds(plan, blocks)
        for held in sets:
            idx = full.dataset == held
            ws, ev = full.subset(np.flatnonzero(idx)), spectrum.subset(idx)
            inner = inner_of[held][acc_of[held]]  # as the held-out device sees its windows
            plain_choice, chosen = nested_choice(inner, without_switch), nested_choice(inner)
            quality_choice = nested_choice(inner, without_motion_gate)
            hmm_err, hmm_conf = decode(np.zeros((len(ws), N_CLASSES), np.float32), ev, ws, HMM)
            for strategy, seed in itertools.product(plan.strategies, seeds):
                run_dir = _trained(_student_jobs(runs, base, f"lodo:{held}", seed, strategy, plan)[-1])
                logits = predict_logits(load_model(run_dir), ws.x)
                err, conf = decode(logits, ev, ws, chosen)
                row = {"student": student, "spec": spec, "blocks": blocks, "strategy": strategy, "seed": seed,
                       "held_out": held, "held_out_acc": acc_of[held], "windows": len(ws),
                       "hmm": float(hmm_err.mean()),
                       "argmax": float(np.abs(decode_argmax(logits) - ws.hr).mean()),
                       "causal": float(decode(logits, ev, ws, MODEL_ONLY)[0].mean()),
                       "fused_previous": float(decode(logits, ev, ws, PREVIOUS)[0].mean()),
                       "fused_default": float(decode(logits, ev, ws, default_decoder(spec))[0].mean()),
                       "nested_plain": float(decode(logits, ev, ws, plain_choice)[0].mean()),
                       "nested_quality": float(decode(logits, ev, ws, quality_choice)[0].mean()),
                       "nested": float(err.mean()),
                       "nested_cov90": covered_mae(err, conf, 0.9), "nested_cov80": covered_mae(err, conf, 0.8),
                       "hmm_cov80": covered_mae(hmm_err, hmm_conf, 0.8), "choice_plain": decoder_label(plain_choice),
                       "choice_quality": decoder_label(quality_choice), "choice": decoder_label(chosen)}
                if blocks in plan.int8 and seed == seeds[0]:
                    q = int8_logits(run_dir, full, held, out)
                    row.update({"int8_argmax_agreement": float((q.argmax(1) == logits.argmax(1)).mean()),
                                "int8_fused_previous": float(decode(q, ev, ws, PREVIOUS)[0].mean()),
                                "int8_nested": float(decode(q, ev, ws, chosen)[0].mean())})
                hindsight.setdefault((student, strategy), {}).setdefault(held, []).append(grid_mae(logits, ev, ws))
                results.append({**row, "run": str(run_dir), "chosen": asdict(chosen), "chosen_plain": asdict(plain_choice)})
        if plan.within_folds:
            within += _within(runs, spectrum, sets, spec, base, seeds, plan)
    extra = {"within": within} if plan.within_folds else {}
    return {"schema": STUDY_SCHEMA, "study": "lodo", "sets": sets, "always_trained": list(always), **extra,
            "decoders": {"previous": decoder_label(PREVIOUS),
                         "default": decoder_label(default_decoder({"family": plan.family}))},
            "rows": results, "summary": summarise_lodo(results, sets), "shipped_decoder": shipped,
            "hindsight": {f"{k[0]} {k[1]}": in_hindsight(v) for k, v in hindsight.items()}}


def _within(runs: StudyRuns, spectrum: Spectrum, sets: list[str], spec: dict[str, Any], base: dict[str, Any],
            seeds: tuple[int, ...], plan: LodoPlan) -> list[dict[str, Any]]:
    """The within-distribution number beside the held-out ones: ``plan.within_folds`` subject folds over all the
    sets together (every subject held out once; its device and motions seen in training), scored per set on the
    out-of-fold outputs with the decoder the family ships (``default_decoder``; nothing is chosen here). Always-
    trained subjects (the synthetic corpus) fall into folds too, and are never scored: each fold model trains on
    (K - 1) / K of them, where a held-out student trains on all."""
    full, k_folds, decoder = runs.full, plan.within_folds, default_decoder(spec)
    scored = np.isin(full.dataset, sets)
    rows = []
    for strategy, seed in itertools.product(plan.strategies, seeds):
        logits = _out_of_fold({True: full}, k_folds, scored,
                              lambda fold: _trained(_student_jobs(runs, base, fold, seed, strategy, plan)[-1]))[True]
        for name in sets:
            idx = np.flatnonzero(full.dataset == name)
            ws, ev = full.subset(idx), spectrum.subset(idx)
            err, conf = decode(logits[idx], ev, ws, decoder)
            rows.append({"student": describe(spec), "blocks": spec["blocks"], "strategy": strategy, "seed": seed,
                         "data_set": name, "windows": len(ws), "subjects": len(ws.subjects()),
                         "hmm": float(decode(np.zeros_like(logits[idx]), ev, ws, HMM)[0].mean()),
                         "argmax": float(np.abs(decode_argmax(logits[idx]) - ws.hr).mean()),
                         "causal": float(decode(logits[idx], ev, ws, MODEL_ONLY)[0].mean()),
                         "fused": float(err.mean()), "fused_cov90": covered_mae(err, conf, 0.9),
                         "fused_cov80": covered_mae(err, conf, 0.8), "decoder": decoder_label(decoder)})
    return rows


def _out_of_fold(views: dict[bool, WindowSet], folds: int, scored: np.ndarray,
                 run_of: Callable[[str], Path]) -> dict[bool, np.ndarray]:
    """Per view of the same windows (edgekd.lodo.as_device), the logits of every ``scored`` window by the one of
    ``folds`` subject-fold models (``run_of("k/folds")``, the run folder) that never saw its subject; the other
    rows stay zero."""
    ws = next(iter(views.values()))
    oof = {acc: np.zeros((len(ws), N_CLASSES), np.float32) for acc in views}
    for k in range(1, folds + 1):
        fold = f"{k}/{folds}"
        model = load_model(run_of(fold))
        test = resolve_fold(ws, fold, RunConfig().split_seed).test  # the runs keep the default split seed
        test = test[scored[test]]
        for acc, seen in views.items():  # every subject is in exactly one fold's test side
            oof[acc][test] = predict_logits(model, seen.x[test])
    return oof


def _inner_directions(runs: StudyRuns, spectrum: Spectrum, sets: list[str], acc_of: dict[str, bool],
                      base: dict[str, Any], rows_of: dict[str, np.ndarray]) -> dict[str, dict[bool, list[Grid]]]:
    """Per held-out set and device view (with ACC: True; as the held-out device sees it when that has none
    (``acc_of``): False), every decoder's MAE in each inner direction between the other sets: a model trained on
    one set alone (plus the always-trained sets) scored on another."""
    views = {held: {True, acc_of[held]} for held in sets}
    full = runs.full
    models = {name: load_model(_trained(runs.job(RunConfig(**base, fold="all"), rows_of[name]))) for name in sets}
    grids = {}
    for other in sets:
        on = np.flatnonzero(full.dataset == other)
        for acc in set().union(*(views[h] for h in sets if h != other)):
            seen = as_device(full.subset(on), acc)  # each set seen each way once, whichever model reads it
            ev = device_spectrum(spectrum, on, seen, acc)
            for name in sets:
                if name != other and any(acc in views[h] for h in sets if h not in (name, other)):
                    grids[(name, other, acc)] = grid_mae(predict_logits(models[name], seen.x), ev, seen)
    return {held: {acc: [grids[(*pair, acc)] for pair in itertools.permutations([s for s in sets if s != held], 2)]
                   for acc in views[held]} for held in sets}


def device_spectrum(spectrum: Spectrum, idx: np.ndarray, seen: WindowSet, acc: bool) -> Spectrum:
    """The decoder's inputs for windows ``idx`` as the device sees them (``seen``): the merged set's, or recomputed
    without ACC."""
    return spectrum.subset(idx) if acc else Spectrum(spectral_evidence(seen), window_motion(seen))


def _inner_subject_folds(runs: StudyRuns, spectrum: Spectrum, sets: list[str], acc_of: dict[str, bool],
                         base: dict[str, Any], folds: int, rows_of: dict[str, np.ndarray]
                         ) -> dict[str, dict[bool, list[Grid]]]:
    """Per held-out set D and device view (as in ``_inner_directions``), every decoder's MAE on each remaining
    set, scored on the out-of-fold outputs of ``folds`` subject folds over D's training data (the outer student's
    data, always-trained sets included): each window is decoded with the logits of the inner model that never saw
    its subject."""
    full = runs.full
    out_of: dict[str, dict[bool, list[Grid]]] = {}
    for held in sets:
        rest = rows_of[held]
        train = full.subset(rest)
        scored = np.isin(train.dataset, [s for s in sets if s != held])  # never the always-trained sets
        views = {acc: as_device(train, acc) for acc in {True, acc_of[held]}}
        oof = _out_of_fold(views, folds, scored,
                           lambda fold: _trained(runs.job(RunConfig(**base, fold=fold), rest)))
        out_of[held] = {acc: [grid_mae(oof[acc][on], device_spectrum(spectrum, rest[on], seen.subset(on), acc),
                                       seen.subset(on))
                              for on in (np.flatnonzero(train.dataset == s) for s in sets if s != held)]
                        for acc, seen in views.items()}
    return out_of
