"""The ordered set of prunable tensors of a model, flattened into one vector and back.

Every score, mask and snapshot in koopsweep is a vector over a ParamSpace; its layout hash is stored beside
everything written with it, so a file recorded under another layout is rejected instead of silently misaligned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from koopsweep.errors import ConfigError


@dataclass(frozen=True)
class Slot:
    """One tensor's place in the flat vector."""

    name: str
    shape: tuple[int, ...]
    offset: int

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def stop(self) -> int:
        return self.offset + self.numel


def classifier_names(model: nn.Module) -> list[str]:
    """Parameter names of the module a model marks as its classifier (``model.classifier_name``)."""
    name = getattr(model, "classifier_name", None)
    if not name:
        return []
    module = model.get_submodule(name)
    return [f"{name}.{p}" for p, _ in module.named_parameters()]


def select_parameters(
    model: nn.Module,
    kinds: Sequence[str] = ("weight",),
    ignore: Iterable[str] | None = None,
    ignore_classifier: bool = True,
) -> list[str]:
    """Names of the prunable parameters: those whose last name part is in ``kinds``, minus ``ignore``.

    A ``weight`` is prunable when it has at least two dimensions (conv kernels, linear matrices): ShrinkBench's
    convention, which the paper follows, leaves normalisation scales (BatchNorm's 1-D weights) dense.
    ``ignore`` entries match a full parameter name or a module prefix (``"fc2"`` ignores ``fc2.weight``).
    """
    ignored = set(ignore or ())
    if ignore_classifier:
        ignored.update(classifier_names(model))
    all_names = [n for n, _ in model.named_parameters()]
    unknown = [i for i in ignored if not any(n == i or n.startswith(i + ".") for n in all_names)]
    if unknown:
        raise ConfigError(
            f"pruner.ignore names {unknown} match no parameter of {type(model).__name__}; "
            f"parameters are e.g. {all_names[:4]}"
        )
    chosen = []
    for name, parameter in model.named_parameters():
        kind = name.rsplit(".", 1)[-1]
        if kind not in kinds or (kind == "weight" and parameter.dim() < 2):
            continue
        if any(name == i or name.startswith(i + ".") for i in ignored):
            continue
        chosen.append(name)
    if not chosen:
        raise ConfigError(f"no prunable parameters left in {type(model).__name__} (kinds={list(kinds)})")
    return chosen


def matching_parameters(model: nn.Module, patterns: Sequence[str], what: str = "koopman.params") -> list[str]:
    """Names of the parameters (any kind, any shape) equal to a pattern or under a module prefix (``"fc2"`` →
    ``fc2.weight``, ``fc2.bias``), in the model's order; one line for a pattern that matches nothing."""
    names = [n for n, _ in model.named_parameters()]
    unknown = [p for p in patterns if not any(n == p or n.startswith(p + ".") for n in names)]
    if unknown:
        raise ConfigError(f"{what}={list(patterns)}: {unknown} match no parameter; parameters are e.g. {names[:6]}")
    return [n for n in names if any(n == p or n.startswith(p + ".") for p in patterns)]


class ParamSpace:
    """Ordered prunable tensors (names, shapes, offsets) with flatten/unflatten and a layout hash.

    >>> from torch import nn
    >>> from koopsweep import ParamSpace
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> space = ParamSpace.from_model(model, ignore=["2"])  # 2-D weights, module "2" (the classifier) aside
    >>> space.names, space.numel
    (['0.weight'], 12)
    >>> flat = space.flatten(model)  # one float32 vector: what scores, masks and snapshots are over
    >>> space.unflatten(flat)["0.weight"].shape
    torch.Size([4, 3])
    """

    def __init__(self, names: Sequence[str], shapes: Sequence[Sequence[int]]):
        offset = 0
        slots = []
        for name, shape in zip(names, shapes, strict=True):
            slot = Slot(name, tuple(int(s) for s in shape), offset)
            slots.append(slot)
            offset += slot.numel
        self.slots: tuple[Slot, ...] = tuple(slots)
        self.numel = offset
        self._by_name = {s.name: s for s in self.slots}

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        kinds: Sequence[str] = ("weight",),
        ignore: Iterable[str] | None = None,
        ignore_classifier: bool = True,
    ) -> ParamSpace:
        params = dict(model.named_parameters())
        names = select_parameters(model, kinds, ignore, ignore_classifier)
        return cls(names, [params[n].shape for n in names])

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    @property
    def layout_hash(self) -> str:
        """A short hash of names and shapes in order: equal hashes mean compatible flat vectors."""
        text = ";".join(f"{s.name}:{'x'.join(map(str, s.shape))}" for s in self.slots)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def tensors(self, model: nn.Module) -> list[torch.Tensor]:
        """The live parameter tensors of ``model``, in layout order."""
        params = dict(model.named_parameters())
        missing = [n for n in self.names if n not in params]
        if missing:
            raise ValueError(f"model has no parameters {missing}: it does not match this ParamSpace")
        return [params[n] for n in self.names]

    @torch.no_grad()
    def flatten(self, model: nn.Module, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A new 1-D tensor holding the prunable parameters of ``model`` in layout order."""
        return torch.cat([t.detach().reshape(-1).to(dtype) for t in self.tensors(model)])

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``vector`` shaped like each tensor, keyed by name."""
        if vector.ndim != 1 or vector.numel() != self.numel:
            raise ValueError(f"expected a vector of {self.numel} values, got shape {tuple(vector.shape)}")
        return {s.name: vector[s.offset : s.stop].view(s.shape) for s in self.slots}

    def split(self, vector: torch.Tensor) -> list[torch.Tensor]:
        """Per-tensor flat slices of ``vector``, in layout order."""
        return [vector[s.offset : s.stop] for s in self.slots]

    def __len__(self) -> int:
        return len(self.slots)

    def __repr__(self) -> str:
        return f"ParamSpace({len(self.slots)} tensors, {self.numel} values, layout {self.layout_hash})"
