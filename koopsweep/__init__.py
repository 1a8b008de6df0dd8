"""koopsweep: Koopman operator views on pruning deep networks (Redman et al., ICLR 2022).

The public names are the ones below, importable from ``koopsweep`` itself; every other module and name is
internal and may change between versions. They load on first use, so ``import koopsweep`` stays light (no torch).

- KMP and KGP in your own training loop: ``KoopmanRecorder``, ``masks_for``, ``apply_masks``,
  ``prunable_parameters``, ``METHODS`` (koopsweep.api)
- a pruning rule of your own: ``Scorer``, ``PruneContext``, ``KoopmanFit`` (what a scorer may ask of the fit)
- runs from Python: ``compose_config`` (a checked config from command-line overrides), ``run_experiment``
- the pieces: ``fit_dmd`` and ``DMDFit`` (exact DMD), ``ParamSpace`` (the prunable tensors as one vector),
  ``MaskSet`` (a keep-mask over it)

>>> import koopsweep
>>> from koopsweep import METHODS, KoopmanRecorder
>>> KoopmanRecorder is koopsweep.api.KoopmanRecorder, sorted(METHODS)[:3]
(True, ['ggp', 'gmp', 'kgp'])
"""

from koopsweep.lazy import lazy_names

__version__ = "0.2.0"

_HOMES = {
    "KoopmanRecorder": "koopsweep.api",
    "METHODS": "koopsweep.api",
    "apply_masks": "koopsweep.api",
    "masks_for": "koopsweep.api",
    "prunable_parameters": "koopsweep.api",
    "KoopmanFit": "koopsweep.prune.scorers",
    "PruneContext": "koopsweep.prune.scorers",
    "Scorer": "koopsweep.prune.scorers",
    "compose_config": "koopsweep.config.compose",
    "run_experiment": "koopsweep.train.run",
    "DMDFit": "koopsweep.koopman.dmd",
    "fit_dmd": "koopsweep.koopman.dmd",
    "MaskSet": "koopsweep.prune.masks",
    "ParamSpace": "koopsweep.prune.paramspace",
}

__all__ = [
    "__version__",
    "KoopmanRecorder",
    "METHODS",
    "apply_masks",
    "masks_for",
    "prunable_parameters",
    "KoopmanFit",
    "PruneContext",
    "Scorer",
    "compose_config",
    "run_experiment",
    "DMDFit",
    "fit_dmd",
    "MaskSet",
    "ParamSpace",
]

TYPE_CHECKING = False  # typing itself costs 30 ms at `import koopsweep`; type checkers read this as True
if TYPE_CHECKING:  # pragma: no cover - for type checkers and editors; at run time __getattr__ imports on first use
    from koopsweep.api import METHODS, KoopmanRecorder, apply_masks, masks_for, prunable_parameters
    from koopsweep.config.compose import compose_config
    from koopsweep.koopman.dmd import DMDFit, fit_dmd
    from koopsweep.prune.masks import MaskSet
    from koopsweep.prune.paramspace import ParamSpace
    from koopsweep.prune.scorers import KoopmanFit, PruneContext, Scorer
    from koopsweep.train.run import run_experiment


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
