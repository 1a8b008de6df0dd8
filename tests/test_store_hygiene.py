"""A store shared by a group and kept tidy: umask-honouring files, gc that respects locks, no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from koopsweep.atomic import atomic_write
from koopsweep.commands.store import main as store_main
from koopsweep.store.store import Store
from koopsweep.train.run import run_experiment


@pytest.fixture
def umask():
    """Set the process umask for a test, and restore it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_files_honour_the_umask(make_cfg, tiny, tmp_path: Path, umask) -> None:
    for mask in (0o002, 0o027):
        umask(mask)
        atomic_write(tmp_path / f"f{mask:o}", b"x")
        assert _mode(tmp_path / f"f{mask:o}") == 0o666 & ~mask
    umask(0o002)  # a store shared by a group
    run_experiment(make_cfg([*tiny, "pruner=kmp", "store.keep_windows=true"]))
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert len(files) > 10 and all(_mode(p) == 0o664 for p in files), {p.name: oct(_mode(p)) for p in files}


def test_gc_skips_a_trunk_whose_lock_is_held(tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    busy, idle = (
        Store(store).trunk("busy0000busy0000", {"seed": 0}),
        Store(store).trunk("idle0000idle0000", {"seed": 1}),
    )
    with busy.lock():
        store_main(["--store", str(store), "gc", "--all", "--apply"])
    out = capsys.readouterr().out
    assert f"skipping trunks/{busy.id}: in use, locked by pid {os.getpid()} on " in out
    assert busy.path.is_dir() and not idle.path.exists() and "1 item(s), freed" in out


def test_a_stopped_and_resumed_run_leaves_no_unused_state_or_empty_folder(
    make_cfg, tiny, tmp_path: Path, sigterm_at
) -> None:
    """Stopped inside the Koopman window, the run records the window again from its start: the state where it
    stopped is then of no use and goes once a run has passed it; a finished branch leaves no folder behind."""
    args = [*tiny, "pruner=kmp", "schedule.prune_at=1ep"]  # window [0, 8], fine-tuning to 16
    store = tmp_path / "store"
    with sigterm_at(5), pytest.raises(SystemExit):
        first = make_cfg(args, out="a")
        run_experiment(first)
    (trunk,) = (store / "trunks").iterdir()

    def states() -> list[str]:
        return sorted(p.name for p in (trunk / "states").glob("*.pt"))

    assert states() == ["it-000000000.pt", "it-000000005.pt"]  # where it stopped: the resume point
    with sigterm_at(12), pytest.raises(SystemExit):
        run_experiment(make_cfg(args, out="b"))  # passes 5, records the window, stops in fine-tuning
    assert states() == ["it-000000000.pt", "it-000000008.pt"]
    assert len(list((store / "branches").rglob("state.pt"))) == 1
    assert run_experiment(make_cfg(args, out="c"))["status"] == "finished"
    assert not any((store / "branches").iterdir())


def test_a_run_without_reuse_leaves_no_empty_folder_even_when_it_diverges(make_cfg, tiny, tmp_path: Path) -> None:
    for extra in (["optimizer.lr=1e9"], []):
        results = run_experiment(make_cfg([*tiny, "store.reuse=false", *extra], out=f"run{len(extra)}"))
        assert results["status"] == ("diverged" if extra else "finished")
        leftovers = [p for p in (tmp_path / "store").rglob("*")]
        assert leftovers in ([], [tmp_path / "store" / "branches"]), leftovers


def test_a_run_failing_before_its_first_state_leaves_no_trunk(make_cfg, tiny, tmp_path: Path, monkeypatch) -> None:
    """A loader that cannot describe its data defers the window check to run time: the run fails there, and no
    trunk folder holding nothing to reuse stays (none is made before the lock is taken, and that one goes)."""
    from koopsweep.data.synthetic import make_synthetic
    from koopsweep.errors import ConfigError

    monkeypatch.delattr(make_synthetic, "describe")
    cfg = make_cfg([*tiny, "pruner=kmp", "schedule.prune_at=1it"])  # too short a window, unknown at preflight
    with pytest.raises(ConfigError, match="fewer than the 3 DMD needs"):
        run_experiment(cfg)
    trunks = tmp_path / "store" / "trunks"
    assert not trunks.exists() or not any(trunks.iterdir())  # nothing is written before the run can fail
