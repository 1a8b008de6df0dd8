"""A run's schedule in iterations, once the epoch length is known."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from omegaconf import DictConfig

from koopsweep.errors import ConfigError
from koopsweep.steps import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """Absolute iterations: dense horizon, pruning time, end of fine-tuning, Koopman window, eval period, the learning
    rate's warm-up and milestones, the checkpoint period. The only place a Step becomes an iteration count."""

    iterations_per_epoch: int
    horizon: int
    prune_at: int
    end: int
    window_start: int
    window_stride: int
    eval_every: int
    window_requested: int = 0
    checkpoint_every: int = 0
    warmup: int = 0
    milestones: tuple[int, ...] = ()

    @classmethod
    def build(
        cls, schedule: DictConfig, koopman: DictConfig, iterations_per_epoch: int, checkpoint_every: str = "1ep"
    ) -> Plan:
        ipe = iterations_per_epoch

        def its(text: str | None, key: str) -> int:
            return Step.parse(text, what=key).to_iterations(ipe)

        horizon = its(schedule.train, "schedule.train")
        prune_at = horizon if schedule.prune_at is None else its(schedule.prune_at, "schedule.prune_at")
        if prune_at > horizon:
            raise ConfigError(
                f"schedule.prune_at={schedule.prune_at} ({prune_at} it) is after the end of training "
                f"(schedule.train={schedule.train}, {horizon} it at {ipe} it/epoch): prune earlier or train longer"
            )
        window = its(koopman.window, "koopman.window")
        return cls(
            iterations_per_epoch=ipe,
            horizon=horizon,
            prune_at=prune_at,
            end=prune_at + its(schedule.finetune, "schedule.finetune"),
            window_start=max(prune_at - window, 0),
            window_stride=int(koopman.stride),
            eval_every=its(schedule.eval_every, "schedule.eval_every"),
            window_requested=window,
            checkpoint_every=its(checkpoint_every, "store.checkpoint_every"),
            warmup=its(schedule.warmup, "schedule.warmup"),
            milestones=tuple(sorted(its(m, "schedule.milestones") for m in schedule.milestones)),
        )

    @property
    def window_snapshots(self) -> int:
        """Snapshots in the Koopman window [window_start, prune_at] at its stride."""
        return (self.prune_at - self.window_start) // self.window_stride + 1

    @property
    def window_clipped(self) -> bool:
        """True when koopman.window reaches back before iteration 0 (the window then starts at 0)."""
        return self.window_requested > self.prune_at

    def check_koopman_recording(self, delays: int) -> None:
        """One line when the window holds too few snapshots for exact DMD with ``delays`` delays."""
        needed = delays + 3
        if self.window_snapshots < needed:
            raise ConfigError(
                f"the Koopman window [{self.window_start}, {self.prune_at}] it with stride {self.window_stride} holds "
                f"{self.window_snapshots} snapshots, fewer than the {needed} DMD needs here: prune later "
                "(schedule.prune_at), widen koopman.window or lower koopman.stride"
            )
