"""One look for every report figure: a fixed colour and marker per method, readable fonts, the log2 x axis."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

COLOURS = {
    "gmp": "#1f77b4", "kmp": "#ff7f0e", "ggp": "#2ca02c", "kgp": "#d62728",
    "lmp": "#9467bd", "lgp": "#8c564b", "random": "#7f7f7f", "none": "#000000", "kmp_cluster": "#a63603",
}  # fmt: skip
_SPARE = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
MARKERS = {
    "gmp": "o", "kmp": "s", "ggp": "^", "kgp": "v", "lmp": "D", "lgp": "P", "random": "X", "none": "*",
    "kmp_cluster": "h",
}  # fmt: skip
# kmp_cluster: KMP with koopman.cluster_radius > 0 (θ* from every mode near 1), named so by the sweeps that run it
LABELS = {"random": "Random", "none": "no pruning", "kmp_cluster": "KMP (cluster)"}
# Baselines solid with filled markers, Koopman methods dashed with larger hollow ones: where two methods coincide
# (KMP = GMP at convergence, the paper's point) both stay visible, one drawn through the other.
KOOPMAN = ("kmp", "kgp", "kmp_cluster")
DENSE = {"color": "0.3", "linestyle": "--", "linewidth": 1.4}

RC: dict[str, Any] = {
    "font.size": 11,
    "axes.titlesize": 11.5,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 14,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5.5,
    "savefig.dpi": 150,
}


def method_style(method: str) -> dict[str, Any]:
    """Label, colour and marker of a method: the same in every figure (unknown methods hash to a spare colour)."""
    colour = COLOURS.get(method) or _SPARE[zlib.crc32(method.encode()) % len(_SPARE)]
    label = LABELS.get(method, method.upper())
    style: dict[str, Any] = {"label": label, "color": colour, "marker": MARKERS.get(method, "o")}
    if method in KOOPMAN:
        style.update(linestyle=(0, (4, 2)), markerfacecolor="none", markersize=8, markeredgewidth=1.6, zorder=3)
    return style


def log2_axis(ax: Axes, largest: float) -> None:
    """ShrinkBench's compression axis: log2 with ticks 1, 2, 4, … up to the power of two above the data."""
    top = max(1, math.ceil(math.log2(max(largest, 2.0)) - 1e-9))
    ticks = [2**k for k in range(top + 1)]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0.9, ticks[-1] * 1.12)


def time_axis(ax: Axes, ticks: Sequence[tuple[float, str]]) -> None:
    """Pruning time on a log axis (50 iterations and 20 epochs on one axis), ticked at the times that were run."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    if ticks:
        ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks], rotation=45, ha="right")
        low, high = ticks[0][0], ticks[-1][0]
        ax.set_xlim(low / 1.35, high * 1.35)


GAP_TICKS = (-100, -50, -20, -10, -5, -2, -1, -0.5, -0.2, 0, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def gap_axis(ax: Axes, linthresh: float = 0.5) -> None:
    """Accuracy differences in points: linear within ±linthresh (agreement), logarithmic beyond (early pruning
    gaps of tens of points), ticked with plain numbers."""
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.8)
    low, high = ax.get_ylim()
    ax.yaxis.set_major_locator(FixedLocator([t for t in GAP_TICKS if low <= t <= high]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
    ax.yaxis.set_minor_locator(NullLocator())
