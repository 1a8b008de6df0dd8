"""The paper's figures from the rows of runs.csv; each is drawn only when its data exist, otherwise says why not.

Every builder takes the finished rows and the ``--group-by`` keys and returns a figure, or a one-line reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from koopsweep.report.collect import Row, number
from koopsweep.report.plot import line_with_band, panel_grid, panel_list, save
from koopsweep.report.stats import curve, group, mean_std, one_per, values
from koopsweep.report.style import DENSE, RC, log2_axis, method_style

STAGES = (("pruned_acc", "before refinement (right after pruning)"), ("final_acc", "after refinement"))
TIME_AXIS = "pruning time (epochs of dense training)"
ACC_AXIS = "test accuracy (%)"
Built = Figure | str


@dataclass(frozen=True)
class FigureResult:
    """A figure written (path set, note says what it shows) or skipped (path None, note says why)."""

    name: str
    path: Path | None
    note: str


def group_title(keys: Sequence[str], key: Sequence[Any]) -> str:
    """'mnistnet / mnist' for the default keys; other keys as key=value."""
    parts = [str(v) if k in ("model", "dataset", "experiment") else f"{k}={v}" for k, v in zip(keys, key)]
    return " / ".join(parts) or "all runs"


def time_label(rows: Sequence[Row]) -> str:
    """When the runs were pruned, as configured and in epochs."""
    epoch, steps = rows[0]["prune_epoch"], {r["prune_step"] for r in rows}
    when = "?" if epoch is None else f"{epoch:.3g} ep"
    if steps == {"end"}:
        return f"pruned at end of training ({when})"
    step = steps.pop() if len(steps) == 1 else None
    return f"pruned at {step} ({when})" if step and not step.endswith("ep") else f"pruned at {when}"


def _has_accuracy(row: Row) -> bool:
    return number(row["pruned_acc"]) is not None or number(row["final_acc"]) is not None


def _pruned(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r["method"] != "none" and number(r["fraction"]) and r["prune_epoch"] is not None]


def _timed_panels(groups: dict[tuple[Any, ...], list[Row]]) -> dict[tuple[Any, ...], list[Row]]:
    """Only the panels with at least two pruning times: a curve over time needs a timing sweep."""
    return {k: v for k, v in groups.items() if len({r["prune_epoch"] for r in v}) >= 2}


def _single_time(rows: Sequence[Row]) -> str:
    times = sorted({r["prune_epoch"] for r in rows if r["prune_epoch"] is not None})
    shown = ", ".join(f"{t:.3g}" for t in times[:4]) + (" …" if len(times) > 4 else "")
    return f"needs 2+ pruning times within one group, each group has one (at {shown} ep): run a timing sweep"


def accuracy_vs_compression(rows: Sequence[Row], keys: Sequence[str]) -> Built:
    """Paper, converged networks: accuracy of each method against compression, before and after refinement."""
    usable = [r for r in _pruned(rows) if number(r["compression"]) and _has_accuracy(r)]
    if not usable:
        return "no finished pruned run with a compression and an accuracy"
    cells = group(usable, [*keys, "prune_epoch"])
    titles = [f"{group_title(keys, key[:-1])}, {time_label(cell)}" for key, cell in cells.items()]
    fig, axes = panel_grid(len(cells), 2, "Test accuracy vs compression (mean ± std over seeds)", titles)
    for ax_row, (key, cell) in zip(axes, cells.items()):
        dense = mean_std(values(one_per(cell, "trunk_id"), "dense_acc"))
        for ax, (column, stage) in zip(ax_row, STAGES):
            for (method,), runs in group(cell, ["method"]).items():
                line = curve(runs, "fraction", "compression", column, scale=100)
                if line is not None:
                    line_with_band(ax, line, **method_style(method))
            if dense:
                ax.axhline(100 * dense[0], label="dense network", **DENSE)
            log2_axis(ax, max(values(cell, "compression")))
            ax.set_title(stage)
            ax.set_xlabel("compression ratio (total / non-zero params)")
            ax.set_ylabel(ACC_AXIS)
    return fig


def _reference(row: Row) -> str:
    """The baseline a run's mask is compared with: GGP for gradient methods (they report it), else GMP."""
    return "ggp" if number(row["overlap_ggp"]) is not None else "gmp"


def _fraction_colours(rows: Sequence[Row]) -> Callable[[float], Any]:
    fractions = sorted(set(values(rows, "fraction")))
    cmap: Colormap = matplotlib.colormaps["viridis"]
    return lambda f: cmap(0.85 * fractions.index(f) / max(len(fractions) - 1, 1))


def _fraction_label(runs: Sequence[Row], fraction: float) -> str:
    compression = mean_std(values(runs, "compression"))
    return f"f = {fraction:.4g}" + (f" ({compression[0]:.3g}×)" if compression else "")


