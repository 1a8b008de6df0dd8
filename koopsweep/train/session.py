"""The live state of one run: data, model, prunable space, plan and trainer, built once from the config.

Everything a run's steps share — the orchestration in koopsweep.train.run, the trunk in koopsweep.train.dense,
the pruning step in koopsweep.train.pruning — is held here, with the few questions about it they all ask (how much
to remove, the learning rate and momentum at the pruning time, the test metrics now).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig

from koopsweep.config.feasibility import model_kwargs
from koopsweep.data import TensorData, load_dataset
from koopsweep.data.tensors import BatchStream
from koopsweep.models.pretrained import load_pretrained, pretrained_weights
from koopsweep.prune import ParamSpace
from koopsweep.prune.amount import Amount, solve
from koopsweep.prune.scorers import Scorer
from koopsweep.store.trunk import Trunk
from koopsweep.tracking import STEP, Tracker
from koopsweep.train import runtime
from koopsweep.train.iteration_plan import Plan
from koopsweep.train.loop import Trainer, evaluate
from koopsweep.train.optim import build_optimizer, lr_function, sgd_momentum


@dataclass
class Run:
    """The live objects of one run, built once from the config."""

    cfg: DictConfig
    device: torch.device
    data: TensorData
    model: torch.nn.Module
    space: ParamSpace
    plan: Plan
    trainer: Trainer
    scorer: Scorer | None
    out_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    koopman: dict[str, Any] | None = None
    _last_eval: tuple[tuple[int, int], dict[str, float]] | None = None

    def evaluate(self) -> dict[str, float]:
        """Test loss and accuracy of the model as it is now; the same state is evaluated once (the last period's
        evaluation at the end of fine-tuning is the final one)."""
        key = (self.trainer.iteration, id(self.trainer.masks))
        if self._last_eval is None or self._last_eval[0] != key:
            test = evaluate(self.model, self.data.test_x, self.data.test_y, self.cfg.dataset.eval_batch_size)
            self._last_eval = (key, test)
        return self._last_eval[1]

    def record_eval(self, stage: str, test: dict[str, float] | None = None, tracker: Tracker | None = None) -> None:
        """Keep ``<stage>/test_acc`` and ``_loss``; with ``tracker``, also a point of the run's evaluation curve."""
        if test is None:
            start = time.perf_counter()
            test = self.evaluate()
            self.timed("evaluate", time.perf_counter() - start)  # outside the training phases' own timing
        self.metrics[f"{stage}/test_acc"] = test["acc"]
        self.metrics[f"{stage}/test_loss"] = test["loss"]
        if tracker is not None:
            tracker.log({STEP: self.trainer.iteration, "eval/test_acc": test["acc"], "eval/test_loss": test["loss"]})

    def record_dense_eval(self, trunk: Trunk, tracker: Tracker | None = None) -> None:
        """The dense model at the pruning time, evaluated once per trunk and evaluation setting, then reused."""
        data, device = self.cfg.dataset, self.device
        settings = f"test{data.test_size}-eb{data.eval_batch_size}-{self.cfg.precision}-{device.type}"
        key = f"it{self.trainer.iteration}-{settings}"
        test = trunk.cached_eval(key)
        if test is None:
            start = time.perf_counter()
            test = self.evaluate()
            self.timed("evaluate", time.perf_counter() - start)
            trunk.save_eval(key, test)
        self.record_eval("dense", test, tracker)

    def amount(self) -> Amount:
        """How many prunable parameters this run removes (from pruner.fraction or pruner.compression)."""
        pruner = self.cfg.pruner
        total = sum(p.numel() for p in self.model.parameters())
        return solve(pruner.fraction, pruner.compression, self.space.numel, total, model=self.cfg.model.name)

    def gradient_settings(self) -> tuple[float, float]:
        """(η, β) at the pruning time: the last dense step's learning rate and the heavy-ball momentum KGP undoes."""
        lr = self.trainer.lr_at(max(self.plan.prune_at - 1, 0))
        return lr, sgd_momentum(self.cfg.optimizer) if self.cfg.koopman.momentum_correction else 0.0

    def timed(self, key: str, seconds: float) -> None:
        self.timings[f"time/{key}_s"] = self.timings.get(f"time/{key}_s", 0.0) + seconds


def build_run(cfg: DictConfig) -> Run:
    """Load data, build the model, optimizer and plan; nothing is trained yet."""
    device = runtime.select_device(cfg.device)
    runtime.configure(cfg.seed, cfg.threads, cfg.deterministic, device)
    dtype = runtime.dtype_of(cfg.precision)
    data = load_dataset(cfg.dataset.source, Path(cfg.paths.data_dir))
    data = data.subset(cfg.dataset.train_size, cfg.dataset.test_size, seed=cfg.seed).to(device)
    if dtype != torch.float32:
        data.train_x, data.test_x = data.train_x.to(dtype), data.test_x.to(dtype)
    torch.manual_seed(cfg.seed)
    model = get_class(cfg.model._target_)(
        input_shape=data.input_shape, num_classes=data.num_classes, **dict(model_kwargs(cfg))
    )
    weights = pretrained_weights(cfg)
    if weights is not None:
        load_pretrained(model, weights[0])
    model = model.to(device=device, dtype=dtype)
    pruner = cfg.pruner
    space = ParamSpace.from_model(model, list(pruner.kinds), list(pruner.ignore), pruner.ignore_classifier)
    stream = BatchStream(data.train_x, data.train_y, cfg.dataset.batch_size, seed=cfg.seed, augment=cfg.dataset.augment)
    plan = Plan.build(cfg.schedule, cfg.koopman, stream.iterations_per_epoch, cfg.store.checkpoint_every)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    lr_at = lr_function(cfg.optimizer.lr, cfg.schedule, plan)
    trainer = Trainer(model, optimizer, stream, lr_at, show_progress=cfg.progress)
    scorer = get_class(pruner._target_)() if pruner._target_ else None
    return Run(cfg, device, data, model, space, plan, trainer, scorer, Path(cfg.paths.output_dir))


def train_phase(
    run: Run,
    end: int,
    stage: str,
    tracker: Tracker,
    on_curve: Callable[[dict[str, Any]], None] | None = None,
    origin: int | None = None,
) -> None:
    """Train to ``end``, logging the training loss and test metrics every eval period; progress counts from
    ``origin`` (default: the current iteration)."""

    def on_period(iteration: int, train_metrics: dict[str, float]) -> None:
        test = run.evaluate()
        record = {
            STEP: iteration,
            **train_metrics,
            "train/epoch": iteration / run.plan.iterations_per_epoch,
            "train/lr": run.trainer.lr_at(max(iteration - 1, 0)),
            "eval/test_acc": test["acc"],
            "eval/test_loss": test["loss"],
        }
        tracker.log(record)
        if on_curve is not None:
            on_curve({"iteration": iteration, **{k: v for k, v in record.items() if k != STEP}})

    start = time.perf_counter()
    try:
        run.trainer.train_until(end, desc=stage, on_period=on_period, period=run.plan.eval_every, origin=origin)
    finally:
        run.timed(stage, time.perf_counter() - start)
