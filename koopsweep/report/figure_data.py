"""What every report figure is drawn from (``Data``) and what a builder returns (``Built``): a module of its own, so
that the builders of koopsweep.report.figures and koopsweep.report.dynamics_figures share it without importing
each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from koopsweep.report.collect import Row

DEFAULT_LABELS = ("seed", "prune_step")  # how a spectrum is named in the spectral-distance figures and tables
Built = Figure | str


@dataclass(frozen=True)
class Data:
    """What the builders draw from: finished rows, one spectrum per fit, the grouping keys, and the keys that label
    each spectrum in the spectral-distance figures (``--distance-by``)."""

    rows: Sequence[Row]
    spectra: Sequence[Row]
    keys: Sequence[str]
    labels: Sequence[str] = DEFAULT_LABELS
