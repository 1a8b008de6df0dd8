"""One run: dense trunk to the pruning time -> scores -> exact-k mask -> masked fine-tuning -> evaluation.

The dense part comes from the trunk store when another run already trained it (koopsweep.train.dense); the
branch (pruning and fine-tuning) is this run's own, checkpointed when the run is stopped so it can resume.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from koopsweep.data import TensorData, load_dataset
from koopsweep.data.tensors import BatchStream
from koopsweep.koopman.dmd import DIAGNOSTICS
from koopsweep.prune import MaskSet, ParamSpace, select_keep
from koopsweep.prune.amount import Amount, solve
from koopsweep.prune.flops import flop_metrics
from koopsweep.prune.gradients import average_gradient
from koopsweep.prune.metrics import layer_sparsity, overlap, parameter_counts
from koopsweep.prune.scorers import GradientMagnitudeScorer, PruneContext, Scorer
from koopsweep.atomic import write_json_atomic
from koopsweep.results import package_versions, summary_table
from koopsweep.store import branch_id, trunk_id, trunk_spec
from koopsweep.store.ids import wandb_run_id
from koopsweep.store.artifacts import save_checked
from koopsweep.store.branch import BranchCheckpoint
from koopsweep.store.trunk import Trunk, remove_empty_dirs
from koopsweep.tracking import Tracker, flatten_config
from koopsweep.train import runtime
from koopsweep.train.koopman_window import FitVectors
from koopsweep.train.loop import Diverged, Trainer, evaluate
from koopsweep.train.optim import build_optimizer, lr_function, sgd_momentum
from koopsweep.train.plan import Plan
from koopsweep.train.preempt import Preempted, catch_stop_signals


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

    def record_eval(self, stage: str, test: dict[str, float] | None = None) -> None:
        test = test or self.evaluate()
        self.metrics[f"{stage}/test_acc"] = test["acc"]
        self.metrics[f"{stage}/test_loss"] = test["loss"]

    def record_dense_eval(self, trunk: Trunk) -> None:
        """The dense model at the pruning time, evaluated once per trunk and evaluation setting, then reused."""
        data, device = self.cfg.dataset, self.device
        key = f"it{self.trainer.iteration}-test{data.test_size}-eb{data.eval_batch_size}-{self.cfg.precision}-{device.type}"
        test = trunk.cached_eval(key)
        if test is None:
            test = self.evaluate()
            trunk.save_eval(key, test)
        self.record_eval("dense", test)

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
    plan = Plan.build(cfg.schedule, cfg.koopman, stream.iterations_per_epoch, cfg.store.checkpoint_every)
    optimizer = build_optimizer(model.parameters(), cfg.optimizer)
    lr_at = lr_function(cfg.optimizer.lr, cfg.schedule, plan.iterations_per_epoch, plan.horizon, plan.prune_at)
    trainer = Trainer(model, optimizer, stream, lr_at, show_progress=cfg.progress)
    scorer = get_class(pruner._target_)() if pruner._target_ else None
    return Run(cfg, device, data, model, space, plan, trainer, scorer, Path(cfg.paths.output_dir))


def train_phase(run: Run, end: int, stage: str, tracker: Tracker, on_curve=None) -> None:  # noqa: ANN001
    """Train to ``end``, logging the training loss and test metrics every eval period."""

    def on_period(iteration: int, train_metrics: dict[str, float]) -> None:
        test = run.evaluate()
        record = {
            **train_metrics,
            "test/acc": test["acc"],
            "test/loss": test["loss"],
            "epoch": iteration / run.plan.iterations_per_epoch,
            "lr": run.trainer.lr_at(max(iteration - 1, 0)),
        }
        tracker.log({**record, "stage": stage}, step=iteration)
        if on_curve is not None:
            on_curve({"iteration": iteration, **record})

    start = time.perf_counter()
    try:
        run.trainer.train_until(end, desc=stage, on_period=on_period, period=run.plan.eval_every)
    finally:
        run.timed(stage, time.perf_counter() - start)


def prune_context(run: Run, koopman_fit: FitVectors | None = None) -> PruneContext:
    """What scorers may look at: the model at t, the gradient over ``pruner.batches`` batches, the Koopman fit."""
    t = run.trainer.iteration
    stream = run.trainer.stream
    gradient_cache: dict[str, torch.Tensor] = {}

    def loss_gradient() -> torch.Tensor:
        if "g" not in gradient_cache:
            batches = (stream.batch(t + i) for i in range(run.cfg.pruner.batches))
            gradient_cache["g"] = average_gradient(run.model, run.space, batches)
        return gradient_cache["g"]

    lr, momentum = run.gradient_settings()
    return PruneContext(
        model=run.model,
        space=run.space,
        iteration=t,
        seed=run.cfg.seed,
        koopman_fit=koopman_fit,
        loss_gradient=loss_gradient,
        lr=lr,
        momentum=momentum,
    )


def log_koopman(run: Run, ctx: PruneContext, tracker: Tracker) -> None:
    """The chosen eigenvalue, kept rank, mode's imaginary share and the whole spectrum (results and W&B)."""
    fit = ctx.koopman()
    summary = fit.summary()
    run.koopman = summary
    run.metrics.update(
        {
            "koopman/eigenvalue_re": summary["eigenvalue"]["re"],
            "koopman/eigenvalue_im": summary["eigenvalue"]["im"],
            "koopman/distance_to_1": summary["eigenvalue"]["distance_to_1"],
            "koopman/rank": summary["rank"],
            "koopman/snapshots": summary["snapshots"],
            "koopman/imag_ratio": summary["imag_ratio"],
            **{f"koopman/{key}": summary.get(key) for key in DIAGNOSTICS},
            "time/koopman_fit_s": fit.seconds,
        }
    )
    plot_spectrum(run, tracker)


