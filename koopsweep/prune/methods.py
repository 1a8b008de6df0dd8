"""Pruning methods by name, and the one step from a scorer to a keep-mask that runs and the Python API share.

The names are the configs' (``conf/pruner/*.yaml``): a scorer and the scope of its exact-k selection.

>>> from koopsweep import METHODS
>>> sorted(METHODS)
['ggp', 'gmp', 'kgp', 'kmp', 'lgp', 'lmp', 'random']
>>> scorer, scope = METHODS["lmp"]  # magnitude pruning, k chosen per layer
>>> scorer.__name__, scope
('MagnitudeScorer', 'layer')
"""

from __future__ import annotations

import torch

from koopsweep.prune.scorers import (
    GradientMagnitudeScorer,
    KoopmanGradientScorer,
    KoopmanMagnitudeScorer,
    MagnitudeScorer,
    PruneContext,
    RandomScorer,
    Scorer,
)
from koopsweep.prune.select import select_keep

METHODS: dict[str, tuple[type[Scorer], str]] = {
    "gmp": (MagnitudeScorer, "global"),
    "lmp": (MagnitudeScorer, "layer"),
    "ggp": (GradientMagnitudeScorer, "global"),
    "lgp": (GradientMagnitudeScorer, "layer"),
    "kmp": (KoopmanMagnitudeScorer, "global"),
    "kgp": (KoopmanGradientScorer, "global"),
    "random": (RandomScorer, "global"),
}


def method(name: str) -> tuple[Scorer, str]:
    """A fresh scorer and its default scope for a method name; ValueError naming the known ones."""
    if name not in METHODS:
        raise ValueError(f"unknown pruning method {name!r}: choose one of {', '.join(METHODS)}")
    scorer, scope = METHODS[name]
    return scorer(), scope


def choose_keep(scorer: Scorer, ctx: PruneContext, remove: int, scope: str) -> torch.Tensor:
    """The keep-mask ``scorer`` chooses at ``ctx``: its scores on the model's device, exactly ``remove`` lowest
    removed (ties by position)."""
    device = ctx.space.tensors(ctx.model)[0].device
    return select_keep(scorer.scores(ctx).to(device), remove, ctx.space, scope)
