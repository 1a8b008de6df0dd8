"""What KMP and KGP need from a DMD fit: θ* and ĝ at the window's last snapshot, computed in one pass.

The trunk's fit cache (koopsweep.train.koopman_recording) and the Python API (koopsweep.api) both call
``pruning_vectors``, so a run and a user's own loop on the same trajectory score with the same bits.
"""

from __future__ import annotations

from typing import Any

import torch

from koopsweep.koopman.dmd import DMDFit, require_finite


def pruning_vectors(
    fit: DMDFit, lr_step: float, momentum: float, what: str = "θ* or ĝ", cluster_radius: float = 0.0
) -> tuple[torch.Tensor, ...]:
    """(θ*, ĝ) as float32 CPU vectors: the fixed point and the gradient reconstruction at the last snapshot, for a
    snapshot step of learning rate ``lr_step`` (lr × stride) and heavy-ball ``momentum`` (0: plain steps).
    ``cluster_radius``: θ* from the modes within that distance of 1 (``DMDFit.fixed_point_weights``)."""
    last = fit.count - 1
    fixed = fit.fixed_point_weights(cluster_radius)
    both = fit.combine_many([fixed, fit.gradient_weights(last, lr_step, momentum)])
    require_finite(both, what)
    return both[:, 0].to(torch.float32).cpu(), both[:, 1].to(torch.float32).cpu()


class KoopmanVectors:
    """θ* and ĝ of one fit, as a scorer asks for them (``PruneContext.koopman_fit``): koopsweep.prune.scorers's
    ``KoopmanFit``, as the trunk's cached fit, ``summary()``, ``fixed_point()``, ``gradient(lr, momentum)``."""

    def __init__(
        self, summary: dict[str, Any], fixed_point: torch.Tensor, gradient: torch.Tensor, lr: float, momentum: float
    ):
        self._summary, self._fixed_point, self._gradient = summary, fixed_point, gradient
        self._settings = (lr, momentum)

    def summary(self) -> dict[str, Any]:
        return self._summary

    def fixed_point(self) -> torch.Tensor:
        return self._fixed_point

    def gradient(self, lr: float, momentum: float) -> torch.Tensor:
        """ĝ; only for the learning rate and momentum it was computed with."""
        if (lr, momentum) != self._settings:
            raise ValueError(f"ĝ was computed for (lr, momentum) = {self._settings}, not {(lr, momentum)}")
        return self._gradient