def plot_spectrum(run: Run, tracker: Tracker, upload: bool = True) -> None:
    """The spectrum of ``run.koopman`` with the eigenvalue nearest 1 marked (figures/, and W&B when ``upload``)."""
    spectrum = run.koopman["spectrum"]
    lam = torch.complex(torch.tensor(spectrum["re"]), torch.tensor(spectrum["im"]))
    chosen = int(torch.argmin((lam - 1).abs()))
    tracker.log_spectrum(lam, chosen, step=run.plan.prune_at, upload=upload)


def prune(run: Run, ctx: PruneContext, tracker: Tracker) -> MaskSet:
    """Score, select exactly k parameters, apply the mask, and compare with GMP (and GGP) at the same t, fraction."""
    start = time.perf_counter()
    pruner = run.cfg.pruner
    scores = run.scorer.scores(ctx).to(run.device)
    if run.scorer.requires_koopman:
        log_koopman(run, ctx, tracker)
    amount = run.amount()
    keep = select_keep(scores, amount.remove, run.space, pruner.scope)
    if pruner.compare:
        reference = select_keep(ctx.theta().abs(), amount.remove, run.space, "global")
        run.metrics["overlap/gmp"] = overlap(~keep, ~reference)
        if run.scorer.gradient_flavoured:
            ggp = GradientMagnitudeScorer().scores(ctx).to(run.device)
            run.metrics["overlap/ggp"] = overlap(~keep, ~select_keep(ggp, amount.remove, run.space, "global"))
    masks = MaskSet(run.space, keep)
    masks.apply(run.model)
    run.trainer.masks = masks
    run.timed("prune", time.perf_counter() - start)
    return masks


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)  # type: ignore[return-value]


def start_tracker(cfg: DictConfig, resolved: dict[str, Any], out_dir: Path, trunk: str, branch: str) -> Tracker:
    """One W&B run per grid cell, grouped by experiment, tagged with method, model, dataset and trunk.

    The W&B run id is the branch id and the rest of the config (store.ids.wandb_run_id): a preempted or re-issued
    cell resumes its own run, and two experiments or groups never share one.
    """
    log = cfg.logger
    pruner = cfg.pruner
    amount = f"c{pruner.compression:g}" if pruner.compression is not None else f"f{pruner.fraction or 0:g}"
    name = f"{pruner.name}-{amount}-t{cfg.schedule.prune_at or 'end'}-s{cfg.seed}"
    stage = "dense" if pruner._target_ is None else "prune"
    display = {**flatten_config(resolved), "trunk_id": trunk, "branch_id": branch}  # group or filter by either
    return Tracker.start(
        mode=log.mode,
        project=log.project,
        entity=log.entity,
        name=name,
        group=log.group or cfg.experiment_name,
        job_type=log.job_type or stage,
        tags=[pruner.name, cfg.model.name, cfg.dataset.name, f"trunk-{trunk}", *log.tags],
        run_dir=out_dir,
        resolved_config=resolved,
        display_config=display,
        run_id=wandb_run_id(resolved, branch),
        notes=log.notes,
    )


