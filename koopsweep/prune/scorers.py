"""Importance scores: each pruning method is a few lines that map a PruneContext to one score per parameter.

The lowest scores are removed (koopsweep.prune.select). Bring your own rule by subclassing Scorer and pointing
``pruner._target_`` at it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from koopsweep.prune.paramspace import ParamSpace


@runtime_checkable
class KoopmanFit(Protocol):
    """What a scorer may ask of the Koopman fit of the window before the pruning time: prune/'s contract with it.

    A run passes its trunk's cached fit, the Python API its recorder's (koopsweep.koopman.vectors.KoopmanVectors);
    the vectors are flat float32 over the ParamSpace. A scorer of your own may use any of the three methods.

    >>> import torch
    >>> from koopsweep import KoopmanFit
    >>> from koopsweep.koopman.vectors import KoopmanVectors
    >>> fit = KoopmanVectors({"rank": 3}, torch.ones(4), torch.zeros(4), lr=0.1, momentum=0.9)
    >>> isinstance(fit, KoopmanFit), fit.fixed_point().shape
    (True, torch.Size([4]))
    """

    def summary(self) -> dict[str, Any]:
        """The fit's diagnostics (rank, chosen eigenvalue, ...), as logged under ``koopman/``."""
        ...

    def fixed_point(self) -> torch.Tensor:
        """θ*: the mode with eigenvalue nearest 1, scaled by its amplitude (KMP)."""
        ...

    def gradient(self, lr: float, momentum: float) -> torch.Tensor:
        """ĝ at the pruning time for learning rate ``lr`` and heavy-ball ``momentum`` undone (KGP)."""
        ...


@dataclass
class PruneContext:
    """Everything a scorer may look at when pruning at iteration ``iteration``.

    >>> import torch
    >>> from torch import nn
    >>> from koopsweep import ParamSpace, PruneContext
    >>> model = nn.Linear(3, 2)
    >>> ctx = PruneContext(model=model, space=ParamSpace.from_model(model, kinds=["weight", "bias"]), iteration=0)
    >>> ctx.theta().shape  # the prunable parameters, flat: 6 weights, then 2 biases
    torch.Size([8])
    """

    model: nn.Module
    space: ParamSpace
    iteration: int
    seed: int = 0
    koopman_fit: KoopmanFit | None = None
    loss_gradient: Callable[[], torch.Tensor] | None = None
    lr: float = 0.0  # learning rate of the last dense step before pruning
    momentum: float = 0.0  # heavy-ball momentum the Koopman gradient undoes (0: plain steps, or correction off)

    def theta(self) -> torch.Tensor:
        """The prunable parameters at the pruning time, flat, float32."""
        return self.space.flatten(self.model)

    def koopman(self) -> KoopmanFit:
        """The Koopman fit of the window before the pruning time: fixed_point(), gradient(lr, β), summary()."""
        if self.koopman_fit is None:
            raise RuntimeError("this run recorded no Koopman window (the scorer must set requires_koopman)")
        return self.koopman_fit

    def gradient(self) -> torch.Tensor:
        """∇L at the pruning time averaged over ``pruner.batches`` training batches, flat."""
        if self.loss_gradient is None:
            raise RuntimeError("this run provides no gradient to the scorer")
        return self.loss_gradient()


class Scorer(ABC):
    """Maps a PruneContext to a score vector over the ParamSpace; higher means more important.

    A rule of your own is a subclass; ``pruner._target_=yourmodule.Largest`` runs it in koopsweep's runs.

    >>> import torch
    >>> from torch import nn
    >>> from koopsweep import ParamSpace, PruneContext, Scorer
    >>> from koopsweep.prune import select_keep
    >>> class Largest(Scorer):  # GMP's opposite: the largest weights go first
    ...     def scores(self, ctx):
    ...         return -ctx.theta().abs()
    >>> model = nn.Linear(4, 2, bias=False)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 3.0, -4.0], [5.0, -6.0, 7.0, -8.0]]))
    >>> space = ParamSpace.from_model(model)
    >>> keep = select_keep(Largest().scores(PruneContext(model, space, iteration=0)), 6, space, "global")
    >>> space.unflatten(keep)["weight"]  # 6 removed: the 2 smallest weights kept
    tensor([[ True,  True, False, False],
            [False, False, False, False]])
    """

    requires_koopman: ClassVar[bool] = False
    # Gradient-flavoured scorers are also compared with gradient pruning (GGP) at the same t and fraction.
    gradient_flavoured: ClassVar[bool] = False

    @abstractmethod
    def scores(self, ctx: PruneContext) -> torch.Tensor:
        """One finite score per prunable parameter, shape (ctx.space.numel,)."""


class MagnitudeScorer(Scorer):
    """GMP (scope=global) / LMP (scope=layer): |θ(t)|."""

    def scores(self, ctx: PruneContext) -> torch.Tensor:
        return ctx.theta().abs()


class RandomScorer(Scorer):
    """Uniform random scores from a generator seeded by the run's seed: the no-information baseline."""

    def scores(self, ctx: PruneContext) -> torch.Tensor:
        generator = torch.Generator().manual_seed(ctx.seed)
        return torch.rand(ctx.space.numel, generator=generator)


class GradientMagnitudeScorer(Scorer):
    """GGP (scope=global) / LGP (scope=layer): |θ ⊙ ∇L|, the first-order Taylor estimate of a weight's removal."""

    gradient_flavoured = True

    def scores(self, ctx: PruneContext) -> torch.Tensor:
        return (ctx.theta() * ctx.gradient()).abs()


class KoopmanMagnitudeScorer(Scorer):
    """KMP: |θ*| where θ* is the Koopman mode with eigenvalue nearest 1, scaled by its amplitude."""

    requires_koopman = True

    def scores(self, ctx: PruneContext) -> torch.Tensor:
        return ctx.koopman().fixed_point().abs()


class KoopmanGradientScorer(Scorer):
    """KGP: |θ(t) ⊙ ĝ(t)| with ĝ the Koopman reconstruction of the gradient (heavy-ball momentum undone)."""

    requires_koopman = True
    gradient_flavoured = True

    def scores(self, ctx: PruneContext) -> torch.Tensor:
        g_hat = ctx.koopman().gradient(ctx.lr, ctx.momentum)
        return (ctx.theta().cpu() * g_hat).abs()
