"""The loss gradient averaged over a few training batches, without touching the model being trained.

ShrinkBench uses one batch, which makes gradient scores depend on the data order; ``pruner.batches`` sets how
many. A deep copy is differentiated so BatchNorm statistics and .grad of the real model stay as they were (a run
that prunes nothing must reproduce the dense run bit for bit).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from koopsweep.prune.paramspace import ParamSpace


def average_gradient(
    model: nn.Module, space: ParamSpace, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """Mean gradient of the cross-entropy over ``batches``, flat over ``space`` (float32)."""
    clone = copy.deepcopy(model)
    clone.train()
    params = space.tensors(clone)
    total = torch.zeros(space.numel, dtype=torch.float32, device=params[0].device)
    count = 0
    for x, y in batches:
        loss = F.cross_entropy(clone(x), y)
        grads = torch.autograd.grad(loss, params)
        total += torch.cat([g.reshape(-1).float() for g in grads])
        count += 1
    if count == 0:
        raise ValueError("no batches to average the gradient over")
    return total / count
