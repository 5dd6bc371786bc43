"""Small PNG figures for sweeps: scaling-law curves, the teacher x student heat map, the Pareto front.

Matplotlib runs on the Agg backend (files only, no display), imported here so commands that draw
nothing never pay its import time.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.atomic import atomic_path

DPI = 110


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    _pyplot().close(fig)
    return path


def _teacher_label(teacher: int | None) -> str:
    return "none" if teacher is None else f"T{teacher}"


def plot_scaling(rows: list[dict[str, Any]], fits: list[dict[str, Any]], metric: str, path: str | Path) -> Path:
    """One panel per strategy: each teacher's runs as points and its fitted curve as a line."""
    plt = _pyplot()
    strategies = sorted({f["strategy"] for f in fits})
    fig, axes = plt.subplots(1, len(strategies), figsize=(3.6 * len(strategies), 3.2), squeeze=False, sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    teachers = sorted({f["teacher"] for f in fits}, key=lambda t: -1 if t is None else t)
    for ax, strategy in zip(axes[0], strategies):
        for f in (f for f in fits if f["strategy"] == strategy):
            colour = colours[teachers.index(f["teacher"]) % len(colours)]
            pts = [r for r in rows if r["strategy"] == strategy and r.get("teacher") == f["teacher"]
                   and r.get(metric) is not None and (r.get("role") or "student") == "student"]  # what was fitted
            xs = np.array([r["student"] for r in pts], dtype=float)
            ax.scatter(xs, [r[metric] for r in pts], s=14, color=colour, alpha=0.7)
            label = _teacher_label(f["teacher"])
            if f.get("a") is not None:  # fitted (a fit row, or its JSON form in a study record)
                grid = np.linspace(xs.min(), xs.max(), 100)
                a, b, c = f["a"], f["b"], f["c"]
                ax.plot(grid, a * np.exp(-b * grid) + c, color=colour,
                        label=f"{label}: {a:.2g}e^(-{b:.2g}x)+{c:.3g}, R²={f['r2']:.2f}")
            else:
                ax.plot([], [], color=colour, label=f"{label}: no fit")
        ax.set_title(strategy)
        ax.set_xlabel("student blocks")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} (BPM)")
    return _save(fig, path)


def plot_heatmap(rows: list[dict[str, Any]], metric: str, strategy: str, path: str | Path) -> Path:
    """The paper's Figure 1: MAE of students (columns) distilled from teachers (rows) with ``strategy``,
    plus a from-scratch column (the teacher architecture trained without a teacher) and a bottom row of
    students trained from scratch. Cells are means over folds and seeds."""
    plt = _pyplot()
    cells: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    scratch: dict[int, list[float]] = defaultdict(list)  # students from scratch (the bottom row)
    teacher_runs: dict[int, list[float]] = defaultdict(list)  # a sweep's [teacher]-only runs (the right column)
    for r in rows:
        if r.get(metric) is None:
            continue
        if r["strategy"] == "scratch" and r.get("teacher") is None:
            (teacher_runs if r.get("role") == "teacher" else scratch)[int(r["student"])].append(float(r[metric]))
        elif r["strategy"] == strategy and r.get("teacher") is not None:
            cells[(int(r["teacher"]), int(r["student"]))].append(float(r[metric]))
    teachers = sorted({t for t, _ in cells})
    students = sorted({s for _, s in cells})
    grid = np.full((len(teachers) + 1, len(students) + 1), np.nan)
    for i, t in enumerate(teachers):
        for j, s in enumerate(students):
            if (t, s) in cells:
                grid[i, j] = np.mean(cells[(t, s)])
        if t in teacher_runs or t in scratch:
            grid[i, -1] = np.mean(teacher_runs.get(t) or scratch[t])
    for j, s in enumerate(students):
        if s in scratch:
            grid[-1, j] = np.mean(scratch[s])
    fig, ax = plt.subplots(figsize=(1.1 * len(students) + 2.4, 0.7 * len(teachers) + 1.8))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(len(students) + 1), [str(s) for s in students] + ["teacher\nfrom scratch"])
    ax.set_yticks(range(len(teachers) + 1), [str(t) for t in teachers] + ["none (scratch)"])
    ax.set_xlabel("student blocks")
    ax.set_ylabel("teacher blocks")
    finite = grid[np.isfinite(grid)]
    mid = float(finite.mean()) if finite.size else 0.0
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v > mid else "black")
    ax.set_title(f"{metric} (BPM), {strategy} distillation")
    fig.colorbar(im, ax=ax, fraction=0.05)
    return _save(fig, path)


def plot_pareto(rows: list[dict[str, Any]], metric: str, cost_label: str, path: str | Path,
                limit: float | None = None) -> Path:
    """MAE against deployment cost; the Pareto front joined; a budget limit drawn as a vertical line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    strategies = sorted({r["strategy"] for r in rows})
    for s in strategies:
        pts = [r for r in rows if r["strategy"] == s]
        ax.scatter([r["cost"] for r in pts], [r[metric] for r in pts], s=18, label=s, alpha=0.8)
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["cost"])
    ax.step([r["cost"] for r in front], [r[metric] for r in front], where="post", color="black", lw=1,
            label="Pareto front")
    for r in front:
        ax.annotate(r["name"], (r["cost"], r[metric]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if limit is not None:
        ax.axvline(limit, color="red", ls="--", lw=1, label="budget")
    ax.set_xlabel(cost_label)
    ax.set_ylabel(f"{metric} (BPM)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
