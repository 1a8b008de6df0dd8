"""Masks held beside the model (not torch.nn.utils.prune's reparametrisation, which renames tensors)."""

from __future__ import annotations

import torch
from torch import nn

from koopsweep.prune.paramspace import ParamSpace


class MaskSet:
    """A keep-mask over a ParamSpace, applied in place after every optimizer step."""

    def __init__(self, space: ParamSpace, keep: torch.Tensor):
        if keep.dtype != torch.bool or keep.shape != (space.numel,):
            raise ValueError(f"keep must be a bool vector of {space.numel} values")
        self.space = space
        self.keep = keep
        self._per_tensor: list[torch.Tensor] | None = None

    @property
    def removed(self) -> torch.Tensor:
        return ~self.keep

    @property
    def num_removed(self) -> int:
        return int((~self.keep).sum())

    def to(self, device: torch.device | str) -> MaskSet:
        return MaskSet(self.space, self.keep.to(device))

    @torch.no_grad()
    def apply(self, model: nn.Module) -> None:
        """Zero the removed parameters (cheap: one multiply per prunable tensor)."""
        tensors = self.space.tensors(model)
        if self._per_tensor is None or self._per_tensor[0].device != tensors[0].device:
            self._per_tensor = [
                part.to(device=t.device, dtype=t.dtype)
                for part, t in zip(self.space.unflatten(self.keep).values(), tensors)
            ]
        for tensor, mask in zip(tensors, self._per_tensor):
            tensor.mul_(mask)

    def state_dict(self) -> dict:
        return {"layout_hash": self.space.layout_hash, "keep": self.keep.cpu()}
