"""Issue 23, item 8: a fault at every durable write, then the same command: the uninterrupted result, no orphan.

The harness is koopsweep.failpoints: the writers (koopsweep.atomic, koopsweep.artifacts, the trunk's logs, the
report's swap) call ``hit(point, path)`` at each step, and a test installs what happens there: an OSError (ENOSPC,
EIO, EACCES) in this process, or, through ``KOOPSWEEP_FAILPOINTS``, a SIGKILL of a `koopsweep` subprocess.

Fast here: every point of one atomic write, the checksum gap, the logs, the environment syntax. Slow (`-m slow`,
run by .ci/run): every durable write of a real run, in the order the run makes them, failed with ENOSPC, EIO and at
the rename; a preempted branch's checkpoint; SIGKILL before and after each kind of rename and between a file and its
checksum; a report killed before its swap. After each, the same command runs again and must give the uninterrupted
run's numbers, with no temporary file left in the store or the new run's folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from koopsweep import failpoints
from koopsweep.artifacts import load_checked, save_checked
from koopsweep.atomic import append_line, atomic_write
from koopsweep.cli import main
from koopsweep.errors import ArtifactError, MachineError
from koopsweep.store.store import Store

REPO = Path(__file__).resolve().parent.parent
RUN = [
    "dataset=synthetic",
    "dataset.source.train=128",
    "dataset.source.test=64",
    "dataset.batch_size=32",
    "schedule.train=3ep",
    "schedule.finetune=1ep",
    "schedule.eval_every=4it",
    "store.checkpoint_every=4it",
    "pruner=kmp",
    "pruner.fraction=0.5",
    "koopman.window=4it",
    "logger=none",
    "threads=1",
    "progress=false",
]


class Injected:
    """A hook raising ``errno`` at the ``nth`` hit of ``point`` (any path), counting every hit it sees."""

    def __init__(self, point: str | None = None, nth: int = 0, error: int = errno.ENOSPC) -> None:
        self.point, self.nth, self.error = point, nth, error
        self.hits: list[tuple[str, Path]] = []

    def __call__(self, point: str, path: Path) -> None:
        self.hits.append((point, path))
        if point == self.point and sum(1 for p, _ in self.hits if p == point) == self.nth:
            raise OSError(self.error, os.strerror(self.error), str(path))


def installed(hook: Callable[[str, Path], None]) -> Callable[[], None]:
    return failpoints.install(hook)


# --- one atomic write, point by point ------------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["write", "fsync", "rename"])
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_a_write_that_fails_before_its_rename_leaves_the_old_file_and_no_temporary(tmp_path, point, error) -> None:
    target = tmp_path / "state.pt"
    target.write_bytes(b"old")
    remove = installed(Injected(point, 1, error))
    try:
        with pytest.raises(MachineError) as failed:
            atomic_write(target, b"new", b"er")
    finally:
        remove()
    assert target.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [target]
    assert str(failed.value).startswith(f"cannot write {target}: {os.strerror(error)}: ")
    assert isinstance(failed.value, OSError) and "\n" not in str(failed.value)


def test_a_fault_right_after_the_rename_leaves_the_new_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    remove = installed(Injected("renamed", 1, errno.EIO))
    try:
        with pytest.raises(MachineError):
            atomic_write(target, b"{}")
    finally:
        remove()
    assert target.read_bytes() == b"{}" and sorted(tmp_path.iterdir()) == [target]


def test_a_crash_between_a_file_and_its_checksum_is_refused_and_rebuilt(tmp_path: Path, caplog) -> None:
    trunk = Store(tmp_path).trunk("t", {"seed": 0})
    state = tmp_path / "trunks" / "t" / "states" / "it-000000008.pt"
    trunk.save_state(8, {"iteration": 8, "w": torch.ones(3)}, "layout")
    remove = installed(Injected("sidecar", 1, errno.EIO))
    try:
        with pytest.raises(OSError):
            trunk.save_state(8, {"iteration": 8, "w": torch.zeros(3)}, "layout")
    finally:
        remove()
    assert not state.exists()  # a write that fails there takes its file back: nothing unverifiable stays
    trunk.save_state(8, {"iteration": 8, "w": torch.ones(3)}, "layout")
    atomic_write(state, state.read_bytes()[:-1] + b"!")  # what a SIGKILL there leaves: a new file, the old sidecar
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load_checked(state)
    assert trunk.latest_state(8, "layout") is None  # discarded with one warning: the run trains it again
    assert "discarded 1 saved state" in caplog.text and not state.exists()


def test_a_log_that_cannot_be_appended_to_is_one_line(tmp_path: Path) -> None:
    remove = installed(Injected("append", 1, errno.ENOSPC))
    try:
        with pytest.raises(MachineError, match=f"cannot append to {tmp_path / 'evals.jsonl'}: No space left"):
            append_line(tmp_path / "evals.jsonl", "{}")
    finally:
        remove()


def test_faults_from_the_environment() -> None:
    first, second = failpoints.parse("rename@*/states/*=kill#2, write@*results.json=enospc")
    assert (first.point, first.pattern, first.action, first.nth) == ("rename", "*/states/*", "kill", 2)
    first(point="rename", path=Path("/s/states/it-1.pt"))  # the first hit passes
    with pytest.raises(OSError, match="No space left"):
        second("write", Path("/r/results.json"))
    with pytest.raises(ValueError, match="point@pattern=action"):
        failpoints.parse("delete@*=kill")


def test_a_checked_artifact_written_whole_verifies(tmp_path: Path) -> None:
    """The control: with no fault the same calls give files that verify (so the faults above are what fails)."""
    save_checked(tmp_path / "a.pt", {"w": torch.ones(2)})
    assert torch.equal(load_checked(tmp_path / "a.pt")["w"], torch.ones(2))


# --- every durable write of a real run (slow) -----------------------------------------------------------------------


def _results(root: Path) -> dict:
    found = sorted(root.rglob("results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text())


def _numbers(results: dict) -> dict:
    return {k: v for k, v in results["metrics"].items() if not k.startswith(("time/", "trunk/"))}


def _orphans(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*.tmp")]


def _verified(store: Path) -> None:
    for artifact in store.rglob("*.pt"):
        load_checked(artifact)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[tuple[str, str]]]:
    """The run's results without a fault, and every durable write it makes, in order (point, path below root)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    hook = Injected()
    remove = installed(hook)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KOOPSWEEP_ROOT", str(root))
            main([*RUN, f"paths.store_dir={root / 'store'}"])
    finally:
        remove()
    return _results(root), [(point, str(path.relative_to(root))) for point, path in hook.hits]


