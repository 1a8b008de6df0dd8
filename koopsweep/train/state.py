"""A trainer's full state (model, optimizer, RNGs, iteration, masks) as one dict of tensors and plain data.

Data order and learning rate are pure functions of (seed, iteration), so this is all a resumed run needs to
continue bit for bit. Everything in it loads with ``torch.load(weights_only=True)``: numpy's and Python's RNG
states (an ndarray and nested tuples) are stored as tensors, lists and numbers, never as pickled objects.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from koopsweep.artifacts import load_checked, remove_checked, save_checked
from koopsweep.errors import ArtifactError
from koopsweep.prune.masks import MaskSet
from koopsweep.prune.paramspace import ParamSpace
from koopsweep.store.trunk import remove_empty_dirs
from koopsweep.train.loop import Trainer

log = logging.getLogger(__name__)


def capture(trainer: Trainer) -> dict[str, Any]:
    """Copy everything needed to continue ``trainer`` later (tensors moved to the CPU)."""
    state: dict[str, Any] = {
        "iteration": trainer.iteration,
        "model": {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()},
        "optimizer": _to_cpu(trainer.optimizer.state_dict()),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": _numpy_rng_state(),
            "python": _python_rng_state(),
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
    _set_numpy_rng_state(rng["numpy"])
    _set_python_rng_state(rng["python"])
    masks = state.get("masks")
    if masks is not None:
        if masks["layout_hash"] != space.layout_hash:
            raise ValueError("the saved masks were made for another parameter layout")
        trainer.masks = MaskSet(space, masks["keep"].to(device))


def _numpy_rng_state() -> dict[str, Any]:
    """numpy's legacy global RNG state (MT19937) as a str, a tensor of its 624 keys and plain numbers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "bit_generator": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def _set_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"]))


def _python_rng_state() -> dict[str, Any]:
    """``random.getstate()`` as {version, state: list of ints, gauss}."""
    version, internal, gauss = random.getstate()
    return {"version": int(version), "state": [int(v) for v in internal], "gauss": gauss}


def _set_python_rng_state(state: dict[str, Any]) -> None:
    random.setstate((state["version"], tuple(state["state"]), state["gauss"]))


def _to_cpu(tree: Any) -> Any:
    if torch.is_tensor(tree):
        return tree.detach().cpu().clone()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_to_cpu(v) for v in tree]
    return tree


class BranchCheckpoint:
    """A stopped run's fine-tuning state and what it measured so far (``payload``), for an exact resume.

    Kept in the store under the branch id (koopsweep.store.store.Store.branch_state); written only when a run is
    stopped during fine-tuning, cleared when it finishes.
    """

    def __init__(self, path: Path, layout_hash: str):
        self.path = Path(path)
        self.layout_hash = layout_hash

    def save(self, trainer: Trainer, payload: dict[str, Any]) -> None:
        save_checked(self.path, {"trainer": capture(trainer), **payload}, {"layout_hash": self.layout_hash})

    def restore(self, trainer: Trainer, space: ParamSpace) -> dict[str, Any] | None:
        """Put the saved state into ``trainer`` and return the payload; None when there is none (or it is corrupt)."""
        if not self.path.exists():
            return None
        try:
            saved = load_checked(self.path, expect={"layout_hash": self.layout_hash})
        except ArtifactError as exc:
            log.warning("%s; starting the branch again from the trunk", exc)
            self.clear()
            return None
        restore(trainer, saved.pop("trainer"), space)
        return saved

    def clear(self) -> None:
        """Delete the checkpoint, and its folder when nothing else is left in it."""
        remove_checked(self.path)
        remove_empty_dirs(self.path.parent, stop=self.path.parent.parent)
