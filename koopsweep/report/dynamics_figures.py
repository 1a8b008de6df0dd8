"""The report's figures of training dynamics: spectral distances, distance to convergence, predictors of KMP ≡ GMP.

Builders take the report's ``Data`` (koopsweep.report.figure_data) and return a figure or the reason there is none,
like every other figure; the numbers come from koopsweep.report.dynamics.
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from koopsweep.report.dynamics import (
    PAIRS,
    PREDICTORS,
    TARGETS,
    DistanceMatrix,
    PredictorSet,
    converged_distances,
    distance_matrices,
    predictor_sets,
)
from koopsweep.report.figure_data import Built, Data
from koopsweep.report.labels import TIME_AXIS, group_title, level, level_label, time_ticks
from koopsweep.report.plot import line_with_band, panel_grid
from koopsweep.report.stats import curve, group
from koopsweep.report.style import time_axis

ANNOTATE_UP_TO = 12  # matrices this small print their values in the cells
SHOWN_TARGETS = ("overlap", "final_gap")  # the predictor figure's rows (the table has all three)
UNREFINED_TARGETS = ("overlap", "pruned_gap")  # the same where the runs were not refined (schedule.finetune=0it)


def shown_targets(pset: PredictorSet) -> tuple[str, str]:
    """The predictor figure's rows for one pair: the refined gap, or the gap right after pruning without one."""
    return SHOWN_TARGETS if pset.refined else UNREFINED_TARGETS


def _time_axis(ax: Axes, rows: list[dict]) -> None:
    time_axis(ax, time_ticks(rows))
    ax.set_xlabel(TIME_AXIS)


def _heatmap(ax: Axes, fig: Figure, found: DistanceMatrix, labels: str) -> None:
    count = len(found.labels)
    image = ax.imshow(found.matrix, cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, shrink=0.8, label="spectral distance")
    small = "x-small" if count > ANNOTATE_UP_TO else "small"
    ax.set_xticks(range(count), found.labels, rotation=90, fontsize=small)
    ax.set_yticks(range(count), found.labels, fontsize=small)
    ax.grid(False)
    ax.set_title(f"{found.title}\n({labels})")
    if count <= ANNOTATE_UP_TO:
        top = found.matrix.max() or 1.0
        for i in range(count):
            for j in range(count):
                value = found.matrix[i, j]
                colour = "white" if value < 0.6 * top else "black"
                ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize="x-small", color=colour)