def _faults() -> list[tuple[str, int]]:
    """(point, errno) pairs the in-process matrix injects at each hit of the point."""
    return [
        ("write", errno.ENOSPC),
        ("write", errno.EIO),
        ("fsync", errno.EIO),
        ("rename", errno.EIO),
        ("sidecar", errno.EIO),
        ("append", errno.ENOSPC),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "error"), _faults())
def test_every_durable_write_of_a_run_fails_in_one_line_and_the_same_command_finishes(
    tmp_path, uninterrupted, capsys, point, error
) -> None:
    reference, writes = uninterrupted
    count = sum(1 for p, _ in writes if p == point)
    assert count > 0
    store = tmp_path / "store"
    for nth in range(1, count + 1):
        remove = installed(Injected(point, nth, error))
        try:
            with pytest.raises(SystemExit) as exit_info:
                main([*RUN, f"paths.store_dir={store}"])
        finally:
            remove()
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.startswith("koopsweep: error:")]
        assert exit_info.value.code == 2 and len(lines) == 1 and "Traceback" not in err, (point, nth, err)
        assert os.strerror(error) in lines[0]
        assert not _orphans(store), (point, nth)
        _verified(store)
        failed = _results(tmp_path / "outputs")
        if failed["status"] == "failed":
            assert os.strerror(error) in failed["error"]
        main([*RUN, f"paths.store_dir={store}"])  # the same command on a disk that works again
        assert _numbers(_results(tmp_path / "outputs")) == _numbers(reference), (point, nth)
        assert not _orphans(store, tmp_path / "outputs"), (point, nth)
        shutil.rmtree(store)  # every fault meets the store at the same place


