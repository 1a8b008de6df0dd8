"""Exact-k selection: remove exactly k parameters (koopsweep.prune.amount solves k), ties broken by position.

A quantile threshold removes a different number of parameters whenever scores tie (e.g. weights that are
already zero); sorting with a stable order makes the achieved sparsity equal the target, deterministically.
"""

from __future__ import annotations

import torch

from koopsweep.prune.paramspace import ParamSpace


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k smallest scores, among equal scores the lower indices: the first k of a stable sort, as a
    set (ascending within each part).

    Found without sorting, 4-5x faster on MnistNet's 431,080 scores: every score below the k-th smallest value,
    then the lowest-indexed scores equal to it until there are k.
    """
    if k == 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    kth = torch.kthvalue(scores, k).values
    below = torch.nonzero(scores < kth).flatten()
    tied = torch.nonzero(scores == kth).flatten()[: k - below.numel()]
    return torch.cat([below, tied])


def layer_quotas(space: ParamSpace, k: int) -> list[int]:
    """Split k removals across tensors in proportion to their size, summing exactly to k (largest remainder)."""
    sizes = torch.tensor([s.numel for s in space.slots], dtype=torch.float64)
    exact = sizes * (k / space.numel)
    quotas = torch.floor(exact).long()
    short = k - int(quotas.sum())
    if short:
        order = torch.sort(exact - quotas, descending=True, stable=True).indices[:short]
        quotas[order] += 1
    return quotas.tolist()


def select_keep(scores: torch.Tensor, k: int, space: ParamSpace, scope: str = "global") -> torch.Tensor:
    """Boolean keep-mask over ``space``: False for the ``k`` parameters with the lowest scores.

    ``scope="global"`` ranks all prunable parameters together; ``"layer"`` removes the same fraction of every
    tensor (largest-remainder quotas). Either way exactly ``k`` parameters are removed.
    """
    if scores.shape != (space.numel,):
        raise ValueError(f"scores must have shape ({space.numel},), got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN: the scorer failed (diverged training or a broken Koopman fit)")
    if not 0 <= k <= space.numel:
        raise ValueError(f"cannot remove {k} of {space.numel} parameters")
    keep = torch.ones(space.numel, dtype=torch.bool, device=scores.device)
    if scope == "global":
        keep[_lowest(scores, k)] = False
    elif scope == "layer":
        for slot, quota in zip(space.slots, layer_quotas(space, k)):
            keep[slot.offset + _lowest(scores[slot.offset : slot.stop], quota)] = False
    else:
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    return keep
