"""A run waiting for another run's trunk says whose lock it waits for and stops promptly on SIGTERM."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import open_dict

from koopsweep.config.compose import compose_config
from koopsweep.store import trunk_id
from koopsweep.store.lock import hold, holder, try_hold
from koopsweep.store.store import Store
from koopsweep.store.trunk import READERS

TINY = [
    "logger=none",
    "threads=1",
    "dataset=synthetic",
    "dataset.source.train=256",
    "dataset.source.test=128",
    "dataset.batch_size=64",
    "schedule.train=1ep",
    "schedule.finetune=2it",
    "pruner=gmp",
]


def _line_containing(stream, text: str, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = stream.readline()
            if text in line:
                return line
            if not line:
                break
    raise AssertionError(f"no line with {text!r} within {timeout} s")


def test_waiting_run_names_the_holder_and_stops_on_sigterm(tmp_path: Path) -> None:
    trunk = Store(tmp_path / "store").trunk(trunk_id(compose_config(TINY)))
    env = {**os.environ, "KOOPSWEEP_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    with trunk.lock():
        info = json.loads((trunk.path / "lock").read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        proc = subprocess.Popen(
            [sys.executable, "-m", "koopsweep", *TINY, "hydra.run.dir=out"],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = _line_containing(proc.stderr, "waiting for", timeout=120)
            assert f"trunk {trunk.id}: locked by pid {os.getpid()} on {socket.gethostname()} since" in line
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            stopped_after = time.monotonic() - sent
        finally:
            proc.kill()
    assert code == 143 and stopped_after < 5, (code, stopped_after)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["status"] == "preempted"
    assert (trunk.path / "lock").read_text() == ""  # released: names nobody


class _StopWaiting(Exception):
    pass


def test_readers_share_the_trunk_and_keep_deleters_out(tmp_path: Path) -> None:
    trunk = Store(tmp_path / "store").trunk("t0")
    with trunk.reading(), trunk.reading():  # any number of readers at once
        assert not trunk.remove_if_unused()  # a reader is in: the trunk is not deleted under it
        with try_hold(trunk.path / READERS) as busy:
            assert busy == {}  # held by readers, who leave no name
    with trunk.lock(), trunk.reading():  # a writer extending the trunk does not keep readers out
        pass
    assert trunk.remove_if_unused() and not trunk.path.exists()


def test_a_reader_waiting_for_a_deletion_stops_when_asked(tmp_path: Path) -> None:
    trunk = Store(tmp_path / "store").trunk("t0")
    calls = []

    def stop() -> None:
        calls.append(1)
        raise _StopWaiting

    with hold(trunk.path / READERS, "deleting"):  # what `store gc` holds while it removes the trunk
        try:
            with trunk.reading(stop):
                raise AssertionError("read while the trunk was being deleted")
        except _StopWaiting:
            pass
    assert calls == [1]


def test_a_run_reading_a_stored_state_finishes_while_another_extends_the_trunk(tmp_path: Path) -> None:
    """The writer holds the trunk's lock for its whole extension; the reader's state was written long before."""
    from koopsweep.train.run import run_experiment

    long = [*TINY, "schedule.train=100000it", "store.checkpoint_every=4it"]
    env = {**os.environ, "KOOPSWEEP_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cfg = compose_config([*long, "schedule.prune_at=4it", "schedule.finetune=1it", f"paths.store_dir={tmp_path}/s"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "first")
    run_experiment(cfg)  # the state at iteration 4 is now in the store
    trunk = Store(tmp_path / "s").trunk(trunk_id(cfg))
    store = f"paths.store_dir={tmp_path}/s"

    def start(*overrides: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "koopsweep", *long, store, *overrides]
        return subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    writer = start("schedule.prune_at=100000it", "hydra.run.dir=writer")
    try:
        deadline = time.monotonic() + 120
        while (holder(trunk.path / "lock") or {}).get("pid") != writer.pid:
            assert writer.poll() is None and time.monotonic() < deadline, "the writer never took the trunk's lock"
            time.sleep(0.1)
        reader = start("schedule.prune_at=4it", "pruner.fraction=0.5", "hydra.run.dir=reader")
        _, err = reader.communicate(timeout=40)
        assert reader.returncode == 0, err.decode()[-2000:]
        assert writer.poll() is None, "the writer finished first: the test proves nothing"
        assert b"waiting for" not in err
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=60)
    results = json.loads((tmp_path / "reader" / "results.json").read_text())
    assert results["status"] == "finished" and results["metrics"]["trunk/reused_iterations"] == 4
