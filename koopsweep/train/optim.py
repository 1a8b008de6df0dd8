"""Optimizers and the learning rate as a pure function of the iteration.

No LR-scheduler object carries state: the rate at iteration i is computed from the config, so resuming at any
iteration (and branching at the pruning time) reproduces the dense run exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from omegaconf import DictConfig

from koopsweep.steps import Step


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: DictConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov, weight decay) or Adam from ``cfg.optimizer``."""
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
        )
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def lr_function(
    base_lr: float, schedule: DictConfig, iterations_per_epoch: int, horizon: int, prune_at: int
) -> Callable[[int], float]:
    """The learning rate at each iteration: warm-up, then constant, step or cosine over the dense horizon.

    After the pruning time ``schedule.finetune_lr`` (when set) replaces the dense schedule; past the horizon the
    last rate is held, so fine-tuning a converged network continues at the final rate.
    """
    warmup = Step.parse(schedule.warmup).to_iterations(iterations_per_epoch)
    milestones = sorted(Step.parse(m).to_iterations(iterations_per_epoch) for m in schedule.milestones)
    kind, gamma, finetune_lr = schedule.lr_schedule, schedule.gamma, schedule.finetune_lr

    def dense(i: int) -> float:
        i = min(i, horizon)
        if warmup and i < warmup:
            return base_lr * (i + 1) / warmup
        if kind == "step":
            return base_lr * gamma ** sum(1 for m in milestones if i >= m)
        if kind == "cosine":
            span = max(horizon - warmup, 1)
            return base_lr * 0.5 * (1 + math.cos(math.pi * min(i - warmup, span) / span))
        return base_lr

    def rate(i: int) -> float:
        if finetune_lr is not None and i >= prune_at:
            return float(finetune_lr)
        return dense(i)

    return rate
