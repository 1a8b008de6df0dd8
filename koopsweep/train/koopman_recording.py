"""The Koopman window of a run: recorded into its trunk while the dense run passes through it, fitted once.

The window [t − window, t] is recorded and fitted under the trunk's lock. What pruning needs from the fit — its
summary, the fixed point θ* (KMP) and the gradient reconstruction ĝ for the run's learning rate and momentum (KGP) —
is computed in one pass over the snapshots and kept in ``<trunk>/fits/``: a few parameter vectors. The snapshots
themselves are held in memory and dropped after the fit (koopsweep.koopman.memory), so a Koopman run adds a few
N-vectors to the store, not the window; ``store.keep_windows=true``, or a window larger than the memory budget,
records them to ``<trunk>/windows/<key>/`` instead. A later run that needs another fit (other DMD settings, another
learning rate) records the window again from the trunk's state at the window's start, bit for bit the same on the
CPU, since data order and learning rate are functions of the iteration.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import torch

from koopsweep.artifacts import load_checked, remove_checked, save_checked
from koopsweep.errors import ArtifactError, ConfigError
from koopsweep.koopman import SnapshotHook, SnapshotRecorder, SnapshotWindow, fit_dmd
from koopsweep.koopman.memory import MemoryRecorder, MemoryWindow, memory_budget, window_bytes
from koopsweep.koopman.vectors import pruning_vectors
from koopsweep.prune.paramspace import ParamSpace, matching_parameters
from koopsweep.store.trunk import Trunk

if TYPE_CHECKING:
    from koopsweep.train.session import Run

log = logging.getLogger(__name__)

FIT_VERSION = 3  # bump when what a cached fit holds changes (2: bounded diagnostics; 3: ĝ from amplitudes at t)


def gradient_key(lr_step: float, momentum: float) -> str:
    return f"gradient-lr{lr_step:g}-m{momentum:g}"


class FitVectors:
    """The cached parts of a window's DMD fit that scorers and logs use: summary, θ*, ĝ (one lr and momentum);
    what ``PruneContext.koopman_fit`` takes (koopsweep.prune.scorers.KoopmanFit)."""

    def __init__(self, vectors: dict[str, Any], stride: int, seconds: float = 0.0):
        self._vectors = vectors
        self._stride = stride
        self.seconds = seconds

    def summary(self) -> dict[str, Any]:
        return self._vectors["summary"]

    def fixed_point(self) -> torch.Tensor:
        return self._vectors["fixed_point"]

    def gradient(self, lr: float, momentum: float) -> torch.Tensor:
        """ĝ at the pruning time; with stride s one snapshot step spans s optimizer steps (lr·s)."""
        key = gradient_key(lr * self._stride, momentum)
        if key not in self._vectors:
            raise ArtifactError(f"the cached Koopman fit has no {key} (it was fitted for another learning rate)")
        return self._vectors[key]


def records_koopman(run: Run) -> bool:
    """A window is recorded and fitted when the pruner scores from it, or ``koopman.record`` asks for the spectrum."""
    uses = run.scorer is not None and run.scorer.requires_koopman
    return uses or bool(run.cfg.koopman.get("record", False))


def tracked_space(run: Run) -> ParamSpace:
    """What the window records: the pruner's prunable space, or the parameters ``koopman.params`` names.

    A subset gives a spectrum (and vectors over the subset) but cannot score the prunable weights: refused for
    Koopman pruners."""
    params = list(run.cfg.koopman.get("params") or [])
    if not params:
        return run.space
    if run.scorer is not None and run.scorer.requires_koopman:
        raise ConfigError(
            f"koopman.params={params} records a subset of the parameters, but pruner={run.cfg.pruner.name} scores "
            "every prunable weight from the fit: leave koopman.params empty, or set koopman.record=true with "
            "another pruner (none, gmp, ...)"
        )
    tensors = dict(run.model.named_parameters())
    names = matching_parameters(run.model, params)
    return ParamSpace(names, [tensors[n].shape for n in names])


class KoopmanRecording:
    """Records θ every ``koopman.stride`` iterations of [start, end] into the trunk and serves the cached fit."""

    def __init__(
        self,
        trunk: Trunk,
        layout_hash: str,
        numel: int,
        start: int,
        end: int,
        stride: int,
        chunk_size: int,
        rank_tol: float,
        delays: int,
        device: torch.device,
        lr: float,
        momentum: float,
        keep_snapshots: bool = False,
        cluster_radius: float = 0.0,
        max_rank: int = 0,
        subset: str = "",
    ):
        self.trunk, self.layout_hash, self.numel = trunk, layout_hash, numel
        self.start, self.end, self.stride = start, end, stride
        self.chunk_size, self.rank_tol, self.delays, self.device = chunk_size, rank_tol, delays, device
        self.lr, self.momentum, self.keep_snapshots = lr, momentum, keep_snapshots
        self.key = f"w{start}-{end}-s{stride}" + (f"-p{subset}" if subset else "")  # a tracked subset: its own window
        self.directory = trunk.window_dir(self.key)
        self.cluster_radius, self.max_rank = cluster_radius, max_rank
        cluster = f"-c{cluster_radius:g}" if cluster_radius > 0 else ""  # θ* differs; the paper's keeps its key
        cluster += f"-k{max_rank}" if max_rank > 0 else ""  # so does a truncated fit
        self.fit_path = trunk.fit_path(f"{self.key}-r{rank_tol:g}-d{delays}{cluster}-v{FIT_VERSION}")
        self.gradient_key = gradient_key(lr * stride, momentum)
        self._hook: SnapshotHook | None = None
        self._vector_fn = None
        self._in_memory: MemoryWindow | None = None

    @classmethod
    def for_run(cls, run: Run, trunk: Trunk) -> KoopmanRecording:
        koop = run.cfg.koopman
        plan = run.plan
        plan.check_koopman_recording(koop.delays)
        if plan.window_clipped:  # early pruning times of the paper's timing sweeps rely on this: say it, once
            log.warning(
                "koopman.window=%s (%d it) reaches back before iteration 0 when pruning at iteration %d: the window "
                "was clipped to [0, %d] (%d snapshots)",
                koop.window,
                plan.window_requested,
                plan.prune_at,
                plan.prune_at,
                plan.window_snapshots,
            )
        lr, momentum = run.gradient_settings()
        space = tracked_space(run)
        window = cls(
            trunk,
            space.layout_hash,
            space.numel,
            run.plan.window_start,
            run.plan.prune_at,
            koop.stride,
            koop.chunk_size,
            koop.rank_tol,
            koop.delays,
            run.device,
            lr,
            momentum,
            run.cfg.store.keep_windows,
            koop.cluster_radius,
            koop.max_rank,
            space.layout_hash[:8] if space is not run.space else "",
        )
        window._vector_fn = lambda: space.flatten(run.model)
        return window

    @property
    def expected_count(self) -> int:
        return (self.end - self.start) // self.stride + 1

    # -------------------------------------------------------------------------------------------- the cache
    def _load_cache(self, repair: bool = True) -> dict[str, Any]:
        if not self.fit_path.exists():
            return {}
        try:
            return load_checked(self.fit_path, expect={"layout_hash": self.layout_hash})
        except ArtifactError as exc:
            if repair:  # only under the trunk's lock; a reader leaves it to the writer
                log.warning("%s; fitting again", exc)
                remove_checked(self.fit_path)  # rebuilt by this fit, and warned about once
            return {}

    def cached(self, repair: bool = True) -> FitVectors | None:
        """The cached fit when it holds everything this run needs (summary, θ*, ĝ for its lr and momentum).

        ``repair=False`` (a reader without the trunk's lock) leaves a damaged cache in place for the writer."""
        vectors = self._load_cache(repair)
        if all(k in vectors for k in ("summary", "fixed_point", self.gradient_key)):
            return FitVectors(vectors, self.stride)
        return None

    # -------------------------------------------------------------------------------------------- recording
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

    def in_memory(self) -> bool:
        """Record into memory: the snapshots are not kept and the window fits the memory budget."""
        return not self.keep_snapshots and window_bytes(self.expected_count, self.numel) <= memory_budget(self.device)

    def record(self, iteration: int) -> None:
        """Trainer hook: record θ at the window's iterations (the recorder starts at the window's first one)."""
        if self._hook is None:
            if iteration != self.start:
                return
            recorder: MemoryRecorder | SnapshotRecorder
            if self.in_memory():
                recorder = MemoryRecorder(
                    self.layout_hash, self.numel, self.expected_count, self.chunk_size, self.device
                )
            else:
                recorder = SnapshotRecorder(self.directory, self.layout_hash, self.numel, self.chunk_size)
            self._hook = SnapshotHook(recorder, self.start, self.end, self.stride)
        self._hook.maybe_record(iteration, self._vector_fn)

    def close(self) -> None:
        if self._hook is not None:
            closed = self._hook.close()
            self._in_memory = closed if isinstance(closed, MemoryWindow) else None
            self._hook = None

    def discard(self) -> None:
        """Delete the recorded snapshots (under the trunk's lock), so that the next recording starts clean."""
        shutil.rmtree(self.directory, ignore_errors=True)

    # -------------------------------------------------------------------------------------------- fitting
    def fit_or_discard(self) -> FitVectors | None:
        """Fit a complete recorded window; None (one warning, window deleted) when a chunk does not verify.

        Completeness is checked from sizes and headers only; the checksums are read by the fit itself, so a chunk
        corrupted on disk shows up here. Deleting the window lets the caller record it again now, instead of the
        same error on every rerun.
        """
        try:
            return self.fit_and_cache()
        except ArtifactError as exc:
            log.warning("%s; recording the window again", exc)
            self.discard()
            return None

    def fit_and_cache(self) -> FitVectors:
        """Fit the recorded window, keep what pruning needs in the fit cache, then drop the snapshots.

        Call under the trunk's lock: no other run reads the window while it is deleted.
        """
        start = time.perf_counter()
        self.close()  # a window recorded just now: its last Gram increments are part of the fit
        snapshots = self._in_memory or SnapshotWindow.open(self.directory, self.layout_hash, verify="lazy")
        self._in_memory = None  # the buffer goes with the fit
        fit = fit_dmd(snapshots, self.rank_tol, self.delays, device=self.device, max_rank=self.max_rank)
        what = f"θ* or ĝ for window {self.key}"
        radius = self.cluster_radius
        fixed_point, gradient = pruning_vectors(fit, self.lr * self.stride, self.momentum, what, radius)  # as the API
        summary = fit.summary()
        if radius > 0:
            summary["cluster_modes"] = len(fit.cluster_indices(radius))
        vectors = self._load_cache()
        vectors.update({"summary": summary, "fixed_point": fixed_point, self.gradient_key: gradient})
        save_checked(self.fit_path, vectors, {"layout_hash": self.layout_hash})
        if not self.keep_snapshots:
            shutil.rmtree(self.directory, ignore_errors=True)
        return FitVectors(vectors, self.stride, time.perf_counter() - start)
