"""A trunk: one dense run's states, snapshot windows, Koopman fits and curves under its content id.

Layout inside a trunk's folder (koopsweep.store.store.Store says where that folder is): ``spec.json`` (what the id
hashes), ``lock`` (held by the one process that extends the trunk), ``readers`` (held shared by the processes
that only read states already there, and exclusively by whatever deletes them), ``states/it-<iteration>.pt``
(full training states), ``windows/<key>/`` (snapshot chunks and Gram, when kept), ``fits/<key>.pt`` (what
pruning needs from a Koopman fit), ``curves.jsonl`` (dense curves) and ``evals.jsonl`` (the dense test evaluation
at each pruning time, so the runs pruning there do not repeat it).
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

from koopsweep.artifacts import load_checked, read_meta, remove_checked, save_checked
from koopsweep.atomic import remove_stale_temps, write_json_atomic
from koopsweep.errors import ArtifactError
from koopsweep.store import state_cache
from koopsweep.store.lock import hold, try_hold
from koopsweep.store.records import append_record, finite_number, read_records

log = logging.getLogger(__name__)
_STATE_RE = re.compile(r"^it-(\d+)\.pt$")
READERS = "readers"


class Trunk:
    """Files of one dense run, shared by every branch whose trunk id matches."""

    def __init__(self, path: Path, trunk_id: str, spec: dict[str, Any] | None = None, create: bool = True):
        self.id = trunk_id
        self.path = Path(path)
        self._spec = spec
        if create:
            self._write_spec()

    def _write_spec(self) -> None:
        """Create the folder and spec.json; a spec.json that is not what this trunk's id hashes is written again."""
        self.path.mkdir(parents=True, exist_ok=True)
        if self._spec is None:
            return
        if (self.path / "spec.json").exists():
            stored, problem = self.read_spec()
            expected = json.loads(json.dumps(self._spec, default=str))
            if problem is None and stored == expected:
                return
            log.warning("trunk %s: spec.json %s; written again", self.id, problem or "differs from what the id hashes")
        write_json_atomic(self.path / "spec.json", self._spec)

    @contextlib.contextmanager
    def lock(self, while_waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Exclusive lock across processes: one trains the trunk, the others wait (saying for whom) and reuse it.

        ``while_waiting`` runs between polls while another process holds the lock; raise from it to stop waiting.
        """
        with hold(self.path / "lock", f"trunk {self.id}", while_waiting):
            self._write_spec()  # `store gc` may have removed the trunk while we waited
            remove_stale_temps(self.path)  # what writers killed before their rename left behind
            yield

    @contextlib.contextmanager
    def reading(self, while_waiting: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Shared lock for reading what is already stored, taken beside (not after) a writer's exclusive lock.

        A run whose state and fit are in the store reads them under this lock and never waits for another process
        that is extending the trunk (states are renamed into place whole, so a reader never sees half of one).
        Only deleting the trunk (``store gc``, a failed run's tidy-up) excludes readers; that is brief.
        """
        with hold(self.path / READERS, f"trunk {self.id} (being removed)", while_waiting, shared=True):
            self._write_spec()  # a damaged spec.json is written again (the same bytes as any writer's: atomic)
            remove_stale_temps(self.path)  # safe without the writers' lock: only files of writers that are gone
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

    def save_state(self, iteration: int, state: dict[str, Any], layout_hash: str, temporary: bool = False) -> None:
        """Keep a full training state; ``temporary`` marks one saved only because a run was stopped there."""
        meta: dict[str, Any] = {"iteration": iteration, "layout_hash": layout_hash}
        if temporary:
            meta["temporary"] = True
        save_checked(self._state_path(iteration), state, meta)

    def drop_temporary_states(self, before: int) -> None:
        """Delete the states saved on a stop (not on the checkpoint period) below ``before``, once a run passed them.

        A run stopped inside a Koopman window restarts the window from its start, so the state where it stopped
        would otherwise stay in the store unused. Call under the lock.
        """
        for iteration in self.state_iterations():
            path = self._state_path(iteration)
            if iteration < before and _meta_or_none(path).get("temporary"):
                remove_checked(path)

    def remove_if_unused(self) -> bool:
        """Delete this trunk when it holds nothing to reuse (no state, window or fit) and nobody holds its lock.

        What a run that failed early leaves behind: spec.json, the lock file and maybe a few curve lines.
        """
        with try_hold(self.path / "lock") as busy, try_hold(self.path / READERS) as reading:
            if busy is not None or reading is not None or not self.path.is_dir():
                return False
            keeps = (self.state_iterations(), _entries(self.path / "windows"), _entries(self.path / "fits"))
            if any(keeps):
                return False
            self.remove()
        return True

    def latest_state(self, at_most: int, layout_hash: str) -> dict[str, Any] | None:
        """The verified state with the largest iteration <= ``at_most``; the unloadable ones above it are removed.

        A store written by an older koopsweep can hold dozens of states this version refuses to load; they are
        named in one warning, not one each.
        """
        discarded: list[int] = []
        first_problem = ""
        found = None
        for iteration in reversed([i for i in self.state_iterations() if i <= at_most]):
            found, problem = self._load_or_discard(iteration, layout_hash)
            if problem is None:
                break
            discarded.append(iteration)
            first_problem = first_problem or problem
        if discarded:
            resumed = "training from the start" if found is None else f"resuming from iteration {found['iteration']}"
            log.warning(
                "trunk %s: discarded %d saved state(s) that could not be loaded (iterations %d..%d; first: %s); %s",
                *(self.id, len(discarded), discarded[-1], discarded[0], first_problem, resumed),
            )
        return found

    def read_state(self, iteration: int, layout_hash: str) -> dict[str, Any] | None:
        """The verified state at exactly ``iteration``, or None; a reader's load: nothing is removed or repaired.

        Kept in this process once read (koopsweep.store.state_cache): a warm agent's next cell here reads no file."""
        try:
            expect = {"iteration": iteration, "layout_hash": layout_hash}
            return state_cache.load(self._state_path(iteration), expect)
        except ArtifactError:
            return None

    def _load_or_discard(self, iteration: int, layout_hash: str) -> tuple[dict[str, Any] | None, str | None]:
        path = self._state_path(iteration)
        try:
            return load_checked(path, expect={"iteration": iteration, "layout_hash": layout_hash}), None
        except ArtifactError as exc:
            remove_checked(path)
            return None, str(exc)

    def window_dir(self, key: str) -> Path:
        return self.path / "windows" / key

    def window_dirs(self) -> list[Path]:
        """The recorded snapshot windows kept in this trunk."""
        return sorted(p for p in _entries(self.path / "windows") if p.is_dir())

    def fit_keys(self) -> list[str]:
        """The cached Koopman fits, by key."""
        return sorted(p.stem for p in _entries(self.path / "fits") if p.suffix == ".pt")

    def read_spec(self) -> tuple[dict[str, Any], str | None]:
        """spec.json and, when it is missing or not a JSON object (crash, hand edit), why; never raises."""
        spec_file = self.path / "spec.json"
        if not spec_file.exists():
            return {}, "no spec.json"
        try:
            spec = json.loads(spec_file.read_text())
        except (OSError, ValueError) as exc:
            return {}, f"spec.json unreadable ({type(exc).__name__})"
        if not isinstance(spec, dict):
            return {}, f"spec.json holds a {type(spec).__name__}, not an object"
        return spec, None

    def last_used(self) -> float:
        """The newest modification time of any of its files."""
        return max((p.stat().st_mtime for p in self.path.rglob("*") if p.is_file()), default=self.path.stat().st_mtime)

    def fit_path(self, key: str) -> Path:
        return self.path / "fits" / f"{key}.pt"

    def append_curve(self, record: dict[str, Any]) -> None:
        """Dense curves, one checksummed JSON line per evaluation (duplicates after a resume are harmless)."""
        append_record(self.path / "curves.jsonl", record)

    def curve(self, until: int) -> list[dict[str, Any]]:
        """Stored dense-curve records up to ``until``, one per iteration (the latest written wins); damaged ones
        are dropped with one warning."""
        records: dict[int, dict[str, Any]] = {}
        for record in read_records(self.path / "curves.jsonl", _curve_problem, f"trunk {self.id}"):
            if record["iteration"] <= until:
                records[record["iteration"]] = record
        return [records[i] for i in sorted(records)]

    def cached_eval(self, key: str) -> dict[str, float] | None:
        """A dense evaluation stored by an earlier run (``key`` names the iteration and the evaluation settings)."""
        for record in reversed(read_records(self.path / "evals.jsonl", _eval_problem, f"trunk {self.id}")):
            if record["key"] == key:
                return {"acc": float(record["acc"]), "loss": float(record["loss"])}
        return None

    def save_eval(self, key: str, result: dict[str, float]) -> None:
        """Keep a dense evaluation for the runs that prune at the same time (one checksummed JSON line, appended)."""
        append_record(self.path / "evals.jsonl", {"key": key, "acc": result["acc"], "loss": result["loss"]})

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())


def _eval_problem(record: dict[str, Any]) -> str | None:
    if not isinstance(record.get("key"), str):
        return "no evaluation key"
    acc, loss = record.get("acc"), record.get("loss")
    if not (finite_number(acc) and 0 <= acc <= 1 and finite_number(loss) and loss >= 0):
        return "accuracy or loss missing or out of range"
    return None


def _curve_problem(record: dict[str, Any]) -> str | None:
    iteration = record.get("iteration")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        return "no iteration"
    if not all(finite_number(v) for k, v in record.items() if k not in ("iteration", "stage")):
        return "a value that is not a finite number"
    return None


def _meta_or_none(path: Path) -> dict[str, Any]:
    try:
        return read_meta(path)
    except ArtifactError:
        return {}


def _entries(folder: Path) -> list[Path]:
    return list(folder.iterdir()) if folder.is_dir() else []


def remove_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove the empty folders in and above ``folder`` (bottom-up), up to but not including ``stop``.

    Only empty folders go (rmdir), so a folder another process is filling at the same time stays.
    """
    folder, stop = Path(folder), Path(stop)
    if folder.is_dir():
        for inner in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                inner.rmdir()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, gone or not ours: stop climbing
            return
        folder = folder.parent
