"""A branch's own checkpoint: the fine-tuning state, the metrics and Koopman fit summary so far, for exact resume."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from koopsweep.errors import ArtifactError
from koopsweep.store.artifacts import load_checked, remove_checked, save_checked
from koopsweep.store.trunk import remove_empty_dirs
from koopsweep.train import state as train_state

if TYPE_CHECKING:
    from koopsweep.train.run import Run

log = logging.getLogger(__name__)


class BranchCheckpoint:
    """``<store>/branches/<branch_id>/state.pt``: written when a run is stopped during fine-tuning."""

    def __init__(self, directory: Path, layout_hash: str):
        self.path = Path(directory) / "state.pt"
        self.layout_hash = layout_hash

    def save(self, run: "Run") -> None:
        payload = {"trainer": train_state.capture(run.trainer), "metrics": run.metrics, "timings": run.timings,
                   "koopman": run.koopman}  # the fit summary: results.json and the spectrum figure after a resume
        save_checked(self.path, payload, {"layout_hash": self.layout_hash})

    def restore(self, run: "Run") -> bool:
        """Load a saved fine-tuning state into ``run``; False when there is none (or it does not verify)."""
        if not self.path.exists():
            return False
        try:
            payload = load_checked(self.path, expect={"layout_hash": self.layout_hash})
        except ArtifactError as exc:
            log.warning("%s; starting the branch again from the trunk", exc)
            self.clear()
            return False
        train_state.restore(run.trainer, payload["trainer"], run.space)
        run.metrics.update(payload["metrics"])
        run.timings.update(payload["timings"])
        run.koopman = payload.get("koopman")
        return True

    def clear(self) -> None:
        """Delete the checkpoint, and its folder when nothing else is left in it."""
        remove_checked(self.path)
        remove_empty_dirs(self.path.parent, stop=self.path.parent.parent)
