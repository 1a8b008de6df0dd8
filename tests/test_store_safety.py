"""What the store holds is data, never code: planted pickles are refused unexecuted, and the store is rebuilt."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from koopsweep.artifacts import load_checked, save_checked
from koopsweep.errors import ArtifactError
from koopsweep.train.run import run_experiment
from koopsweep.train.session import build_run


class Planted:
    """What an attacker plants in a shared store: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, payload: object) -> None:
    """Replace a checked artifact by ``payload`` with a recomputed, valid sidecar (integrity is no authentication)."""
    sidecar = path.with_name(path.name + ".sha256")
    meta = json.loads(sidecar.read_text())
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    meta.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    path.write_bytes(data)
    sidecar.write_text(json.dumps(meta))


def test_load_checked_never_unpickles_objects(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "fits" / "x.pt"
    save_checked(path, {"summary": {"rank": 3}, "v": torch.ones(2)})
    plant(path, {"summary": Planted(marker)})
    with pytest.raises(ArtifactError, match="more than tensors and plain data"):
        load_checked(path)
    assert not marker.exists()
    with pytest.raises(TypeError, match="weights_only"):  # koopsweep itself never writes what it could not read
        save_checked(tmp_path / "bad.pt", {"rng": np.random.get_state()})


def test_a_store_from_an_older_koopsweep_is_rebuilt_with_one_warning(make_cfg, tiny, tmp_path: Path, caplog) -> None:
    """0.1.0 kept numpy's RNG state as an array: every state it wrote is refused, and said so once, not once each."""
    tiny_every = [*tiny, "store.checkpoint_every=2it"]
    first = run_experiment(make_cfg(tiny_every, out="a"))
    states = sorted((tmp_path / "store" / "trunks" / first["trunk_id"] / "states").glob("it-*.pt"))
    assert len(states) >= 3
    for path in states:
        iteration = int(path.stem.split("-")[1])
        plant(path, {"iteration": iteration, "rng": {"numpy": np.random.get_state()}})
    second = run_experiment(make_cfg(tiny_every, out="b"))
    assert caplog.text.count("could not be loaded") == 1
    assert f"discarded {len(states)} saved state(s)" in caplog.text
    assert second["metrics"]["final/test_loss"] == first["metrics"]["final/test_loss"]


def test_rng_states_round_trip_through_a_weights_only_artifact(make_cfg, tiny, tmp_path: Path) -> None:
    from koopsweep.train import state as train_state

    run = build_run(make_cfg(tiny))
    np.random.seed(3)
    random.seed(4)
    captured = train_state.capture(run.trainer)
    save_checked(tmp_path / "state.pt", captured)
    expected = (np.random.rand(5), [random.random() for _ in range(5)], torch.rand(3))
    train_state.restore(run.trainer, torch.load(tmp_path / "state.pt", weights_only=True), run.space)
    assert np.array_equal(np.random.rand(5), expected[0])
    assert [random.random() for _ in range(5)] == expected[1]
    assert torch.equal(torch.rand(3), expected[2])


def test_a_planted_trunk_state_is_not_executed_but_rebuilt(make_cfg, tiny, tmp_path: Path, caplog) -> None:
    first = run_experiment(make_cfg(tiny, out="a"))
    trunk = tmp_path / "store" / "trunks" / first["trunk_id"]
    target = trunk / "states" / f"it-{first['iterations']['prune_at']:09d}.pt"
    marker = tmp_path / "ran"
    plant(target, {"iteration": first["iterations"]["prune_at"], "model": Planted(marker)})
    second = run_experiment(make_cfg(tiny, out="b"))
    assert not marker.exists()
    assert caplog.text.count("more than tensors and plain data") == 1
    assert second["status"] == "finished"
    assert second["metrics"]["final/test_loss"] == first["metrics"]["final/test_loss"]
    for artifact in trunk.rglob("*.pt"):  # everything the store holds now loads as plain data
        torch.load(artifact, weights_only=True)
    torch.load(Path(second["config"]["paths"]["output_dir"]) / "model.pt", weights_only=True)
