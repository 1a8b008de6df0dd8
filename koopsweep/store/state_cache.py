"""Trunk states kept in memory once read: the next cell of a warm agent that prunes there reads no file.

A reused cell loads the trunk's state at its pruning time (the whole file read, its sha256 checked, unpickled). In a
long-lived process the cells that share a trunk and a pruning time read that same file again and again. A verified
state is kept here under the identity of its file (device, inode, size, modification time) and the checksum its
sidecar records: states are only ever renamed into place, so a rewritten or repaired state is a new key.
Each caller gets its own deep copy, since a run trains in place (the optimizer's buffers alias what it loads).
The least recently used states go first beyond ``MAX_BYTES``.
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from koopsweep.artifacts import load_checked, read_meta
from koopsweep.errors import ArtifactError

MAX_BYTES = 256 * 2**20
_states: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()


def _identity(path: Path) -> tuple:
    """What changes when a file is replaced; OSError when it is not there."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def load(path: Path, expect: dict[str, Any]) -> Any:
    """``load_checked(path, expect)``, from memory when this process verified the same file before; a copy."""
    try:
        key = (str(path), _identity(path), read_meta(path).get("sha256"), tuple(sorted(expect.items())))
    except (OSError, ArtifactError):
        return load_checked(path, expect=expect)  # missing or unreadable: load_checked says which, as ArtifactError
    if key in _states:
        _states.move_to_end(key)
        return copy.deepcopy(_states[key][0])
    state = load_checked(path, expect=expect)
    size = _nbytes(state)
    if size <= MAX_BYTES:
        _states[key] = (copy.deepcopy(state), size)
        while sum(n for _, n in _states.values()) > MAX_BYTES:
            _states.popitem(last=False)
    return state


def clear() -> None:
    """Forget every kept state."""
    _states.clear()
