"""The plotting helpers every figure uses: grids of panels, a line with a mean ± std band, saving with one legend.

Figures are built with matplotlib's object API on an Agg canvas, never pyplot: nothing global changes, no display
is needed, and a figure is freed as soon as it is saved. Callers draw inside ``matplotlib.rc_context(style.RC)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from koopsweep.report.stats import Curve

PANEL = (5.2, 3.8)  # inches per panel
MIN_WIDTH = 8.0  # inches: room for the title and a legend of several entries under a single panel


def panel_grid(rows: int, cols: int, title: str, row_titles: Sequence[str] | None = None) -> tuple[Figure, np.ndarray]:
    """A titled figure of rows × cols panels (a 2-D array of axes); a row title spans its row when given."""
    fig = Figure(figsize=(max(PANEL[0] * cols, MIN_WIDTH), PANEL[1] * rows + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontweight="bold")
    if row_titles is None:
        return fig, fig.subplots(rows, cols, squeeze=False)
    axes = []
    for sub, row_title in zip(np.atleast_1d(fig.subfigures(rows, 1)), row_titles):
        sub.suptitle(row_title, fontsize="large")
        axes.append(sub.subplots(1, cols, squeeze=False)[0])
    return fig, np.array(axes)


def figure_of_blocks(
    title: str, blocks: Sequence[tuple[str, int, int]], panel: tuple[float, float] = (3.6, 3.0)
) -> tuple[Figure, list[np.ndarray]]:
    """A titled figure of stacked blocks, each (title, rows, cols) of panels; returns each block's 2-D axes."""
    cols = max(c for _, _, c in blocks)
    heights = [r * panel[1] + 0.5 for _, r, _ in blocks]
    fig = Figure(figsize=(max(panel[0] * cols, MIN_WIDTH), sum(heights) + 1.0), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontweight="bold")
    subs = np.atleast_1d(fig.subfigures(len(blocks), 1, height_ratios=heights))
    out = []
    for sub, (block_title, rows, block_cols) in zip(subs, blocks):
        sub.suptitle(block_title, fontsize="large")
        axes = sub.subplots(rows, cols, squeeze=False)
        for ax in axes[:, block_cols:].flat:
            ax.set_visible(False)
        out.append(axes[:, :block_cols])
    return fig, out


def panel_list(count: int, title: str, max_cols: int = 3) -> tuple[Figure, list[Axes]]:
    """``count`` panels wrapped into rows of at most ``max_cols``; the unused cells of the last row are hidden."""
    cols = min(count, max_cols)
    fig, axes = panel_grid(math.ceil(count / cols), cols, title)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def line_with_band(
    ax: Axes, line: Curve, log_y: bool = False, bounds: tuple[float, float] | None = None, **style: Any
) -> None:
    """Mean as a line with markers, ± one std over seeds as a translucent band (none for a single seed).

    ``bounds`` clips the band to the quantity's range (a percentage cannot pass 100 however wide the spread).
    """
    ax.plot(line.x, line.mean, **style)
    if np.any(line.std > 0):
        low, high = line.mean - line.std, line.mean + line.std
        if bounds is not None:
            low, high = np.clip(low, *bounds), np.clip(high, *bounds)
        if log_y:  # a band reaching zero would stretch a log axis down to nothing
            low = np.where(low > 0, low, line.mean / 10)
        ax.fill_between(line.x, low, high, color=style.get("color"), alpha=0.18, linewidth=0)


def legend_columns(labels: Sequence[str], width_in: float, fontsize_pt: float = 10.0) -> int:
    """As many legend columns as fit the figure's width: each entry is its text plus the handle and padding."""
    char_in = 0.55 * fontsize_pt / 72
    entry = max(len(label) for label in labels) * char_in + 0.9
    return max(1, min(len(labels), int(width_in * 0.95 // entry)))


def save(fig: Figure, path: Path) -> Path:
    """Add one legend for the whole figure (each label once, below the panels, as wide as fits), then write it."""
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        if ax.get_legend() is not None:
            continue  # a panel with a legend of its own (per-panel entries) is not merged into the figure's
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, handle)
    if handles:
        ncols = legend_columns(list(handles), fig.get_figwidth())
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=ncols, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lstrip("."))
    return path
