"""Semantic checks of a composed config: impossible values fail here, before any data is loaded or trained.

Types and key names are already enforced by the schema (koopsweep.config.schema); this module checks ranges,
choices and relations between fields, and raises ConfigError with one line saying what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from koopsweep.config.numbers import check_numbers
from koopsweep.config.targets import import_target
from koopsweep.errors import ConfigError, first_line
from koopsweep.steps import Step, definitely_after

LR_SCHEDULES = ("constant", "step", "cosine")
SCOPES = ("global", "layer")
KINDS = ("weight", "bias")
LOGGER_MODES = ("online", "offline", "disabled", "auto")
PRECISIONS = ("fp32", "fp64")


def _choice(key: str, value: Any, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}")


def _range(key: str, value: float, ok: Callable[[float], bool], expected: str) -> None:
    if not ok(value):
        raise ConfigError(f"{key}={value} is out of range: expected {expected}")


def parse_step(key: str, value: Any) -> Step:
    return Step.parse(value, what=key)


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first impossible value in ``cfg``: group by group, then paths, weights and sizes.

    A value that does not resolve (an interpolation to a missing key in a user's config) is one line too.
    """
    try:
        _check_all(cfg)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "the config"
        raise ConfigError(f"{key}: {first_line(exc)}") from None


def _check_all(cfg: DictConfig) -> None:
    _check_model(cfg.model)
    _check_dataset(cfg.dataset)
    _check_optimizer(cfg.optimizer)
    _check_schedule(cfg.schedule, cfg.model)
    _check_pruner(cfg.pruner)
    _check_koopman(cfg.koopman)
    _check_store(cfg.store)
    _check_logger(cfg.logger)
    _check_runtime(cfg)
    check_numbers(cfg)

    from koopsweep.config.feasibility import check_feasible
    from koopsweep.config.paths import check_paths

    check_paths(cfg)
    check_pretrained(cfg)
    check_feasible(cfg)


def _check_model(model: DictConfig) -> None:
    import_target("model._target_", model._target_, "model class (see conf/model/)")


def _check_dataset(dataset: DictConfig) -> None:
    import_target("dataset.source._target_", dataset.source.get("_target_"), "dataset loader (see conf/dataset/)")
    _range("dataset.batch_size", dataset.batch_size, lambda v: v > 0, "a positive integer")
    _range("dataset.eval_batch_size", dataset.eval_batch_size, lambda v: v > 0, "a positive integer")
    for key in ("train_size", "test_size"):
        value = dataset[key]
        if value is not None:
            _range(f"dataset.{key}", value, lambda v: v > 0, "a positive integer or null for all")


def _check_optimizer(opt: DictConfig) -> None:
    optimizer = import_target("optimizer._target_", opt._target_, "torch.optim optimizer class (see conf/optimizer/)")
    if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
        raise ConfigError(f"optimizer._target_={opt._target_} is not a torch.optim.Optimizer class")
    _range("optimizer.lr", opt.lr, lambda v: v > 0, "a positive learning rate")
    _range("optimizer.momentum", opt.momentum, lambda v: 0 <= v < 1, "0 <= momentum < 1")
    _range("optimizer.weight_decay", opt.weight_decay, lambda v: v >= 0, "weight_decay >= 0")
    if opt.nesterov and issubclass(optimizer, torch.optim.SGD) and opt.momentum == 0:
        raise ConfigError("optimizer.nesterov=true needs optimizer.momentum > 0")


def _check_schedule(sched: DictConfig, model: DictConfig) -> None:
    train = parse_step("schedule.train", sched.train)
    if train == Step() and not model.get("pretrained"):
        raise ConfigError(
            "schedule.train=0 trains nothing: give a length such as '3ep' or '500it' (0 is for pretrained "
            "models, model.pretrained=..., evaluated as loaded)"
        )
    if sched.prune_at is not None:
        prune_at = parse_step("schedule.prune_at", sched.prune_at)
        if definitely_after(prune_at, train):
            raise ConfigError(
                f"schedule.prune_at={sched.prune_at} is after the end of training (schedule.train={sched.train}): "
                "prune at or before the end, or train longer"
            )
    parse_step("schedule.finetune", sched.finetune)
    parse_step("schedule.warmup", sched.warmup)
    eval_every = parse_step("schedule.eval_every", sched.eval_every)
    if eval_every == Step():
        raise ConfigError("schedule.eval_every=0 is not a period: use e.g. '1ep' or '200it'")
    _choice("schedule.lr_schedule", sched.lr_schedule, LR_SCHEDULES)
    for i, milestone in enumerate(sched.milestones):
        parse_step(f"schedule.milestones[{i}]", milestone)
    _range("schedule.gamma", sched.gamma, lambda v: v > 0, "gamma > 0")
    if sched.finetune_lr is not None:
        _range("schedule.finetune_lr", sched.finetune_lr, lambda v: v > 0, "a positive learning rate or null")


