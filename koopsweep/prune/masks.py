"""Masks held beside the model (not torch.nn.utils.prune's reparametrisation, which renames tensors)."""

from __future__ import annotations

import torch
from torch import nn

from koopsweep.prune.paramspace import ParamSpace


class MaskSet:
    """A keep-mask over a ParamSpace, applied in place after every optimizer step.

    >>> import torch
    >>> from torch import nn
    >>> from koopsweep import MaskSet, ParamSpace
    >>> model = nn.Linear(4, 2, bias=False)
    >>> masks = MaskSet(ParamSpace.from_model(model), torch.tensor([True, False] * 4))
    >>> masks.apply(model)  # zero the removed weights (after every optimizer step)
    >>> int((model.weight == 0).sum()), masks.num_removed
    (4, 4)
    >>> masks.by_name()["weight"].tolist()  # bool keep-masks by parameter name, for other tools
    [[True, False, True, False], [True, False, True, False]]
    """

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

    def by_name(self) -> dict[str, torch.Tensor]:
        """The keep-mask per parameter name, shaped like the parameter (bool, CPU): what other tools read."""
        return {name: part.cpu().clone() for name, part in self.space.unflatten(self.keep).items()}

    @classmethod
    def from_named(cls, space: ParamSpace, named: dict[str, torch.Tensor]) -> MaskSet:
        """The MaskSet of per-parameter keep-masks (``by_name``'s output); ValueError when they do not fit ``space``."""
        missing = [slot.name for slot in space.slots if slot.name not in named]
        extra = sorted(set(named) - set(space.names))
        if missing or extra:
            raise ValueError(f"masks do not match the prunable parameters: missing {missing}, unexpected {extra}")
        wrong = [s.name for s in space.slots if tuple(named[s.name].shape) != s.shape]
        if wrong:
            raise ValueError(f"masks of {wrong} do not have their parameters' shapes")
        return cls(space, torch.cat([named[s.name].reshape(-1).to(torch.bool) for s in space.slots]))
