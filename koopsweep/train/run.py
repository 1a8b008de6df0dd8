"""One run: dense training to the pruning time -> scores -> exact-k mask -> masked fine-tuning -> evaluation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from koopsweep.data import BatchStream, TensorData, load_dataset
from koopsweep.prune import MaskSet, ParamSpace, select_keep
from koopsweep.prune.metrics import layer_sparsity, overlap, parameter_counts
from koopsweep.prune.scorers import PruneContext, Scorer
from koopsweep.results import package_versions, summary_table, write_json_atomic
from koopsweep.tracking import Tracker
from koopsweep.train import runtime
from koopsweep.train.loop import Diverged, Trainer, evaluate
from koopsweep.train.optim import build_optimizer, lr_function
from koopsweep.train.plan import Plan


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

    def evaluate(self) -> dict[str, float]:
        return evaluate(self.model, self.data.test_x, self.data.test_y, self.cfg.dataset.eval_batch_size)


def build_run(cfg: DictConfig) -> Run:
    """Load data, build the model, optimizer and plan; nothing is trained yet."""
    runtime.configure(cfg.seed, cfg.threads, cfg.deterministic)
    device = runtime.select_device(cfg.device)
    dtype = runtime.dtype_of(cfg.precision)
    data = load_dataset(cfg.dataset.source, Path(cfg.paths.data_dir))
    data = data.subset(cfg.dataset.train_size, cfg.dataset.test_size, seed=cfg.seed).to(device)
    if dtype != torch.float32:
        data.train_x, data.test_x = data.train_x.to(dtype), data.test_x.to(dtype)
    torch.manual_seed(cfg.seed)
    model = get_class(cfg.model._target_)(input_shape=data.input_shape, num_classes=data.num_classes)
    model = model.to(device=device, dtype=dtype)
    pruner = cfg.pruner
    space = ParamSpace.from_model(model, list(pruner.kinds), list(pruner.ignore), pruner.ignore_classifier)
    stream = BatchStream(data.train_x, data.train_y, cfg.dataset.batch_size, seed=cfg.seed, augment=cfg.dataset.augment)
    plan = Plan.build(cfg.schedule, cfg.koopman, stream.iterations_per_epoch)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    lr_at = lr_function(cfg.optimizer.lr, cfg.schedule, plan.iterations_per_epoch, plan.horizon, plan.prune_at)
    trainer = Trainer(model, optimizer, stream, lr_at, show_progress=cfg.progress)
    scorer = get_class(pruner._target_)() if pruner._target_ else None
    return Run(cfg, device, data, model, space, plan, trainer, scorer, Path(cfg.paths.output_dir))


def _train_phase(run: Run, end: int, stage: str, tracker: Tracker) -> None:
    """Train to ``end``, logging the training loss and test metrics every eval period."""

    def on_period(iteration: int, train_metrics: dict[str, float]) -> None:
        test = run.evaluate()
        tracker.log(
            {
                **train_metrics,
                "test/acc": test["acc"],
                "test/loss": test["loss"],
                "epoch": iteration / run.plan.iterations_per_epoch,
                "lr": run.trainer.lr_at(max(iteration - 1, 0)),
                "stage": 0 if stage == "dense" else 1,
            },
            step=iteration,
        )

    start = time.perf_counter()
    run.trainer.train_until(end, desc=stage, on_period=on_period, period=run.plan.eval_every)
    run.timings[f"time/{stage}_s"] = run.timings.get(f"time/{stage}_s", 0.0) + time.perf_counter() - start


def _record_eval(run: Run, stage: str) -> None:
    test = run.evaluate()
    run.metrics[f"{stage}/test_acc"] = test["acc"]
    run.metrics[f"{stage}/test_loss"] = test["loss"]


def _prune(run: Run) -> None:
    """Score, select exactly k parameters, apply the mask, and compare with GMP at the same t and fraction."""
    start = time.perf_counter()
    pruner = run.cfg.pruner
    ctx = PruneContext(model=run.model, space=run.space, iteration=run.trainer.iteration, seed=run.cfg.seed)
    scores = run.scorer.scores(ctx).to(run.device)
    keep = select_keep(scores, pruner.fraction, run.space, pruner.scope)
    masks = MaskSet(run.space, keep)
    if pruner.compare:
        gmp_keep = select_keep(ctx.theta().abs().to(run.device), pruner.fraction, run.space, "global")
        run.metrics["overlap/gmp"] = overlap(~keep, ~gmp_keep)
    masks.apply(run.model)
    run.trainer.masks = masks
    run.timings["time/prune_s"] = time.perf_counter() - start


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value
    return flat


def start_tracker(cfg: DictConfig, resolved: dict[str, Any], out_dir: Path) -> Tracker:
    """One W&B run per koopsweep run, grouped by experiment, tagged with method, model and dataset."""
    log = cfg.logger
    pruner = cfg.pruner
    name = f"{pruner.name}-f{pruner.fraction:g}-t{cfg.schedule.prune_at or 'end'}-s{cfg.seed}"
    return Tracker.start(
        mode=log.mode,
        project=log.project,
        entity=log.entity,
        name=name,
        group=log.group or cfg.experiment_name,
        job_type=log.job_type or "prune",
        tags=[pruner.name, cfg.model.name, cfg.dataset.name, *log.tags],
        run_dir=out_dir,
        resolved_config=resolved,
        display_config=_flat(resolved),
        notes=log.notes,
    )


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Execute one run and write results.json into ``paths.output_dir``; returns the results."""
    wall = time.perf_counter()
    resolved = _resolved(cfg)
    run = build_run(cfg)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    status = "finished"
    with start_tracker(cfg, resolved, run.out_dir) as tracker:
        try:
            _train_phase(run, run.plan.prune_at, "dense", tracker)
            _record_eval(run, "dense")
            if run.scorer is not None:
                _prune(run)
            _record_eval(run, "pruned")
            _train_phase(run, run.plan.end, "finetune", tracker)
            _record_eval(run, "final")
        except Diverged as exc:
            status = "diverged"
            run.metrics["diverged_at"] = exc.iteration
        run.metrics.update(parameter_counts(run.model, run.space))
        run.timings["time/total_s"] = time.perf_counter() - wall
        run.metrics.update(run.timings)
        results = {
            "status": status,
            "pruner": cfg.pruner.name,
            "fraction": cfg.pruner.fraction,
            "iterations": {
                "per_epoch": run.plan.iterations_per_epoch,
                "prune_at": run.plan.prune_at,
                "end": run.plan.end,
            },
            "metrics": run.metrics,
            "layer_sparsity": layer_sparsity(run.model, run.space),
            "config": resolved,
            "versions": package_versions(),
            "device": str(run.device),
        }
        write_json_atomic(run.out_dir / "results.json", results)
        tracker.summary(run.metrics)
        tracker.finish(status)
    print(summary_table(results))
    print(f"results: {run.out_dir / 'results.json'}")
    return results
