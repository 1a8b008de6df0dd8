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

from koopsweep.config.compose import compose_config
from koopsweep.store import trunk_id
from koopsweep.store.store import Store

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
