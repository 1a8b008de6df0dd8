"""One look for every report figure: a fixed colour and marker per method, readable fonts, the log2 x axis."""

from __future__ import annotations

import math
import zlib
from typing import Any

from matplotlib.axes import Axes
from matplotlib.ticker import NullLocator

COLOURS = {
    "gmp": "#1f77b4", "kmp": "#ff7f0e", "ggp": "#2ca02c", "kgp": "#d62728",
    "lmp": "#9467bd", "lgp": "#8c564b", "random": "#7f7f7f", "none": "#000000",
}  # fmt: skip
_SPARE = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
MARKERS = {"gmp": "o", "kmp": "s", "ggp": "^", "kgp": "v", "lmp": "D", "lgp": "P", "random": "X", "none": "*"}
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
    label = {"random": "Random", "none": "no pruning"}.get(method, method.upper())
    return {"label": label, "color": colour, "marker": MARKERS.get(method, "o")}


def log2_axis(ax: Axes, largest: float) -> None:
    """ShrinkBench's compression axis: log2 with ticks 1, 2, 4, … up to the power of two above the data."""
    top = max(1, math.ceil(math.log2(max(largest, 2.0)) - 1e-9))
    ticks = [2**k for k in range(top + 1)]
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0.9, ticks[-1] * 1.12)
