"""The cells of a grid that already finished: what `koopsweep sweep local --skip-finished` leaves out.

An interrupted grid resumes its stopped cell from the store, but running the sweep again would also redo every cell
that had finished. A finished run is the same cell when it has the cell's branch id (the numbers: trunk, pruner,
amount, time, fine-tuning, fit) and every setting both configs have is equal, except where and how it ran (paths,
threads, progress bars, the W&B mode: koopsweep.store.ids.RUN_ID_IGNORED). Settings only one side has are a newer
koopsweep's additions with their defaults, so a grid started before an upgrade still resumes. The finished runs are
read from the results.json files (JSON, nothing unpickled) of earlier multiruns of the same experiment,
``<paths.log_dir>/multiruns/<experiment_name>/<stamp>/<job>/results.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from koopsweep.store.ids import branch_id, run_settings
from koopsweep.sweeps.points import Point
from koopsweep.tracking.identity import flatten_config

FINISHED = "finished"
Finished = tuple[dict[str, Any], Path]  # a finished run's flat settings and its results.json


def multirun_folders(points: Sequence[Point]) -> list[Path]:
    """``<paths.log_dir>/multiruns/<experiment_name>`` of every point (one folder for a usual sweep)."""
    folders = {Path(str(p.cfg.paths.log_dir)) / "multiruns" / str(p.cfg.experiment_name) for p in points}
    return sorted(folders)


def settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config as dotted keys, without those that say where and how a run executed."""
    return flatten_config(run_settings(dict(config)))


def finished_runs(folders: Iterable[Path]) -> dict[str, list[Finished]]:
    """Branch id → the finished runs in these multirun folders; unreadable files are not finished."""
    found: dict[str, list[Finished]] = {}
    for folder in folders:
        for path in sorted(folder.glob("*/*/results.json")):
            try:
                results = json.loads(path.read_text())
                if results.get("status") == FINISHED:
                    found.setdefault(results["branch_id"], []).append((settings(results["config"]), path))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
    return found


def point_settings(point: Point) -> dict[str, Any]:
    """The settings the point's run will record (``paths`` blanked: its output folder exists only in a job)."""
    unresolved = OmegaConf.to_container(point.cfg, resolve=False)
    assert isinstance(unresolved, dict)
    if isinstance(unresolved.get("paths"), dict):
        unresolved["paths"]["output_dir"] = ""
    resolved = OmegaConf.to_container(OmegaConf.create(unresolved), resolve=True, throw_on_missing=False)
    assert isinstance(resolved, dict)
    return settings(resolved)


def same_cell(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> bool:
    """Equal on every setting both have (JSON-normalised: a tuple and a list are one value)."""
    common = mine.keys() & theirs.keys()
    return all(json.dumps(mine[k], default=str) == json.dumps(theirs[k], default=str) for k in common)


def finished_points(points: Sequence[Point]) -> dict[tuple[str, ...], Path]:
    """argv → results.json of the points that already finished in an earlier multirun of their experiment."""
    done = finished_runs(multirun_folders(points))
    out = {}
    for point in points:
        candidates = done.get(branch_id(point.cfg), [])
        if candidates:
            mine = point_settings(point)
            path = next((p for theirs, p in candidates if same_cell(mine, theirs)), None)
            if path is not None:
                out[tuple(point.argv)] = path
    return out
