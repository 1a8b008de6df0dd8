"""The cells of a grid that already finished: what `koopsweep sweep local --skip-finished` leaves out.

An interrupted grid resumes its stopped cell from the store, but running the sweep again would also redo every cell
that had finished. A cell is the same cell when its W&B run id is the same (koopsweep.store.ids.wandb_run_id: the
branch id and every setting except paths, threads, progress bars and the W&B mode), so the finished ones are read
from the results.json files (JSON, nothing unpickled) of earlier multiruns of the same experiment,
``<paths.log_dir>/multiruns/<experiment_name>/<stamp>/<job>/results.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import OmegaConf

from koopsweep.store.ids import branch_id, wandb_run_id
from koopsweep.sweeps.points import Point

FINISHED = "finished"


def multirun_folders(points: Sequence[Point]) -> list[Path]:
    """``<paths.log_dir>/multiruns/<experiment_name>`` of every point (one folder for a usual sweep)."""
    folders = {Path(str(p.cfg.paths.log_dir)) / "multiruns" / str(p.cfg.experiment_name) for p in points}
    return sorted(folders)


def finished_run_ids(folders: Iterable[Path]) -> dict[str, Path]:
    """Run id → results.json of every finished run in these multirun folders; unreadable files are not finished."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/*/results.json")):
            try:
                results = json.loads(path.read_text())
                if results.get("status") == FINISHED:
                    found[wandb_run_id(results["config"], results["branch_id"])] = path
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
    return found


def point_run_id(point: Point) -> str:
    """The W&B run id the point's run will have (the run computes it from the same resolved config).

    ``paths`` is not part of the id, and its output folder is known only inside a Hydra job: blanked here.
    """
    cfg = point.cfg
    unresolved = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(unresolved, dict)
    if isinstance(unresolved.get("paths"), dict):
        unresolved["paths"]["output_dir"] = ""
    resolved = OmegaConf.to_container(OmegaConf.create(unresolved), resolve=True, throw_on_missing=False)
    assert isinstance(resolved, dict)
    return wandb_run_id(resolved, branch_id(cfg))


def finished_points(points: Sequence[Point]) -> dict[tuple[str, ...], Path]:
    """argv → results.json of the points that already finished in an earlier multirun of their experiment."""
    done = finished_run_ids(multirun_folders(points))
    out = {}
    for point in points:
        path = done.get(point_run_id(point))
        if path is not None:
            out[tuple(point.argv)] = path
    return out
