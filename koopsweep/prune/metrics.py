"""What a mask did: sparsity per tensor and in total, ShrinkBench's compression ratio, overlap between masks."""

from __future__ import annotations

import torch
from torch import nn

from koopsweep.prune.paramspace import ParamSpace


def overlap(removed_a: torch.Tensor, removed_b: torch.Tensor) -> float:
    """Share of A's removed parameters that B removes too, |A ∩ B| / |A| (1.0 when A removes nothing)."""
    count = int(removed_a.sum())
    if count == 0:
        return 1.0
    return float((removed_a & removed_b).sum()) / count


@torch.no_grad()
def parameter_counts(model: nn.Module, space: ParamSpace) -> dict[str, float]:
    """Total, prunable and non-zero parameter counts, sparsity of the prunable set and compression ratio."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    prunable_zero = sum(int((t == 0).sum()) for t in space.tensors(model))
    return {
        "params/total": total,
        "params/prunable": space.numel,
        "params/nonzero": nonzero,
        "sparsity": prunable_zero / space.numel,
        "compression": total / max(nonzero, 1),
    }


@torch.no_grad()
def layer_sparsity(model: nn.Module, space: ParamSpace) -> dict[str, float]:
    """Share of zeros in each prunable tensor."""
    return {name: float((t == 0).sum()) / t.numel() for name, t in zip(space.names, space.tensors(model))}
