"""Subject-independent splits: no subject is ever on both sides of a split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.errors import EdgekdError
from edgekd.windowset import WindowSet


@dataclass(frozen=True)
class Fold:
    """Window indices of one split, plus the held-out subjects (for reports)."""

    train: np.ndarray
    test: np.ndarray
    test_subjects: tuple[str, ...]


def _subject_groups(ws: WindowSet, seed: int) -> list[str]:
    subjects = ws.subjects()
    rng = np.random.default_rng(seed)
    return [subjects[i] for i in rng.permutation(len(subjects))]


def _fold(ws: WindowSet, test_subjects: list[str]) -> Fold:
    is_test = np.isin(ws.subject, test_subjects)
    return Fold(np.flatnonzero(~is_test), np.flatnonzero(is_test), tuple(sorted(test_subjects)))


def kfold(ws: WindowSet, k: int = 2, seed: int = 0) -> list[Fold]:
    """K folds over shuffled subjects (the paper uses K = 2)."""
    order = _subject_groups(ws, seed)
    if k < 2 or k > len(order):
        raise EdgekdError(f"K-fold needs 2 <= K <= subjects ({len(order)}), got K = {k}")
    return [_fold(ws, list(chunk)) for chunk in np.array_split(np.asarray(order, dtype=object), k)]


def holdout(ws: WindowSet, test_fraction: float = 0.2, seed: int = 0) -> Fold:
    """One split with about ``test_fraction`` of the subjects held out (at least one on each side)."""
    order = _subject_groups(ws, seed)
    if len(order) < 2:
        raise EdgekdError(f"a subject-independent split needs at least 2 subjects, got {len(order)}")
    n_test = min(len(order) - 1, max(1, round(test_fraction * len(order))))
    return _fold(ws, order[:n_test])


def leave_one_subject_out(ws: WindowSet) -> list[Fold]:
    subjects = ws.subjects()
    if len(subjects) < 2:
        raise EdgekdError(f"leave-one-subject-out needs at least 2 subjects, got {len(subjects)}")
    return [_fold(ws, [s]) for s in subjects]


def parse_fold(spec: str) -> tuple[int, int]:
    """'K/N' (1-based K) -> (K-1, N); 'loso' folds are requested as 'K/loso' and resolved by the caller."""
    try:
        k_s, n_s = spec.split("/")
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise EdgekdError(f"--fold must look like K/N (e.g. 1/2), got '{spec}'") from None
    if not 1 <= k <= n:
        raise EdgekdError(f"--fold {spec}: K must be between 1 and N")
    return k - 1, n


def validation_split(ws: WindowSet, train_idx: np.ndarray, fraction: float = 0.15,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Carve a validation set from the training subjects only (whole subjects when there are >= 3)."""
    subjects = sorted(set(ws.subject[train_idx].tolist()))
    rng = np.random.default_rng(seed + 7919)
    if len(subjects) >= 3:
        n_val = max(1, round(fraction * len(subjects)))
        val_subjects = [subjects[i] for i in rng.permutation(len(subjects))[:n_val]]
        is_val = np.isin(ws.subject[train_idx], val_subjects)
        return train_idx[~is_val], train_idx[is_val]
    # Too few subjects to hold one out: fall back to the last part of each recording (time-contiguous).
    val_mask = np.zeros(len(train_idx), dtype=bool)
    for rec in set(ws.recording[train_idx].tolist()):
        pos = np.flatnonzero(ws.recording[train_idx] == rec)
        val_mask[pos[int(len(pos) * (1 - fraction)):]] = True
    return train_idx[~val_mask], train_idx[val_mask]
