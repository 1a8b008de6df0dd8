"""A pruned network in the layouts other tools read: torch.nn.utils.prune's, a plain dense state_dict, masks alone.

Training never uses prune's reparametrisation (it renames ``weight`` to ``weight_orig``, which would change the
flattened layout and the checkpoints); a finished run is converted into it here, for the user's own tools.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

State = dict[str, torch.Tensor]
FORMATS = ("prune", "dense", "masks")


def _check(state: State, masks: State) -> None:
    missing = [name for name in masks if name not in state]
    if missing:
        raise ValueError(f"masks name parameters the state_dict does not hold: {missing[:3]}")
    wrong = [name for name, mask in masks.items() if mask.shape != state[name].shape]
    if wrong:
        raise ValueError(f"masks of {wrong[:3]} do not have their parameters' shapes")


def dense_state(state: State, masks: State) -> State:
    """The state_dict with every removed entry exactly 0: loads into the model's own class."""
    _check(state, masks)
    return {
        key: torch.where(masks[key], value, torch.zeros((), dtype=value.dtype)) if key in masks else value.clone()
        for key, value in state.items()
    }


def prune_layout(state: State, masks: State) -> State:
    """The state_dict torch.nn.utils.prune gives a model pruned with these masks: for each masked ``m.weight``,
    ``m.weight_orig`` (the weights) and ``m.weight_mask`` (1 kept, 0 removed, in the weights' dtype)."""
    out: State = {}
    for key, value in dense_state(state, masks).items():
        if key in masks:
            out[f"{key}_orig"] = value
            out[f"{key}_mask"] = masks[key].to(value.dtype)
        else:
            out[key] = value
    return out


def masks_only(masks: State) -> State:
    """The keep-masks by parameter name (bool, True = kept): what ``prune.custom_from_mask`` takes."""
    return {name: mask.to(torch.bool).clone() for name, mask in masks.items()}


def export_state(fmt: str, state: State, masks: State) -> State:
    """One of FORMATS from a run's final state_dict and masks."""
    if fmt == "prune":
        return prune_layout(state, masks)
    if fmt == "dense":
        return dense_state(state, masks)
    if fmt == "masks":
        return masks_only(masks)
    raise ValueError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")


def load_prune_layout(model: nn.Module, state: State) -> nn.Module:
    """Load a ``prune_layout`` state_dict into a fresh model: every ``*_mask`` entry's tensor is reparametrised
    first (``prune.identity``), exactly as torch.nn.utils.prune would have left the model."""
    for key in state:
        if key.endswith("_mask"):
            module_name, _, name = key[: -len("_mask")].rpartition(".")
            prune.identity(model.get_submodule(module_name), name)
    model.load_state_dict(state)
    return model
