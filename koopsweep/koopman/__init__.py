"""The Koopman core: snapshot recording with an on-the-fly float64 Gram, and exact DMD by the method of snapshots.

``fit_dmd`` turns a (T, N) trajectory or a recorded ``SnapshotWindow`` into a ``DMDFit`` (spectrum, the fixed
point behind KMP, the gradient reconstruction behind KGP); ``SnapshotRecorder``/``SnapshotHook`` record the window
while training. ``spectral_distance`` compares two fits' dynamics by their eigenvalues. See docs/koopman.md.

Names load on first use, so a module that only needs the spectral tools (numpy) does not import torch.
"""

from __future__ import annotations

from koopsweep.lazy import lazy_names

_HOMES = {
    "DMDFit": "koopsweep.koopman.dmd",
    "fit_dmd": "koopsweep.koopman.dmd",
    "increment_gram": "koopsweep.koopman.gram",
    "raw_gram": "koopsweep.koopman.gram",
    "SnapshotHook": "koopsweep.koopman.recorder",
    "SnapshotRecorder": "koopsweep.koopman.recorder",
    "spectral_distance": "koopsweep.koopman.spectral",
    "SnapshotWindow": "koopsweep.koopman.window",
}

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

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time __getattr__ imports on first use
    from koopsweep.koopman.dmd import DMDFit, fit_dmd
    from koopsweep.koopman.gram import increment_gram, raw_gram
    from koopsweep.koopman.recorder import SnapshotHook, SnapshotRecorder
    from koopsweep.koopman.spectral import spectral_distance
    from koopsweep.koopman.window import SnapshotWindow


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
