"""A trunk: one dense run's states, snapshot windows, Koopman fits and curves under its content id.

Layout under ``<store_dir>/trunks/<trunk_id>/``: ``spec.json`` (what the id hashes), ``lock``, ``states/
it-<iteration>.pt`` (full training states), ``windows/<key>/`` (snapshot chunks and Gram), ``fits/<key>.pt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from koopsweep.errors import ArtifactError
from koopsweep.atomic import write_json_atomic
from koopsweep.store.artifacts import load_checked, remove_checked, save_checked
from koopsweep.store.lock import hold

log = logging.getLogger(__name__)
_STATE_RE = re.compile(r"^it-(\d+)\.pt$")


class Trunk:
    """Files of one dense run, shared by every branch whose trunk id matches."""

    def __init__(self, store_dir: Path, trunk_id: str, spec: dict[str, Any] | None = None):
        self.id = trunk_id
        self.path = Path(store_dir) / "trunks" / trunk_id
        self._spec = spec
        self._write_spec()

    def _write_spec(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self._spec is not None and not (self.path / "spec.json").exists():
            write_json_atomic(self.path / "spec.json", self._spec)

    @contextlib.contextmanager
    def lock(self, while_waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Exclusive lock across processes: one trains the trunk, the others wait (saying for whom) and reuse it.

        ``while_waiting`` runs between polls while another process holds the lock; raise from it to stop waiting.
        """
        with hold(self.path / "lock", f"trunk {self.id}", while_waiting):
            self._write_spec()  # `store gc` may have removed the trunk while we waited
            yield

    def _state_path(self, iteration: int) -> Path:
        return self.path / "states" / f"it-{iteration:09d}.pt"

    def state_iterations(self) -> list[int]:
        """Iterations with a saved state, ascending (not yet verified)."""
        folder = self.path / "states"
        if not folder.is_dir():
            return []
        found = (_STATE_RE.match(p.name) for p in folder.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def save_state(self, iteration: int, state: dict[str, Any], layout_hash: str) -> None:
        save_checked(self._state_path(iteration), state, {"iteration": iteration, "layout_hash": layout_hash})

    def load_state(self, iteration: int, layout_hash: str) -> dict[str, Any] | None:
        """The verified state at ``iteration``; a corrupt one is deleted with a warning and None returned."""
        path = self._state_path(iteration)
        try:
            return load_checked(path, expect={"iteration": iteration, "layout_hash": layout_hash})
        except ArtifactError as exc:
            log.warning("trunk %s: %s; discarding it and rebuilding from an earlier state", self.id, exc)
            remove_checked(path)
            return None

    def latest_state(self, at_most: int, layout_hash: str) -> dict[str, Any] | None:
        """The verified state with the largest iteration <= ``at_most`` (corrupt ones are skipped and removed)."""
        for iteration in reversed([i for i in self.state_iterations() if i <= at_most]):
            state = self.load_state(iteration, layout_hash)
            if state is not None:
                return state
        return None

    def window_dir(self, key: str) -> Path:
        return self.path / "windows" / key

    def fit_path(self, key: str) -> Path:
        return self.path / "fits" / f"{key}.pt"

    def append_curve(self, record: dict[str, Any]) -> None:
        """Dense curves, one JSON line per evaluation (duplicates after a resume are harmless)."""
        with open(self.path / "curves.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")

    def curve(self, until: int) -> list[dict[str, Any]]:
        """Stored dense-curve records up to ``until``, one per iteration (the latest written wins)."""
        path = self.path / "curves.jsonl"
        if not path.exists():
            return []
        records: dict[int, dict[str, Any]] = {}
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if record.get("iteration", until + 1) <= until:
                records[record["iteration"]] = record
        return [records[i] for i in sorted(records)]

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
