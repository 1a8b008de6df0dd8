"""A trainer's full state (model, optimizer, RNGs, iteration, masks) as one picklable dict.

Data order and learning rate are pure functions of (seed, iteration), so this is all a resumed run needs to
continue bit for bit.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from koopsweep.prune.masks import MaskSet
from koopsweep.prune.paramspace import ParamSpace
from koopsweep.train.loop import Trainer


def capture(trainer: Trainer) -> dict[str, Any]:
    """Copy everything needed to continue ``trainer`` later (tensors moved to the CPU)."""
    state: dict[str, Any] = {
        "iteration": trainer.iteration,
        "model": {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()},
        "optimizer": _to_cpu(trainer.optimizer.state_dict()),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
        "masks": trainer.masks.state_dict() if trainer.masks is not None else None,
    }
    return state


def restore(trainer: Trainer, state: dict[str, Any], space: ParamSpace) -> None:
    """Put ``trainer`` back where ``capture`` found it (masks are rebuilt over ``space``)."""
    device = next(trainer.model.parameters()).device
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    for group_state in trainer.optimizer.state.values():
        for key, value in group_state.items():
            if torch.is_tensor(value) and key != "step":
                group_state[key] = value.to(device)
    trainer.iteration = int(state["iteration"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    masks = state.get("masks")
    if masks is not None:
        if masks["layout_hash"] != space.layout_hash:
            raise ValueError("the saved masks were made for another parameter layout")
        trainer.masks = MaskSet(space, masks["keep"].to(device))


def _to_cpu(tree: Any) -> Any:
    if torch.is_tensor(tree):
        return tree.detach().cpu().clone()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_to_cpu(v) for v in tree]
    return tree
