"""The Koopman core: snapshot recording with an on-the-fly float64 Gram, and exact DMD by the method of snapshots.

``fit_dmd`` turns a (T, N) trajectory or a recorded ``SnapshotWindow`` into a ``DMDFit`` (spectrum, the fixed
point behind KMP, the gradient reconstruction behind KGP); ``SnapshotRecorder``/``SnapshotHook`` record the window
while training. ``spectral_distance`` compares two fits' dynamics by their eigenvalues. See docs/koopman.md.
"""

from koopsweep.koopman.dmd import DMDFit, fit_dmd
from koopsweep.koopman.gram import increment_gram, raw_gram
from koopsweep.koopman.recorder import SnapshotHook, SnapshotRecorder
from koopsweep.koopman.spectral import spectral_distance
from koopsweep.koopman.window import SnapshotWindow

__all__ = [
    "DMDFit",
    "SnapshotHook",
    "SnapshotRecorder",
    "SnapshotWindow",
    "fit_dmd",
    "increment_gram",
    "raw_gram",
    "spectral_distance",
]
