"""Scaling law of student MAE against student size: MAE = a * exp(-b * x) + c (the paper's form).

x is the student's number of residual blocks (1, 2, 3, ...). That is the paper's x axis: its soft-KD
constants for the 12-block teacher (a 11.607, b 1.172, c 6.755; REFERENCE.md section 3) reproduce its
Table 2 soft row with x = blocks (x = 1: 10.35 vs 10.38; x = 2: 7.87 vs 7.70; x = 3: 7.10 vs 7.20), while
x in parameters or MACs would need b ~ 1e-5 per parameter. ``tests/test_scaling.py`` checks this.

The fit uses every run (each fold and seed is a point), so fold-to-fold spread enters the residual
variance; parameter standard errors come from curve_fit's covariance, and the interval of a predicted
MAE is the delta-method prediction interval (parameter uncertainty + residual variance, Student t).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from edgekd.errors import EdgekdError

B_MIN, B_MAX = 0.05, 20.0


def law(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a * np.exp(-b * x) + c


@dataclass(frozen=True)
class ScalingFit:
    a: float
    b: float
    c: float
    cov: np.ndarray  # 3x3 covariance of (a, b, c); inf where the data cannot constrain it
    r2: float
    n: int
    residual_var: float  # NaN with no residual degrees of freedom (exactly 3 points)

    @property
    def stderr(self) -> tuple[float, float, float]:
        d = np.diag(self.cov)
        return tuple(float(math.sqrt(v)) if np.isfinite(v) and v >= 0 else math.inf for v in d)  # type: ignore[return-value]

    @property
    def dof(self) -> int:
        return self.n - 3

    def predict(self, x: float, level: float = 0.95) -> tuple[float, float, float]:
        """(predicted MAE, lower, upper) at size ``x``; the bounds are infinite when the fit has no spare points."""
        mean = float(law(np.asarray(x, dtype=float), self.a, self.b, self.c))
        e = math.exp(-self.b * x)
        jac = np.array([e, -self.a * x * e, 1.0])
        var = float(jac @ self.cov @ jac) + self.residual_var if self.dof > 0 else math.nan
        if not np.isfinite(var) or var < 0:
            return mean, -math.inf, math.inf
        half = float(stats.t.ppf(0.5 + level / 2, self.dof)) * math.sqrt(var)
        return mean, mean - half, mean + half


def fit_scaling(x: Sequence[float], y: Sequence[float]) -> ScalingFit:
    """Least-squares fit of MAE = a exp(-b x) + c. Needs >= 3 distinct sizes (three parameters)."""
    x_arr, y_arr = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x_arr.shape != y_arr.shape or x_arr.ndim != 1:
        raise EdgekdError(f"scaling fit: x and y must be equal-length 1-D sequences, got {x_arr.shape} and {y_arr.shape}")
    if not (np.isfinite(x_arr).all() and np.isfinite(y_arr).all()):
        raise EdgekdError("scaling fit: sizes and MAEs must be finite numbers")
    sizes = np.unique(x_arr)
    if len(sizes) < 3:
        raise EdgekdError(f"scaling fit needs points at >= 3 distinct student sizes (3 parameters a, b, c); "
                          f"got {len(x_arr)} point(s) at size(s) {', '.join(f'{s:g}' for s in sizes) or 'none'}")
    # Start from the shape of the data: c near the best MAE, a the excess at the smallest size, b ~ 1/size.
    c0 = float(y_arr.min())
    a0 = max(float(y_arr[x_arr == sizes[0]].mean()) - c0, 1e-3) * math.exp(sizes[0])
    p0 = [a0, 1.0, c0]
    # The law describes MAE falling with size: a >= 0. b >= B_MIN keeps a near-linear trend from sending a and
    # c to +-infinity (b -> 0); a decay length over 1/B_MIN = 20 blocks is beyond the family (max 12).
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, cov = optimize.curve_fit(law, x_arr, y_arr, p0=p0, bounds=([0.0, B_MIN, -np.inf], [np.inf, B_MAX, np.inf]),
                                             maxfev=20000)
    except (RuntimeError, ValueError) as exc:
        raise EdgekdError(f"scaling fit did not converge ({exc})") from None
    a, b, c = (float(v) for v in params)
    resid = y_arr - law(x_arr, a, b, c)
    ss_res = float(resid @ resid)
    ss_tot = float(((y_arr - y_arr.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    n = len(x_arr)
    cov = np.asarray(cov, dtype=float).copy()
    # A parameter at a bound (a = 0, b at B_MIN or B_MAX) or one the data do not move (b = 20: exp(-b x) is 0 at
    # every size, so a is anything) has no standard error: curve_fit reports 0 there; say infinite instead.
    e = np.exp(-b * x_arr)
    moves = np.linalg.norm(np.stack([e, -a * x_arr * e, np.ones_like(x_arr)]), axis=1)
    inside = B_MIN * (1 + 1e-4) < b < B_MAX * (1 - 1e-4)  # curve_fit stops a hair inside a bound
    free = [a > 0 and moves[0] > 1e-6 * moves.max(), inside and moves[1] > 1e-6 * moves.max(), True]
    for i, ok in enumerate(free):
        if not ok:
            cov[i, :] = cov[:, i] = math.inf
    return ScalingFit(a, b, c, cov, r2, n, ss_res / (n - 3) if n > 3 else math.nan)


def group_key(row: dict[str, Any]) -> tuple[int | None, str]:
    return row.get("teacher"), str(row["strategy"])


def block_axis_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose student has a block count on the paper's axis: ResNet students. A TCN (``tcn:DxW``) has
    depth and width, not the paper's x; rank compares it by cost instead."""
    return [r for r in rows if isinstance(r.get("student"), int) and not isinstance(r.get("student"), bool)]


def fit_groups(rows: list[dict[str, Any]], metric: str = "mae_argmax",
               predict: float | None = None) -> list[dict[str, Any]]:
    """One fit per (teacher, strategy) over student runs; groups that cannot be fitted say why.

    ``rows``: results-table rows (edgekd.sweep.read_results) with ``teacher``, ``student``, ``strategy``
    and ``metric``; teacher runs (role "teacher") are not students and are left out.
    """
    groups: dict[tuple[int | None, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if (r.get("role") or "student") == "student" and r.get(metric) is not None:  # None: a student run
            groups[group_key(r)].append(r)
    if not groups:
        raise EdgekdError(f"no student runs with '{metric}' in the results")
    out = []
    for (teacher, strategy), members in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1])):
        row: dict[str, Any] = {"teacher": teacher, "strategy": strategy, "points": len(members),
                               "sizes": sorted({int(m["student"]) for m in members})}
        try:
            fit = fit_scaling([m["student"] for m in members], [m[metric] for m in members])
        except EdgekdError as exc:
            out.append({**row, "error": str(exc)})
            continue
        se = fit.stderr
        row.update(a=fit.a, b=fit.b, c=fit.c, a_se=se[0], b_se=se[1], c_se=se[2], r2=fit.r2, fit=fit)
        if predict is not None:
            mean, lo, hi = fit.predict(predict)
            row.update(predict_x=predict, predicted_mae=mean, pi_low=lo, pi_high=hi)
        out.append(row)
    return out


def public_rows(fits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The fit rows without the ScalingFit object, JSON-ready (infinite bounds become None)."""
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return [{k: clean(v) for k, v in r.items() if k != "fit"} for r in fits]