def _trunk_for(cfg: DictConfig, store_dir: Path, branch: str) -> Trunk:
    """The shared trunk, or with ``store.reuse=false`` a private one inside the branch (deleted when done)."""
    if cfg.store.reuse:
        return Trunk(store_dir, trunk_id(cfg), trunk_spec(cfg))
    return Trunk(store_dir / "branches" / branch, "private-trunk")


@contextlib.contextmanager
def _tidy(trunk: Trunk) -> Iterator[None]:
    """However the run ends, a trunk it left with nothing to reuse (it failed early) does not stay in the store."""
    try:
        yield
    finally:
        trunk.remove_if_unused()


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Execute one run and write results.json into ``paths.output_dir``; returns the results."""
    from koopsweep.train.dense import train_trunk  # late: dense imports run's helpers

    wall = time.perf_counter()
    resolved = _resolved(cfg)
    run = build_run(cfg)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    store_dir = Path(cfg.paths.store_dir)
    branch = branch_id(cfg)
    trunk = _trunk_for(cfg, store_dir, branch)
    checkpoint = BranchCheckpoint(store_dir / "branches" / branch, run.space.layout_hash)
    status, exit_code = "finished", 0
    with (
        catch_stop_signals() as stop,
        _tidy(trunk),
        start_tracker(cfg, resolved, run.out_dir, trunk.id, branch) as tracker,
    ):
        run.trainer.stop_requested = stop
        try:
            resumed = checkpoint.restore(run)
            if resumed and run.koopman is not None:
                plot_spectrum(run, tracker, upload=False)  # this folder's figure; W&B has it from before the stop
            if not resumed:
                fit = train_trunk(run, trunk, tracker)
                run.record_dense_eval(trunk)
                if run.scorer is not None:
                    prune(run, prune_context(run, fit), tracker)
                run.record_eval("pruned")
            train_phase(run, run.plan.end, "finetune", tracker)
            run.record_eval("final")
            checkpoint.clear()
        except Diverged as exc:
            status = "diverged"
            run.metrics["diverged_at"] = exc.iteration
        except Preempted as exc:
            status, exit_code = "preempted", exc.exit_code
            if run.trainer.iteration > run.plan.prune_at:
                checkpoint.save(run)
            run.metrics["preempted_at"] = exc.iteration
        if not cfg.store.reuse and status != "preempted":
            trunk.remove()
            remove_empty_dirs(store_dir / "branches" / branch, stop=store_dir / "branches")
        results = _results(run, cfg, resolved, status, trunk.id, branch, wall)
        save_checked(run.out_dir / "model.pt", {k: v.cpu() for k, v in run.model.state_dict().items()})
        write_json_atomic(run.out_dir / "results.json", results)
        tracker.summary(run.metrics)
        tracker.finish(status)
    print(summary_table(results))
    print(f"results: {run.out_dir / 'results.json'}")
    if status == "preempted":
        print(f"koopsweep: stopped at iteration {run.metrics['preempted_at']}; state saved: run the same command to resume")
        raise SystemExit(exit_code)
    return results


def _results(run: Run, cfg: DictConfig, resolved: dict[str, Any], status: str, trunk: str, branch: str,
             wall: float) -> dict[str, Any]:
    amount = run.amount()
    run.metrics.update(parameter_counts(run.model, run.space, run.trainer.masks))  # the mask's, even after NaNs
    run.metrics.update(flop_metrics(run.model, run.data.input_shape))
    run.timed("total", time.perf_counter() - wall)
    run.metrics.update(run.timings)
    return {
        "status": status,
        "pruner": cfg.pruner.name,
        "fraction": amount.fraction,
        "compression_target": amount.target_compression,
        "trunk_id": trunk,
        "branch_id": branch,
        "iterations": {"per_epoch": run.plan.iterations_per_epoch, "prune_at": run.plan.prune_at, "end": run.plan.end},
        "metrics": run.metrics,
        "layer_sparsity": layer_sparsity(run.model, run.space, run.trainer.masks),
        "koopman": run.koopman,
        "config": resolved,
        "versions": package_versions(),
        "device": str(run.device),
    }
