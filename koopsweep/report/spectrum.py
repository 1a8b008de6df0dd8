"""The Koopman spectrum in the complex plane: one run's figure, and the panels of the report's spectrum figure.

Drawn with matplotlib's object API on an Agg canvas (no pyplot state, no display), so it is safe in workers and
headless jobs. A run's figure costs 0.3-0.8 s to draw, and the cells of a grid that prune from the same fit draw the
same one: a process keeps the last few it drew, by content, and writes those again instead.
"""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

CIRCLE = np.exp(1j * np.linspace(0.0, 2.0 * np.pi, 400))
KEPT_FIGURES = 8
_drawn: OrderedDict[str, bytes] = OrderedDict()  # PNG bytes of the last figures drawn, by their content


def draw_spectrum(ax: Axes, lam: np.ndarray, chosen: complex, half_width: float | None = None) -> None:
    """Eigenvalues, the unit circle and the chosen one (★); the whole disk, or ±``half_width`` around λ = 1."""
    ax.plot(CIRCLE.real, CIRCLE.imag, color="0.6", linestyle="--", linewidth=1, label="unit circle")
    ax.scatter(lam.real, lam.imag, s=12, color="tab:blue", alpha=0.75, label="eigenvalues")
    ax.scatter([chosen.real], [chosen.imag], s=140, marker="*", color="tab:red", zorder=3, label="chosen λ*")
    if half_width is None:
        finite = lam[np.isfinite(lam)]
        radius = max(1.05, float(np.abs(finite).max()) * 1.05) if finite.size else 1.05
        ax.set_xlim(-radius, radius)
        ax.set_ylim(-radius, radius)
    else:
        ax.set_xlim(1 - half_width, 1 + half_width)
        ax.set_ylim(-half_width, half_width)
        ax.ticklabel_format(useOffset=False)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")


def near_one(lam: np.ndarray) -> float:
    """A half-width around λ = 1 that shows the eigenvalues nearest it (a tenth of them, 3 to 10)."""
    nearest = np.sort(np.abs(lam - 1))[: max(3, min(10, len(lam) // 10))]
    return max(float(nearest[-1]) * 1.3, 1e-6)


def save_run_spectrum(
    run_dir: Path, eigenvalues: Sequence[complex], chosen_index: int, step: int | None = None
) -> tuple[Path, str]:
    """One run's spectrum as ``run_dir/figures/koopman_spectrum[_step<N>].png``; returns the path and a caption."""
    lam = np.asarray(eigenvalues, dtype=complex).ravel()
    if not -len(lam) <= chosen_index < len(lam):
        raise IndexError(f"chosen_index {chosen_index} out of range for {len(lam)} eigenvalues")
    chosen = complex(lam[chosen_index])
    caption = f"chosen λ = {chosen.real:.6f}{chosen.imag:+.6f}i (|λ-1| = {abs(chosen - 1):.2e}), {len(lam)} eigenvalues"
    path = Path(run_dir) / "figures" / ("koopman_spectrum" + ("" if step is None else f"_step{step}") + ".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(lam.tobytes() + caption.encode()).hexdigest()
    png = _drawn.pop(key, None) or _draw_run_spectrum(lam, chosen, caption)
    _drawn[key] = png
    while len(_drawn) > KEPT_FIGURES:
        _drawn.popitem(last=False)
    path.write_bytes(png)
    return path, caption


def _draw_run_spectrum(lam: np.ndarray, chosen: complex, caption: str) -> bytes:
    """The figure of `save_run_spectrum` as PNG bytes: the whole disk, and a zoom around λ = 1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # only Koopman runs draw: GMP cells skip the import
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9.5, 4.8))
    FigureCanvasAgg(fig)
    whole, zoom = fig.subplots(1, 2)
    draw_spectrum(whole, lam, chosen)
    draw_spectrum(zoom, lam, chosen, near_one(lam))
    for axis in (zoom.xaxis, zoom.yaxis):  # long labels near 1 (0.99998): few enough not to collide
        axis.set_major_locator(MaxNLocator(4))
    whole.legend(loc="lower left", fontsize=8)
    zoom.set_title("near λ = 1", fontsize=9)
    fig.suptitle(caption, fontsize=9)
    # fixed margins: a layout engine would cost as much as the drawing itself
    fig.subplots_adjust(left=0.08, right=0.97, bottom=0.11, top=0.87, wspace=0.38)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
