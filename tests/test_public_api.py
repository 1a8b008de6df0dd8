"""koopsweep's public names: the docstring examples run, and prune/'s contract with the Koopman fit holds."""

from __future__ import annotations

import torch

from koopsweep.koopman.vectors import KoopmanVectors
from koopsweep.prune import ParamSpace
from koopsweep.prune.scorers import KoopmanFit, KoopmanGradientScorer, KoopmanMagnitudeScorer, PruneContext
from koopsweep.train.koopman_recording import FitVectors, gradient_key


def test_both_koopman_fits_keep_prunes_contract() -> None:
    """The trunk's cached fit (runs) and the recorder's vectors (the Python API) are what the scorers type."""
    theta_star, g_hat = torch.tensor([3.0, -1.0, 2.0]), torch.tensor([0.5, 2.0, -1.0])
    cached = FitVectors({"summary": {"rank": 2}, "fixed_point": theta_star, gradient_key(0.1, 0.9): g_hat}, stride=1)
    own = KoopmanVectors({"rank": 2}, theta_star, g_hat, lr=0.1, momentum=0.9)
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    space = ParamSpace(["weight"], [(1, 3)])
    for fit in (cached, own):
        assert isinstance(fit, KoopmanFit)
        ctx = PruneContext(model=model, space=space, iteration=0, koopman_fit=fit, lr=0.1, momentum=0.9)
        assert torch.equal(KoopmanMagnitudeScorer().scores(ctx), theta_star.abs())
        assert torch.equal(KoopmanGradientScorer().scores(ctx), torch.tensor([0.5, 2.0, 1.0]))
        assert ctx.koopman().summary() == {"rank": 2}
