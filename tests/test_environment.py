"""What neither the suite nor a run may take from the machine: its locale, its home folder, its GPUs, a W&B login.

Each test reproduces a machine portably, in a subprocess where the process must start that way: an ASCII locale
(``LC_ALL=C`` with Python's UTF-8 mode off, which every Linux has), a home folder that cannot be written even by
root (HOME below a regular file), a ``CUDA_VISIBLE_DEVICES`` that names no device; and a store file another user
left read-only, whose refusal is simulated (file modes do not bind root, and the suite runs as root in containers).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import REPO

SAMPLE = REPO / "tests" / "data" / "report_sample"
TINY = [
    "dataset=synthetic",
    "dataset.source.train=256",
    "dataset.source.test=64",
    "dataset.batch_size=64",
    "schedule.train=1ep",
    "schedule.finetune=1ep",
    "threads=1",
]


def koopsweep(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m koopsweep ARGS`` in ``cwd`` with the suite's environment plus ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "koopsweep", *args],
        cwd=cwd,
        env={**os.environ, "KOOPSWEEP_ROOT": str(cwd), "OMP_NUM_THREADS": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_no_test_sees_the_users_wandb_login_or_home() -> None:
    """conftest drops the user's W&B variables and netrc and gives the session its own HOME."""
    from koopsweep.tracking.mode import api_key_source

    assert api_key_source() is None
    own = {"WANDB_MODE", "WANDB_DIR", "WANDB_SILENT"}  # set per test by conftest
    assert not [name for name in os.environ if name.startswith("WANDB_") and name not in own]
    assert Path.home().name.startswith("koopsweep-tests-home-")


def test_a_report_is_written_as_utf8_under_an_ascii_locale(tmp_path: Path) -> None:
    """summary.md holds ±, −, – and the figure notes printed −: under an ASCII (or Latin-1) locale both crashed."""
    folder = tmp_path / "report"
    folder.mkdir()
    with (SAMPLE / "runs.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    two_times = [  # one seed of KMP and GMP at two pruning times: the figures whose notes print −, drawn in 2 s
        r for r in rows if r["experiment"] == "timing_kmp" and r["seed"] == "0" and r["prune_epoch"] in ("1.0", "20.0")
    ]
    with (folder / "runs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([r for r in two_times if r["fraction"].startswith("0.50")])
    proc = koopsweep(["report", str(folder)], tmp_path, LC_ALL="C", LANG="C", PYTHONUTF8="0")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wrote " in proc.stdout and "accuracy KMP ? GMP" in proc.stdout  # − as '?' on an ASCII terminal
    assert "±" in (folder / "summary.md").read_text(encoding="utf-8")


@pytest.mark.slow  # a whole process with W&B offline (seconds of start-up)
def test_the_quick_start_runs_with_a_home_folder_that_cannot_be_written(tmp_path: Path) -> None:
    """W&B stages tables and artifacts under HOME; a read-only home (containers) must not fail the run."""
    (tmp_path / "a-file").write_text("HOME lies below a file: nothing can be created there, not even by root")
    env = {"HOME": str(tmp_path / "a-file" / "home"), "WANDB_MODE": "offline"}
    proc = koopsweep(TINY, tmp_path, **env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (tmp_path / "outputs").rglob("results.json")
    assert json.loads(results.read_text())["status"] == "finished"
    assert len(list(results.parent.glob("wandb/offline-run-*/*.wandb"))) == 1


def test_cuda_visible_devices_naming_no_device_means_the_cpu(tmp_path: Path) -> None:
    """device=auto falls back to the CPU; device=cuda stops with one line instead of a CUDA traceback."""
    script = (
        "import sys\n"
        "from koopsweep.train.runtime import select_device\n"
        "print(select_device('auto'))\n"
        "from koopsweep.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "device=cuda", *TINY],
        cwd=tmp_path,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "KOOPSWEEP_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "cpu", proc.stderr[-2000:]
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "koopsweep: error: device=cuda but no CUDA device is available: use device=cpu or device=auto"
    ]


def test_a_lock_file_another_user_left_read_only_is_still_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a shared store the lock file may be another user's, read-only to us: it is locked, its record left alone.

    File modes bind ordinary users, not root, and the suite also runs as root (containers, CI): the file is made
    read-only and, whoever runs the test, opening it for writing fails as it would for an ordinary user.
    """
    import builtins

    from koopsweep.store.lock import hold, holder, try_hold

    def open_as_another_user(file: Path, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
        if any(flag in mode for flag in "wax+"):
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, mode, *args, **kwargs)

    lock = tmp_path / "lock"
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere", "since": "2026-01-01T00:00:00+00:00"}))
    lock.chmod(0o444)
    monkeypatch.setattr("koopsweep.store.lock.open", open_as_another_user, raising=False)
    before = holder(lock)
    with hold(lock, "a trunk"):
        assert holder(lock) == before
    with try_hold(lock) as held_by:
        assert held_by is None and holder(lock) == before
    assert holder(lock) == before
