"""A run's schedule in iterations, once the epoch length is known."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from koopsweep.errors import ConfigError
from koopsweep.steps import Step


@dataclass(frozen=True)
class Plan:
    """Absolute iterations: dense horizon, pruning time, end of fine-tuning, Koopman window, eval period."""

    iterations_per_epoch: int
    horizon: int
    prune_at: int
    end: int
    window_start: int
    eval_every: int

    @classmethod
    def build(cls, schedule: DictConfig, koopman: DictConfig, iterations_per_epoch: int) -> "Plan":
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
            eval_every=its(schedule.eval_every, "schedule.eval_every"),
        )
