"""What a mask did: sparsity per tensor and in total, ShrinkBench's compression ratio, overlap between masks."""

from __future__ import annotations

import torch
from torch import nn

from koopsweep.prune.masks import MaskSet
from koopsweep.prune.paramspace import ParamSpace


def overlap(removed_a: torch.Tensor, removed_b: torch.Tensor) -> float:
    """Share of A's removed parameters that B removes too, |A ∩ B| / |A| (1.0 when A removes nothing)."""
    count = int(removed_a.sum())
    if count == 0:
        return 1.0
    return float((removed_a & removed_b).sum()) / count


def _kept(space: ParamSpace, masks: MaskSet | None, model: nn.Module) -> dict[str, torch.Tensor]:
    """Per prunable tensor, True where the parameter counts as present: kept by the mask, or non-zero without one.

    With a mask the count comes from the mask, not from the weights: after a divergence NaN × 0 is NaN, so counting
    zeros in the weights would report a sparsity of 1 % for an 80 % mask.
    """
    if masks is not None:
        return {name: keep.to("cpu") for name, keep in space.unflatten(masks.keep).items()}
    return {name: (t != 0).to("cpu") for name, t in zip(space.names, space.tensors(model))}


@torch.no_grad()
def parameter_counts(model: nn.Module, space: ParamSpace, masks: MaskSet | None = None) -> dict[str, float]:
    """Total, prunable and non-zero parameter counts, sparsity of the prunable set and compression ratio.

    Prunable parameters count as non-zero when the mask keeps them and they are not exactly 0 (NaN counts as
    non-zero); without a mask, when they are not 0. The others count when they are not 0.
    """
    kept = _kept(space, masks, model)
    prunable = set(space.names)
    nonzero = 0
    for name, p in model.named_parameters():
        present = p != 0
        if name in prunable:
            present = present.cpu() & kept[name]
        nonzero += int(present.sum())
    removed = space.numel - sum(int(k.sum()) for k in kept.values())
    return {
        "params/total": sum(p.numel() for p in model.parameters()),
        "params/prunable": space.numel,
        "params/nonzero": nonzero,
        "mask/sparsity": removed / space.numel,
        "mask/compression": sum(p.numel() for p in model.parameters()) / max(nonzero, 1),
    }


@torch.no_grad()
def layer_sparsity(model: nn.Module, space: ParamSpace, masks: MaskSet | None = None) -> dict[str, float]:
    """Share of removed parameters in each prunable tensor (from the mask when there is one, else zeros)."""
    return {name: 1.0 - float(keep.sum()) / keep.numel() for name, keep in _kept(space, masks, model).items()}