def _check_pruner(pruner: DictConfig) -> None:
    if pruner.fraction is not None and pruner.compression is not None:
        raise ConfigError(
            f"pruner.fraction={pruner.fraction} and pruner.compression={pruner.compression} are both set: give one "
            "(fraction = share of prunable weights removed; compression = total / non-zero params, ShrinkBench's)"
        )
    if pruner.fraction is not None:
        _range("pruner.fraction", pruner.fraction, lambda v: 0 <= v < 1, "0 <= fraction < 1 (0.9 = 90 % sparse)")
    if pruner.compression is not None:
        _range("pruner.compression", pruner.compression, lambda v: v >= 1, "compression >= 1 (total / non-zero)")
    removes = (pruner.fraction or 0) > 0 or (pruner.compression or 1) > 1
    if pruner._target_ is None and removes:
        amount = f"fraction={pruner.fraction}" if pruner.fraction is not None else f"compression={pruner.compression}"
        raise ConfigError(
            f"pruner={pruner.name} removes nothing but pruner.{amount}: "
            "choose a pruner (e.g. pruner=gmp) or leave pruner.fraction and pruner.compression unset"
        )
    if pruner._target_ is not None:
        import_target("pruner._target_", pruner._target_, "scorer class (see conf/pruner/)")
    _choice("pruner.scope", pruner.scope, SCOPES)
    for kind in pruner.kinds:
        _choice("pruner.kinds", kind, KINDS)
    if not pruner.kinds:
        raise ConfigError("pruner.kinds is empty: list the tensors to prune, e.g. [weight]")
    _range("pruner.batches", pruner.batches, lambda v: v >= 1, "at least 1 batch")


def _check_koopman(koop: DictConfig) -> None:
    window = parse_step("koopman.window", koop.window)
    if window == Step():
        raise ConfigError("koopman.window=0 records nothing: use e.g. '1ep' or '200it'")
    _range("koopman.stride", koop.stride, lambda v: v >= 1, "stride >= 1")
    _range("koopman.rank_tol", koop.rank_tol, lambda v: 0 <= v < 1, "0 <= rank_tol < 1 (0 = untruncated)")
    _range(
        "koopman.cluster_radius", koop.cluster_radius, lambda v: 0 <= v < 1, "0 <= cluster_radius < 1 (0 = the paper's)"
    )
    _range("koopman.delays", koop.delays, lambda v: v >= 0, "delays >= 0")
    _range("koopman.chunk_size", koop.chunk_size, lambda v: v >= 1, "chunk_size >= 1")
    _range("koopman.max_rank", koop.max_rank, lambda v: v >= 0, "max_rank >= 0 (0 = every mode)")


def _check_store(store: DictConfig) -> None:
    if parse_step("store.checkpoint_every", store.checkpoint_every) == Step():
        raise ConfigError("store.checkpoint_every=0 is not a period: use e.g. '1ep' or '500it'")


def _check_logger(logger: DictConfig) -> None:
    _choice("logger.mode", logger.mode, LOGGER_MODES)


def _check_runtime(cfg: DictConfig) -> None:
    """The top-level keys: precision, threads, device."""
    _choice("precision", cfg.precision, PRECISIONS)
    _range("threads", cfg.threads, lambda v: v >= 0, "threads >= 0 (0 = torch's default)")
    check_device(cfg.device)


def check_pretrained(cfg: DictConfig) -> None:
    """The weights ``model.pretrained`` names exist (found or downloaded), verify and fit the model's shapes."""
    from koopsweep.models.pretrained import check_weights_file, pretrained_weights

    found = pretrained_weights(cfg)
    if found is not None:
        check_weights_file(*found)  # readable as tensors; shapes are checked against the built model


def check_device(device: str) -> None:
    """Accept auto, cpu, cuda or cuda:N, and refuse CUDA where there is none."""
    if device in ("auto", "cpu"):
        return
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device={device} but no CUDA device is available: use device=cpu or device=auto")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={device} but only {torch.cuda.device_count()} CUDA device(s) exist")
        return
    raise ConfigError(f"device={device!r} is not one of auto, cpu, cuda, cuda:N")
