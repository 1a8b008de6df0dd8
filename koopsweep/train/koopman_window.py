"""The Koopman window of a run: recorded into its trunk while the dense run passes through it, fitted once.

The window [t − window, t] lives under ``<trunk>/windows/<key>/``; the fit's vectors (fixed point, gradient
reconstruction) are cached under ``<trunk>/fits/`` per window and DMD settings, so every fraction and method
pruning at the same t reuses one fit.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from koopsweep.errors import ArtifactError, ConfigError
from koopsweep.koopman import SnapshotHook, SnapshotRecorder, SnapshotWindow, fit_dmd
from koopsweep.store.artifacts import load_checked, save_checked
from koopsweep.store.trunk import Trunk

if TYPE_CHECKING:
    from koopsweep.train.run import Run

log = logging.getLogger(__name__)


class CachedFit:
    """The parts of a DMD fit that scorers and logs use, computed once and kept in the trunk's fit cache."""

    def __init__(self, window: "KoopmanWindow"):
        self._window = window
        self._path = window.trunk.fit_path(f"{window.key}-r{window.rank_tol:g}-d{window.delays}")
        self._vectors: dict[str, Any] = {}
        self._fit = None
        self.seconds = 0.0
        if self._path.exists():
            try:
                self._vectors = load_checked(self._path, expect={"layout_hash": window.layout_hash})
            except ArtifactError as exc:
                log.warning("%s; fitting again", exc)

    def _dmd(self):  # noqa: ANN202 - koopsweep.koopman.DMDFit
        if self._fit is None:
            start = time.perf_counter()
            snapshots = SnapshotWindow.open(self._window.directory, self._window.layout_hash, verify="lazy")
            self._fit = fit_dmd(snapshots, self._window.rank_tol, self._window.delays, device=self._window.device)
            self.seconds += time.perf_counter() - start
        return self._fit

    def _cached(self, key: str, compute) -> Any:  # noqa: ANN001
        if key not in self._vectors:
            start = time.perf_counter()
            self._vectors[key] = compute()
            self.seconds += time.perf_counter() - start
            save_checked(self._path, self._vectors, {"layout_hash": self._window.layout_hash})
        return self._vectors[key]

    def summary(self) -> dict[str, Any]:
        return self._cached("summary", lambda: self._dmd().summary())

    @property
    def last_index(self) -> int:
        """Snapshot index of the pruning time (the window's last snapshot)."""
        return self._window.expected_count - 1

    def fixed_point(self) -> torch.Tensor:
        return self._cached("fixed_point", lambda: self._dmd().fixed_point().cpu())

    def gradient(self, lr: float, momentum: float) -> torch.Tensor:
        """ĝ at the pruning time; with stride s one snapshot step spans s optimizer steps (lr·s)."""
        lr_step = lr * self._window.stride
        return self._cached(
            f"gradient-lr{lr_step:g}-m{momentum:g}",
            lambda: self._dmd().gradient(self.last_index, lr_step, momentum).cpu(),
        )


class KoopmanWindow:
    """Records θ every ``koopman.stride`` iterations of [start, end] into the trunk and serves the fit."""

    def __init__(self, trunk: Trunk, layout_hash: str, numel: int, start: int, end: int, stride: int,
                 chunk_size: int, rank_tol: float, delays: int, device: torch.device):
        self.trunk, self.layout_hash, self.numel = trunk, layout_hash, numel
        self.start, self.end, self.stride = start, end, stride
        self.chunk_size, self.rank_tol, self.delays, self.device = chunk_size, rank_tol, delays, device
        self.key = f"w{start}-{end}-s{stride}"
        self.directory = trunk.window_dir(self.key)
        self._hook: SnapshotHook | None = None
        self._vector_fn = None
        self._cached_fit: CachedFit | None = None

    @classmethod
    def for_run(cls, run: "Run", trunk: Trunk) -> "KoopmanWindow":
        koop = run.cfg.koopman
        window = cls(trunk, run.space.layout_hash, run.space.numel, run.plan.window_start, run.plan.prune_at,
                     koop.stride, koop.chunk_size, koop.rank_tol, koop.delays, run.device)
        needed = koop.delays + 3
        if window.expected_count < needed:
            raise ConfigError(
                f"the Koopman window [{window.start}, {window.end}] it with stride {koop.stride} holds "
                f"{window.expected_count} snapshots, fewer than the {needed} DMD needs here: prune later "
                "(schedule.prune_at), widen koopman.window or lower koopman.stride"
            )
        window._vector_fn = lambda: run.space.flatten(run.model)
        return window

    @property
    def expected_count(self) -> int:
        return (self.end - self.start) // self.stride + 1

    def complete(self) -> bool:
        """True when a verified recording of this window is in the trunk."""
        if not (self.directory / "manifest.json").exists():
            return False
        try:
            snapshots = SnapshotWindow.open(self.directory, self.layout_hash, verify="lazy")
        except ArtifactError as exc:
            log.warning("%s", exc)
            return False
        return snapshots.count == self.expected_count

    def record(self, iteration: int) -> None:
        """Trainer hook: record θ at the window's iterations (the recorder starts at the window's first one)."""
        if self._hook is None:
            if iteration != self.start:
                return
            recorder = SnapshotRecorder(self.directory, self.layout_hash, self.numel, self.chunk_size)
            self._hook = SnapshotHook(recorder, self.start, self.end, self.stride)
        self._hook.maybe_record(iteration, self._vector_fn)

    def close(self) -> None:
        if self._hook is not None:
            self._hook.close()
            self._hook = None

    def fit(self) -> CachedFit:
        if self._cached_fit is None:
            self._cached_fit = CachedFit(self)
        return self._cached_fit
