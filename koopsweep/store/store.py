"""The store's layout, in one place: every folder name below ``paths.store_dir`` is spelled here.

```
<store>/trunks/<trunk id>/              one dense run (koopsweep.store.trunk.Trunk lays out its inside)
<store>/branches/<branch id>/state.pt   a stopped run's fine-tuning state (koopsweep.train.state.BranchCheckpoint)
<store>/branches/<branch id>/trunks/private-trunk/   the trunk of a run with store.reuse=false
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from koopsweep.store.trunk import READERS, Trunk, remove_empty_dirs

TRUNKS, BRANCHES = "trunks", "branches"
PRIVATE_TRUNK = "private-trunk"
BRANCH_STATE = "state.pt"


class Store:
    """A trunk store rooted at ``root`` (created lazily, by the first trunk or branch written)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def trunks_dir(self) -> Path:
        return self.root / TRUNKS

    @property
    def branches_dir(self) -> Path:
        return self.root / BRANCHES

    def trunk(self, trunk_id: str, spec: dict[str, Any] | None = None, create: bool = True) -> Trunk:
        """The shared trunk ``trunk_id`` (its folder and spec.json created if new; with ``create=False`` when its
        lock is first taken)."""
        return Trunk(self.trunks_dir / trunk_id, trunk_id, spec, create)

    def branch_dir(self, branch_id: str) -> Path:
        return self.branches_dir / branch_id

    def branch_state(self, branch_id: str) -> Path:
        """Where a stopped branch keeps its fine-tuning state."""
        return self.branch_dir(branch_id) / BRANCH_STATE

    def private_trunk(self, branch_id: str) -> Trunk:
        """The trunk a run with ``store.reuse=false`` trains for itself, inside its branch (deleted when done)."""
        return Trunk(self.branch_dir(branch_id) / TRUNKS / PRIVATE_TRUNK, PRIVATE_TRUNK, create=False)

    def tidy_branch(self, branch_id: str) -> None:
        """Remove a branch's folders that are left empty."""
        remove_empty_dirs(self.branch_dir(branch_id), stop=self.branches_dir)

    def trunk_dirs(self) -> list[Path]:
        """Every trunk folder, sorted by id."""
        folder = self.trunks_dir
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def open_trunk(self, folder: Path) -> Trunk:
        """The Trunk of an existing trunk folder (for inspection: nothing is written)."""
        return Trunk(folder, folder.name, None, create=False)

    def branch_dirs(self) -> list[Path]:
        folder = self.branches_dir
        return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def locks_of(self, path: Path) -> list[Path]:
        """The trunk locks guarding ``path`` (its trunk's, or for a branch folder its private trunk's): the writers'
        lock and the readers' one, both to be held before deleting it."""
        parts = Path(path).relative_to(self.root).parts
        if len(parts) >= 2 and parts[0] == TRUNKS:
            folder = self.trunks_dir / parts[1]
        elif len(parts) >= 2 and parts[0] == BRANCHES:
            folder = self.branch_dir(parts[1]) / TRUNKS / PRIVATE_TRUNK
        else:
            return []
        return [folder / "lock", folder / READERS]

    @staticmethod
    def subfolders() -> tuple[str, ...]:
        """The folders directly below the root (checked for writability before a run)."""
        return TRUNKS, BRANCHES
