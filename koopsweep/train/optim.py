"""Optimizers and the learning rate as a pure function of the iteration.

No LR-scheduler object carries state: the rate at iteration i is computed from the config, so resuming at any
iteration (and branching at the pruning time) reproduces the dense run exactly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from koopsweep.train.iteration_plan import Plan


def optimizer_arguments(cfg: DictConfig) -> dict[str, Any]:
    """The config's settings that ``cfg._target_``'s constructor takes, plus ``cfg.kwargs`` (lists as tuples)."""
    accepted = inspect.signature(get_class(cfg._target_)).parameters
    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)
    chosen = {k: v for k, v in settings.items() if k in accepted and k != "params"}
    chosen.update(settings.get("kwargs") or {})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in chosen.items()}


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: DictConfig) -> torch.optim.Optimizer:
    """``cfg._target_`` (a torch.optim class, Hydra's ``_partial_`` convention) with the settings it accepts."""
    partial = instantiate({"_target_": cfg._target_, "_partial_": True, **optimizer_arguments(cfg)})
    return partial(params)


def sgd_momentum(cfg: DictConfig) -> float:
    """The momentum of a torch.optim.SGD optimizer (what KGP's heavy-ball correction undoes), 0 for others."""
    return float(cfg.momentum) if issubclass(get_class(cfg._target_), torch.optim.SGD) else 0.0


def lr_function(base_lr: float, schedule: DictConfig, plan: Plan) -> Callable[[int], float]:
    """The learning rate at each iteration: warm-up, then constant, step or cosine over the dense horizon.

    After the pruning time ``schedule.finetune_lr`` (when set) replaces the dense schedule; past the horizon the
    last rate is held, so fine-tuning a converged network continues at the final rate.
    """
    warmup, milestones, horizon, prune_at = plan.warmup, plan.milestones, plan.horizon, plan.prune_at
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
