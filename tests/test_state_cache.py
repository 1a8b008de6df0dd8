"""Trunk states kept in memory once read: reused while the file is the same, copies handed out, rewrites reread."""

from __future__ import annotations

import pytest
import torch

from koopsweep import artifacts
from koopsweep.errors import ArtifactError
from koopsweep.store import state_cache
from koopsweep.store.trunk import Trunk


@pytest.fixture(autouse=True)
def _empty_cache():
    state_cache.clear()
    yield
    state_cache.clear()


def test_a_state_is_read_once_and_every_reader_gets_its_own_copy(tmp_path, monkeypatch):
    trunk = Trunk(tmp_path / "t", "t")
    trunk.save_state(8, {"w": torch.arange(4.0), "iteration": 8}, "L")
    reads = []
    real = artifacts.load_checked
    monkeypatch.setattr(state_cache, "load_checked", lambda *a, **k: reads.append(a) or real(*a, **k))
    first = trunk.read_state(8, "L")
    first["w"].add_(100)  # a run trains in place
    second = trunk.read_state(8, "L")
    assert len(reads) == 1 and torch.equal(second["w"], torch.arange(4.0))
    assert trunk.read_state(8, "other layout") is None  # the expectation is part of the key: checked, refused
    trunk.save_state(8, {"w": torch.ones(4), "iteration": 8}, "L")  # rewritten (renamed into place): read again
    assert torch.equal(trunk.read_state(8, "L")["w"], torch.ones(4)) and len(reads) == 3


def test_a_damaged_state_is_never_served_from_memory(tmp_path):
    trunk = Trunk(tmp_path / "t", "t")
    trunk.save_state(8, {"w": torch.zeros(2)}, "L")
    assert trunk.read_state(8, "L") is not None
    path = next((tmp_path / "t" / "states").glob("*.pt"))
    path.write_bytes(path.read_bytes()[:-3])  # truncated in place: another size, another key
    assert trunk.read_state(8, "L") is None
    with pytest.raises(ArtifactError):
        state_cache.load(path, {})


def test_memory_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(state_cache, "MAX_BYTES", 100)
    trunk = Trunk(tmp_path / "t", "t")
    for it in (1, 2, 3):
        trunk.save_state(it, {"w": torch.zeros(10)}, "L")  # 40 bytes each
        trunk.read_state(it, "L")
    assert len(state_cache._states) == 2