def spectral_distance_matrix(data: Data) -> Built:
    """Pairwise spectral distances between the spectra of each group, labelled by ``--distance-by``."""
    matrices = distance_matrices(data.spectra, data.keys, data.labels)
    if not matrices:
        return "needs 2+ Koopman spectra within one group (Koopman runs, or koopman.record=true)"
    cols = min(len(matrices), 2)
    rows = -(-len(matrices) // cols)
    side = float(np.clip(0.3 * max(len(m.labels) for m in matrices) + 3.0, 5.0, 11.0))
    fig = Figure(figsize=(side * cols + 1.2, side * rows + 0.8), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle("Spectral distance between Koopman spectra (Wasserstein, one-to-one matching)", fontweight="bold")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax, found in zip(axes, matrices):
        _heatmap(ax, fig, found, " · ".join(data.labels))
    for ax in axes[len(matrices) :]:
        ax.set_visible(False)
    return fig


def spectral_distance_vs_time(data: Data) -> Built:
    """Per group: each pruning time's spectrum against the converged one, beside the Koopman/baseline overlap."""
    distances = converged_distances(data.spectra, data.keys)
    if not distances:
        return "needs Koopman spectra of one trunk at 2+ pruning times (a timing sweep)"
    points = [
        {**s, "distance": distances[k]}
        for s in data.spectra
        if (k := (*[s.get(key) for key in data.keys], s.get("trunk_id"), s.get("prune_at"))) in distances
    ]
    groups = group(points, data.keys)
    fig, axes = panel_grid(
        len(groups), 2, "Distance to the converged spectrum, and mask overlap, vs pruning time (mean ± std)"
    )
    cmap = matplotlib.colormaps["viridis"]
    for (key, fits), (left, right) in zip(groups.items(), axes):
        line = curve(fits, "prune_epoch", "prune_epoch", "distance")
        if line is not None:
            line_with_band(left, line, color="tab:purple", marker="o", label="spectral distance to converged")
        left.set_title(f"{group_title(data.keys, key)}\nspectrum at t vs the trunk's latest")
        left.set_ylabel("spectral distance")
        _time_axis(left, fits)
        runs = [r for r in data.rows if tuple(r.get(k) for k in data.keys) == key]
        drawn = False
        for method, reference in PAIRS:
            mine = [r for r in runs if r["method"] == method and r.get(f"overlap_{reference}") is not None]
            levels = sorted({level(r) for r in mine if level(r) is not None})
            for amount in levels:
                cell = [r for r in mine if level(r) == amount]
                overlap = curve(cell, "prune_epoch", "prune_epoch", f"overlap_{reference}", scale=100)
                if overlap is not None:
                    colour = cmap(0.85 * levels.index(amount) / max(len(levels) - 1, 1))
                    style = {"color": colour, "marker": "o", "label": level_label(cell[0])}
                    line_with_band(right, overlap, bounds=(0, 100), **style)
                    drawn = True
            if drawn:
                right.set_title(f"{method.upper()} mask vs {reference.upper()} mask")
                right.set_ylabel(f"removed weights shared with {reference.upper()} (%)")
                _time_axis(right, mine)
                break
        if not drawn:
            right.set_visible(False)
    return fig


def _scatter(ax: Axes, fits: list[dict], x: str, y: str, log_x: bool) -> bool:
    """One point per fit, a colour per seed; spans of decades are drawn as log10 on a linear axis (plain ticks,
    cheaper to draw than a log axis). True when x was drawn as log10."""
    cmap = matplotlib.colormaps["tab10"]
    seeds = sorted({str(f.get("seed")) for f in fits})
    values = [f[x] for f in fits if f.get(x) is not None]
    as_log = log_x and bool(values) and min(values) > 0
    for seed in seeds:
        mine = [f for f in fits if str(f.get("seed")) == seed]
        pts = [(f[x], f[y]) for f in mine if f.get(x) is not None and f.get(y) is not None]
        if pts:
            xs, ys = (np.asarray(v, dtype=float) for v in zip(*pts))
            ax.scatter(
                np.log10(xs) if as_log else xs, ys, s=22, color=cmap(seeds.index(seed) % 10), label=f"seed {seed}"
            )
    return as_log


def koopman_predictors(data: Data) -> Built:
    """Scalars of each fit against the overlap and the refined accuracy gap (the gap right after pruning for runs
    never refined), with Spearman's ρ in each title."""
    sets = predictor_sets(data.rows, data.spectra, data.keys)
    if not sets:
        return "needs a timing sweep with a Koopman method and its baseline (KMP and GMP, or KGP and GGP)"
    rows, cols = len(sets) * len(SHOWN_TARGETS), len(PREDICTORS)
    # a fixed grid, not constrained layout: 12 panels per pair, and the layout solver cost more than the drawing
    height = 2.9 * rows + 2.3  # inches: 1.3 above the panels (title, pair name), 1.0 below (axis label, legend)
    fig = Figure(figsize=(3.1 * cols, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 1.3 / height, bottom=1.0 / height)
    fig.subplots_adjust(hspace=0.75, wspace=0.3)
    fig.suptitle("Does the Koopman fit predict KMP ≡ GMP? (one point per trunk and pruning time; ρ = Spearman)")
    grid = fig.subplots(rows, cols, squeeze=False)
    step = len(SHOWN_TARGETS)
    block_axes = [grid[i * step : (i + 1) * step] for i in range(len(sets))]
    for axes, pset in zip(block_axes, sets):
        axes[0][0].annotate(
            f"{pset.title}: {pset.method.upper()} vs {pset.reference.upper()}",
            (0, 1.32),
            xycoords="axes fraction",
            fontweight="bold",
        )
    target_label = dict(TARGETS)
    for axes, pset in zip(block_axes, sets):
        correlations = pset.correlations
        for row, target in enumerate(shown_targets(pset)):
            for col, (predictor, label, log_x) in enumerate(PREDICTORS):
                ax = axes[row][col]
                as_log = _scatter(ax, pset.fits, predictor, target, log_x)
                found = correlations[(predictor, target)]
                rho = "n/a" if not np.isfinite(found.spearman) else f"{found.spearman:+.2f}"
                ax.set_title(f"ρ = {rho} (n = {found.n})", fontsize="small")
                ax.set_xlabel(f"log₁₀ {label}" if as_log else label, fontsize="small")
                ax.tick_params(labelsize="x-small")
                if col == 0:
                    ax.set_ylabel(target_label[target].replace("(", "\n("), fontsize="small")
    return fig
