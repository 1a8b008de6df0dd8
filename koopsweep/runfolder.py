"""What a finished run leaves in its folder, and reading it back checked: results.json, model.pt and masks.pt.

``model.pt`` is the final state_dict (pruned entries zero); ``masks.pt`` the keep-mask of every prunable tensor by
parameter name (bool, shaped like the parameter). Both are checked artifacts (sha256 sidecar, loaded as tensors
only, never code), so a folder copied to another machine, or downloaded from a W&B artifact, verifies the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from koopsweep.artifacts import load_checked, read_meta, save_checked
from koopsweep.errors import ArtifactError, ConfigError
from koopsweep.prune.masks import MaskSet
from koopsweep.prune.paramspace import ParamSpace

RESULTS, MODEL, MASKS = "results.json", "model.pt", "masks.pt"
MASKS_FORMAT = "koopsweep-masks"  # sidecar tag: bool keep-masks by parameter name, version 1


def save_masks(folder: Path, masks: MaskSet) -> Path:
    """Write ``masks.pt`` (keep-mask per prunable parameter) beside the run's model."""
    path = Path(folder) / MASKS
    save_checked(path, masks.by_name(), {"format": MASKS_FORMAT, "version": 1, "layout_hash": masks.space.layout_hash})
    return path


def artifact_files(folder: Path) -> list[Path]:
    """The files that make a copy of the run folder exportable: the record, the weights, the masks, their checksums."""
    folder = Path(folder)
    names = (RESULTS, MODEL, f"{MODEL}.sha256", MASKS, f"{MASKS}.sha256")
    return [folder / name for name in names]


def masks_space(masks: dict[str, torch.Tensor]) -> ParamSpace:
    """The ParamSpace the masks were written over (their names and shapes, in order)."""
    return ParamSpace(list(masks), [tuple(m.shape) for m in masks.values()])


@dataclass(frozen=True)
class RunFiles:
    """A finished run read back from its folder: the record, the final weights, the masks (None: never pruned)."""

    folder: Path
    results: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor] | None


def _results(folder: Path) -> dict[str, Any]:
    path = folder / RESULTS
    if not path.is_file():
        raise ConfigError(f"{folder} holds no {RESULTS}: give a run's output folder (outputs/runs/.../<time>-<id>)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} is unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict) or "status" not in data:
        raise ArtifactError(f"{path} is not a koopsweep results.json (no 'status')")
    return data


def _masks(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / MASKS
    if not path.is_file():
        raise ArtifactError(f"{path} is missing (runs made before koopsweep 0.3 did not write their masks)")
    masks = load_checked(path, expect={"format": MASKS_FORMAT})
    ok = isinstance(masks, dict) and masks and all(torch.is_tensor(m) and m.dtype == torch.bool for m in masks.values())
    if not ok:
        raise ArtifactError(f"{path} does not hold bool masks by parameter name")
    if masks_space(masks).layout_hash != read_meta(path).get("layout_hash"):
        raise ArtifactError(f"{path} does not match the parameter layout recorded beside it")
    return masks


def open_run(folder: Path | str) -> RunFiles:
    """Read and verify a run folder (or its results.json); one-line errors for everything a user can get wrong."""
    folder = Path(folder)
    if folder.name == RESULTS and folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"{folder} does not exist or is not a folder: give a run's output folder")
    results = _results(folder)
    if results["status"] != "finished":
        raise ConfigError(f"the run in {folder} is {results['status']}, not finished: only finished runs are exported")
    if not (folder / MODEL).is_file():
        raise ArtifactError(f"{folder / MODEL} is missing")
    state = load_checked(folder / MODEL)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ArtifactError(f"{folder / MODEL} is not a state_dict")
    masks = None if results.get("pruner") in (None, "none") else _masks(folder)
    if masks is not None:
        unknown = [name for name in masks if name not in state]
        if unknown:
            raise ArtifactError(f"{folder / MASKS} masks parameters that {MODEL} does not hold: {unknown[:3]}")
    return RunFiles(folder, results, state, masks)
