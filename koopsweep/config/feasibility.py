"""Checks that need the dataset's size or the model's: run before anything is loaded or trained.

The dataset is described without loading it (koopsweep.data.info) and the model is built on PyTorch's ``meta``
device (shapes only, no memory, no initialisation cost), so a pruning time past the end of training in
iterations, a batch larger than the data, a Koopman window too short for DMD or an unreachable compression target
is one line at preflight, in every job of a multirun and at every point of a sweep.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from omegaconf import DictConfig

from koopsweep.config import plain
from koopsweep.config.targets import import_target
from koopsweep.errors import ConfigError


def build_meta_model(
    target: str, input_shape: tuple[int, ...], num_classes: int, kwargs: tuple[tuple[str, Any], ...] = ()
) -> torch.nn.Module:
    """``model._target_(input_shape=..., num_classes=..., **model.kwargs)`` on the meta device; one line when it is
    no model."""
    cls: Any = import_target("model._target_", target, "model class (see conf/model/)")
    extra = "".join(f", {k}={v!r}" for k, v in kwargs)
    try:
        with torch.device("meta"):
            model = cls(input_shape=tuple(input_shape), num_classes=num_classes, **dict(kwargs))
    except Exception as exc:
        raise ConfigError(
            f"model._target_={target} could not be built as Net(input_shape, num_classes{extra}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        ) from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model._target_={target} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_feasible(cfg: DictConfig) -> None:
    """Raise ConfigError for the first setting the data or the model make impossible (skipped for unknown data)."""
    from koopsweep.data.info import describe
    from koopsweep.prune.amount import solve
    from koopsweep.train.iteration_plan import Plan

    full = describe(cfg.dataset.source)
    if full is None:
        return  # a loader without `describe`: checked once its data are loaded
    data = cfg.dataset
    for key, size, available in (
        ("train_size", data.train_size, full.train_examples),
        ("test_size", data.test_size, full.test_examples),
    ):
        if size is not None and size > available:
            raise ConfigError(f"dataset.{key}={size} but {data.name} has {available:,} examples: lower it or use null")
    info = full.subset(data.train_size, data.test_size)
    if data.batch_size > info.train_examples:
        raise ConfigError(
            f"dataset.batch_size={data.batch_size} is larger than the {info.train_examples:,} training examples "
            f"of {data.name}: lower the batch size"
        )
    plan = Plan.build(cfg.schedule, cfg.koopman, info.iterations_per_epoch(data.batch_size), cfg.store.checkpoint_every)
    pruner = cfg.pruner
    scorer = (
        import_target("pruner._target_", pruner._target_, "scorer class (see conf/pruner/)")
        if pruner._target_
        else None
    )
    _check_spectrum(cfg, scorer, info.input_shape, info.num_classes)
    if getattr(scorer, "requires_koopman", False) or cfg.koopman.get("record", False):
        plan.check_koopman_recording(cfg.koopman.delays)
    if scorer is None:
        return
    prunable, total = _counts(
        cfg.model._target_,
        tuple(info.input_shape),
        info.num_classes,
        model_kwargs(cfg),
        tuple(pruner.kinds),
        tuple(pruner.ignore),
        pruner.ignore_classifier,
    )
    solve(pruner.fraction, pruner.compression, prunable, total, model=cfg.model.name)


def _check_spectrum(cfg: DictConfig, scorer: Any, input_shape: tuple[int, ...], num_classes: int) -> None:
    """``koopman.params`` names parameters of the model, and only with a pruner that does not score from the fit."""
    params = list(cfg.koopman.get("params") or [])
    if not params:
        return
    if getattr(scorer, "requires_koopman", False):
        raise ConfigError(
            f"koopman.params={params} records a subset of the parameters, but pruner={cfg.pruner.name} scores every "
            "prunable weight from the fit: leave koopman.params empty, or set koopman.record=true with another "
            "pruner (none, gmp, ...)"
        )
    if not cfg.koopman.get("record", False):
        raise ConfigError(f"koopman.params={params} has no effect without koopman.record=true: add it")
    from koopsweep.prune.paramspace import matching_parameters

    model = build_meta_model(cfg.model._target_, tuple(input_shape), num_classes, model_kwargs(cfg))
    matching_parameters(model, params)


def model_kwargs(cfg: DictConfig) -> tuple[tuple[str, Any], ...]:
    """``model.kwargs`` as sorted (name, value) pairs: hashable, so a sweep builds each model once."""
    kwargs = plain(cfg.model.get("kwargs") or {})
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


@functools.lru_cache(maxsize=64)
def _counts(
    target: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    kwargs: tuple[tuple[str, Any], ...],
    kinds: tuple[str, ...],
    ignore: tuple[str, ...],
    ignore_classifier: bool,
) -> tuple[int, int]:
    """(prunable, total) parameters of a model, built once per setting in a process (a sweep has hundreds of
    points and building a deep ResNet, even on the meta device, takes a tenth of a second)."""
    from koopsweep.prune.paramspace import ParamSpace

    model = build_meta_model(target, input_shape, num_classes, kwargs)
    space = ParamSpace.from_model(model, list(kinds), list(ignore), ignore_classifier)
    return space.numel, sum(p.numel() for p in model.parameters())