def overlap_vs_time(rows: Sequence[Row], keys: Sequence[str]) -> Built:
    """Paper, timing experiments: how much of KMP's (KGP's) removed set GMP (GGP) also removes, over training."""
    usable = [
        {**r, "reference": _reference(r)}
        for r in _pruned(rows)
        if r["method"] != _reference(r) and number(r[f"overlap_{_reference(r)}"]) is not None
    ]
    if not usable:
        return "no run reports a mask overlap (methods other than gmp/ggp, with pruner.compare=true)"
    panels = _timed_panels(group(usable, [*keys, "method", "reference"]))
    if not panels:
        return _single_time(usable)
    colour = _fraction_colours(usable)
    fig, axes = panel_list(len(panels), "Mask overlap vs pruning time (mean ± std over seeds)")
    for ax, (key, panel) in zip(axes, panels.items()):
        method, reference = key[-2], key[-1]
        for (fraction,), runs in group(panel, ["fraction"]).items():
            line = curve(runs, "prune_epoch", "prune_epoch", f"overlap_{reference}", scale=100)
            if line is not None:
                line_with_band(ax, line, color=colour(fraction), marker="o", label=_fraction_label(runs, fraction))
        ax.set_title(f"{group_title(keys, key[:-2])}\n{method.upper()} mask vs {reference.upper()} mask")
        ax.set_xlabel(TIME_AXIS)
        ax.set_ylabel(f"removed weights shared with {reference.upper()} (%)")
    return fig


def accuracy_vs_time(rows: Sequence[Row], keys: Sequence[str]) -> Built:
    """Paper, timing experiments: accuracy of each method against when it pruned, before and after refinement."""
    usable = [r for r in _pruned(rows) if _has_accuracy(r)]
    if not usable:
        return "no finished pruned run with an accuracy"
    panels = _timed_panels(group(usable, [*keys, "fraction"]))
    if not panels:
        return _single_time(usable)
    titles = [f"{group_title(keys, key[:-1])}, {_fraction_label(panel, key[-1])}" for key, panel in panels.items()]
    fig, axes = panel_grid(len(panels), 2, "Test accuracy vs pruning time (mean ± std over seeds)", titles)
    for ax_row, (key, panel) in zip(axes, panels.items()):
        trunks = [r for runs in group(panel, ["prune_epoch"]).values() for r in one_per(runs, "trunk_id")]
        dense = curve(trunks, "prune_epoch", "prune_epoch", "dense_acc", scale=100)
        for ax, (column, stage) in zip(ax_row, STAGES):
            for (method,), runs in group(panel, ["method"]).items():
                line = curve(runs, "prune_epoch", "prune_epoch", column, scale=100)
                if line is not None:
                    line_with_band(ax, line, **method_style(method))
            if dense is not None:
                ax.plot(dense.x, dense.mean, label="dense network at pruning time", **DENSE)
            ax.set_title(stage)
            ax.set_xlabel(TIME_AXIS)
            ax.set_ylabel(ACC_AXIS)
    return fig


def koopman_spectrum(rows: Sequence[Row], keys: Sequence[str]) -> Built:
    """How close the chosen Koopman eigenvalue is to 1 (convergence) and the kept rank, over training."""
    usable = [r for r in rows if number(r["koopman_distance_to_1"]) is not None and r["prune_epoch"] is not None]
    if not usable:
        return "no Koopman runs (kmp, kgp) among the finished runs"
    fits = [c[0] for c in group(usable, [*keys, "trunk_id", "prune_at"]).values()]  # one fit per trunk and time
    panels = _timed_panels(group(fits, keys))
    if not panels:
        return _single_time(fits)
    fig, axes = panel_list(2, "Koopman fit vs pruning time (mean ± std over seeds)", max_cols=2)
    cmap = matplotlib.colormaps["tab10"]
    for i, (key, panel) in enumerate(panels.items()):
        style = {"color": cmap(i % 10), "marker": "o", "label": group_title(keys, key)}
        distance = curve(panel, "prune_epoch", "prune_epoch", "koopman_distance_to_1")
        rank = curve(panel, "prune_epoch", "prune_epoch", "koopman_rank")
        if distance is not None:
            line_with_band(axes[0], distance, log_y=True, **style)
        if rank is not None:
            line_with_band(axes[1], rank, **style)
    axes[0].set_yscale("log")
    axes[0].set_title("chosen eigenvalue: |λ − 1|")
    axes[0].set_ylabel("|λ − 1| (log scale)")
    axes[1].set_title("kept DMD rank")
    axes[1].set_ylabel("rank (modes)")
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.set_xlabel(TIME_AXIS)
    return fig


FIGURES: tuple[tuple[str, Callable[[Sequence[Row], Sequence[str]], Built], str], ...] = (
    ("accuracy_vs_compression", accuracy_vs_compression, "accuracy before/after refinement vs compression"),
    ("overlap_vs_time", overlap_vs_time, "mask overlap KMP/GMP (KGP/GGP) vs pruning time"),
    ("accuracy_vs_time", accuracy_vs_time, "accuracy before/after refinement vs pruning time"),
    ("koopman_spectrum", koopman_spectrum, "Koopman |λ − 1| and rank vs pruning time"),
)


def make_figures(rows: Sequence[Row], out: Path, fmt: str, keys: Sequence[str]) -> list[FigureResult]:
    """Draw every figure the finished rows allow into ``out``; the others come back with the reason."""
    finished = [r for r in rows if r["status"] == "finished"]
    made = []
    for name, build, what in FIGURES:
        with matplotlib.rc_context(RC):
            figure = build(finished, keys) if finished else "no finished runs"
            if isinstance(figure, str):
                made.append(FigureResult(name, None, figure))
                continue
            made.append(FigureResult(name, save(figure, out / f"{name}.{fmt}"), what))
    return made