@pytest.mark.slow
def test_a_preempted_branch_whose_checkpoint_cannot_be_written_starts_again(
    tmp_path, uninterrupted, capsys, sigterm_at
) -> None:
    """SIGTERM in fine-tuning saves the branch's state: when that write fails, one line; the same command then
    fine-tunes from the trunk again and finishes with the uninterrupted numbers."""
    store = tmp_path / "store"
    remove = installed(_at_branch_state(errno.ENOSPC))
    try:
        with sigterm_at(14), pytest.raises(SystemExit) as exit_info:
            main([*RUN, f"paths.store_dir={store}"])
    finally:
        remove()
    assert exit_info.value.code == 2
    assert "/branches/" in capsys.readouterr().err
    assert not (store / "branches").exists() or not any((store / "branches").rglob("state.pt"))
    main([*RUN, f"paths.store_dir={store}"])
    assert _numbers(_results(tmp_path / "outputs")) == _numbers(uninterrupted[0])
    assert not _orphans(store, tmp_path / "outputs")


def _at_branch_state(error: int) -> Callable[[str, Path], None]:
    def hook(point: str, path: Path) -> None:
        if point == "write" and "/branches/" in str(path):
            raise OSError(error, os.strerror(error), str(path))

    return hook


KILLS = [
    ("rename", "*/states/it-*.pt"),
    ("renamed", "*/states/it-*.pt"),
    ("sidecar", "*/states/it-*.pt"),
    ("rename", "*/states/it-*.pt.sha256"),
    ("rename", "*/fits/*.pt"),
    ("renamed", "*/fits/*.pt"),
    ("sidecar", "*/fits/*.pt"),
    ("rename", "*/spec.json"),
    ("append", "*/evals.jsonl"),
    ("append", "*/curves.jsonl"),
    ("rename", "*/model.pt"),
    ("sidecar", "*/masks.pt"),
    ("rename", "*/results.json"),
    ("renamed", "*/results.json"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "pattern"), KILLS)
def test_a_run_killed_at_a_rename_or_between_a_file_and_its_checksum_resumes_exactly(
    tmp_path, uninterrupted, point, pattern
) -> None:
    """SIGKILL (no handler runs, nothing is tidied) at the first such write; the same command finishes exactly."""
    store = tmp_path / "store"
    env = {**os.environ, "KOOPSWEEP_FAILPOINTS": f"{point}@{pattern}=kill#1", "PYTHONPATH": str(REPO)}
    env["OMP_NUM_THREADS"] = "1"
    killed = subprocess.run(
        [sys.executable, "-m", "koopsweep", *RUN, f"paths.store_dir={store}"], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    main([*RUN, f"paths.store_dir={store}"])
    assert _numbers(_results(tmp_path / "outputs")) == _numbers(uninterrupted[0])
    assert not _orphans(store), _orphans(store)
    _verified(store)
    finished = [p for p in (tmp_path / "outputs").rglob("results.json")]
    assert all(json.loads(p.read_text())["status"] == "finished" for p in finished)


@pytest.mark.slow
def test_a_report_killed_before_its_swap_leaves_the_previous_one_and_no_staging(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for i, method in enumerate(["gmp", "kmp"]):
        (runs / str(i)).mkdir(parents=True)
        payload = {"status": "finished", "pruner": method, "branch_id": f"b{i}", "metrics": {"final/test_acc": 0.5}}
        (runs / str(i) / "results.json").write_text(json.dumps(payload))
    report = tmp_path / "report"
    main(["report", str(runs), "--out", str(report)])
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    env = {**os.environ, "KOOPSWEEP_FAILPOINTS": "swap@*=kill", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-m", "koopsweep", "report", str(report)], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".report")]  # the killed redraw's staging folder
    main(["report", str(report)])
    assert {p.name: p.read_bytes() for p in report.iterdir()}["runs.csv"] == before["runs.csv"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # removed by the next redraw
