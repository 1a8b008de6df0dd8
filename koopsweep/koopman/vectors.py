"""What KMP and KGP need from a DMD fit: θ* and ĝ at the window's last snapshot, computed in one pass.

The trunk's fit cache (koopsweep.train.koopman_recording) and the Python API (koopsweep.api) both call
``pruning_vectors``, so a run and a user's own loop on the same trajectory score with the same bits.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from koopsweep.koopman.dmd import NEAR_ONE, DMDFit, require_finite

SPLIT_SHARE = 0.9  # below this share_near_one, the paper's θ* is warned about (see warn_if_split)
log = logging.getLogger(__name__)


def warn_if_split(fit: DMDFit, cluster_radius: float) -> bool:
    """Warn (once per fit) when θ* comes from the nearest mode alone while other modes share the slow part."""
    share = fit.diagnostics.get("share_near_one")
    if cluster_radius > 0 or share is None or share >= SPLIT_SHARE:
        return False
    near = sorted((complex(lam) for lam in fit.eigenvalues if abs(complex(lam) - 1) <= NEAR_ONE), key=abs)
    shown = ", ".join(f"{lam.real:.6f}" + (f"{lam.imag:+.1e}i" if lam.imag else "") for lam in near)
    log.warning(
        "KMP: the eigenvalue nearest 1 carries %.0f %% of the modes within %g of 1 (λ = %s): the weights still drift "
        "and DMD split the drift, so θ* from that mode alone is an arbitrary part of the slow weights; "
        "koopman.cluster_radius=%g takes them all",
        100 * share,
        NEAR_ONE,
        shown,
        NEAR_ONE,
    )
    return True


def pruning_vectors(
    fit: DMDFit, lr_step: float, momentum: float, what: str = "θ* or ĝ", cluster_radius: float = 0.0
) -> tuple[torch.Tensor, ...]:
    """(θ*, ĝ) as float32 CPU vectors: the fixed point and the gradient reconstruction at the last snapshot, for a
    snapshot step of learning rate ``lr_step`` (lr × stride) and heavy-ball ``momentum`` (0: plain steps).
    ``cluster_radius``: θ* from the modes within that distance of 1 (``DMDFit.fixed_point_weights``)."""
    last = fit.count - 1
    warn_if_split(fit, cluster_radius)
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
