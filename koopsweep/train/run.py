"""One run, as a recipe: plan → trunk → prune → fine-tune → record.

The dense part comes from the trunk store when another run already trained it (koopsweep.train.dense); the
branch (pruning and fine-tuning) is this run's own, checkpointed when the run is stopped so it can resume. The
live objects are built once (koopsweep.train.session), pruning is koopsweep.train.pruning, the record is
koopsweep.results.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from koopsweep.artifacts import save_checked
from koopsweep.atomic import write_json_atomic
from koopsweep.errors import KoopsweepError, machine_error
from koopsweep.prune.flops import flop_metrics
from koopsweep.prune.metrics import layer_sparsity, parameter_counts
from koopsweep.results import results_record, summary_table
from koopsweep.runfolder import MODEL, RESULTS, artifact_files, save_masks
from koopsweep.store import branch_id, trunk_id, trunk_spec
from koopsweep.store.store import Store
from koopsweep.store.trunk import Trunk
from koopsweep.tracking import Tracker, run_identity
from koopsweep.tracking.model_artifact import ARTIFACT_TYPE, model_artifact
from koopsweep.train.dense import train_trunk
from koopsweep.train.loop import Diverged
from koopsweep.train.preempt import Preempted, catch_stop_signals
from koopsweep.train.pruning import log_recorded_fit, plot_spectrum, prune, prune_context
from koopsweep.train.session import Run, build_run, train_phase
from koopsweep.train.state import BranchCheckpoint


def run_experiment(cfg: DictConfig) -> dict[str, Any]:
    """Execute one run and write results.json (and model.pt) into ``paths.output_dir``; returns the results.

    A few seconds on synthetic data (the dense trunk goes to ``paths.store_dir``, under ``paths.root_dir``):

    >>> import shutil, tempfile
    >>> from koopsweep import compose_config, run_experiment
    >>> folder = tempfile.mkdtemp()
    >>> cfg = compose_config([
    ...     "dataset=synthetic", "dataset.source.train=256", "dataset.source.test=128", "schedule.train=2ep",
    ...     "schedule.finetune=1ep", "pruner=gmp", "pruner.compression=4", "logger=none",
    ...     f"paths.root_dir={folder}", f"paths.output_dir={folder}/run",
    ... ])
    >>> results = run_experiment(cfg)  # doctest: +ELLIPSIS
    stage   test acc  test loss
    ...
    results: .../run/results.json
    >>> results["status"], round(results["metrics"]["mask/compression"], 3)
    ('finished', 4.0)
    >>> shutil.rmtree(folder)
    """
    wall = time.perf_counter()
    resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(resolved, dict)
    run = build_run(cfg)
    run.out_dir.mkdir(parents=True, exist_ok=True)
    spec = trunk_spec(cfg)
    store, branch = Store(cfg.paths.store_dir), branch_id(cfg, trunk_id(cfg, spec))
    # nothing is written to the store before the run's failures are recorded (its spec with the trunk's lock)
    trunk = store.trunk(trunk_id(cfg, spec), spec, create=False) if cfg.store.reuse else store.private_trunk(branch)
    checkpoint = BranchCheckpoint(store.branch_state(branch), run.space.layout_hash)
    identity = run_identity(cfg, resolved, trunk.id, branch)
    status, exit_code, diverged = "finished", 0, None
    with (
        catch_stop_signals() as stop,
        _tidy(trunk),
        Tracker.for_run(cfg.logger, identity, run.out_dir, resolved) as tracker,
        _failure_recorded(run, tracker, lambda: _record(run, "failed", trunk.id, branch, resolved, wall), trunk),
    ):
        run.trainer.stop_requested = stop
        try:
            if not _resume(run, checkpoint, tracker):
                fit = train_trunk(run, trunk, tracker)
                run.record_dense_eval(trunk, tracker)
                log_recorded_fit(run, fit, tracker)
                if run.scorer is not None:
                    prune(run, prune_context(run, fit), tracker)
                run.record_eval("pruned", tracker=tracker)  # the drop right after pruning, at the same iteration
            train_phase(run, run.plan.end, "finetune", tracker)
            run.record_eval("final")
            checkpoint.clear()
        except Diverged as exc:
            status, diverged = "diverged", exc
            run.metrics["run/diverged_at"] = exc.iteration
        except Preempted as exc:
            status, exit_code = "preempted", exc.exit_code
            if run.trainer.iteration > run.plan.prune_at:
                checkpoint.save(run.trainer, {"metrics": run.metrics, "timings": run.timings, "koopman": run.koopman})
            run.metrics["run/preempted_at"] = exc.iteration
        if not cfg.store.reuse and status != "preempted":
            trunk.remove()
            store.tidy_branch(branch)
        results = _record(run, status, trunk.id, branch, resolved, wall)
        save_checked(run.out_dir / MODEL, {k: v.cpu() for k, v in run.model.state_dict().items()})
        if run.trainer.masks is not None:
            save_masks(run.out_dir, run.trainer.masks)
        write_json_atomic(run.out_dir / RESULTS, results)
        tracker.summary(run.metrics)
        _log_tables(tracker, run, results)
        if status == "finished" and run.trainer.masks is not None:
            artifact = model_artifact(results)
            files = artifact_files(run.out_dir)
            tracker.log_artifact(artifact.name, ARTIFACT_TYPE, files, artifact.metadata, artifact.aliases)
        tracker.finish(status, exit_code=exit_code if status == "preempted" else None)
    print(summary_table(results))
    print(f"results: {run.out_dir / RESULTS}")
    if diverged is not None:
        stage = "dense training" if diverged.iteration <= run.plan.prune_at else "fine-tuning"
        print(
            f"koopsweep: training diverged at iteration {diverged.iteration} in {stage} (loss {diverged.loss}); "
            "results.json records status diverged: lower the learning rate for a run that converges",
            file=sys.stderr,
        )
    if status == "preempted":
        print(
            f"koopsweep: stopped at iteration {run.metrics['run/preempted_at']}; state saved: "
            "run the same command to resume"
        )
        raise SystemExit(exit_code)
    return results


def _resume(run: Run, checkpoint: BranchCheckpoint, tracker: Tracker) -> bool:
    """Continue a branch stopped during fine-tuning: its state, metrics and Koopman summary; False if none."""
    saved = checkpoint.restore(run.trainer, run.space)
    if saved is None:
        return False
    run.metrics.update(saved["metrics"])
    run.timings.update(saved["timings"])
    run.koopman = saved.get("koopman")
    if run.koopman is not None:
        plot_spectrum(run, tracker, upload=False)  # this folder's figure; W&B has it from before the stop
    return True


def _log_tables(tracker: Tracker, run: Run, results: dict[str, Any]) -> None:
    """The mask per layer and its overlaps with the baselines, as W&B tables (also in results.json)."""
    numel = {slot.name: slot.numel for slot in run.space.slots}
    tracker.log_table(
        "tables/layer_sparsity",
        ["layer", "numel", "sparsity"],
        [[name, numel[name], share] for name, share in results["layer_sparsity"].items()],
    )
    overlaps = [
        [key.split("/", 1)[1], value] for key, value in results["metrics"].items() if key.startswith("overlap/")
    ]
    if overlaps:
        tracker.log_table("tables/overlap", ["reference", "overlap"], overlaps)


@contextlib.contextmanager
def _tidy(trunk: Trunk) -> Iterator[None]:
    """However the run ends, a trunk it left with nothing to reuse (it failed early) does not stay in the store."""
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a damaged store was already reported; never hide that error
            trunk.remove_if_unused()


@contextlib.contextmanager
def _failure_recorded(run: Run, tracker: Tracker, record: Callable[[], dict[str, Any]], trunk: Trunk) -> Iterator[None]:
    """A run that fails on the way (a full disk, a damaged store, a fit that cannot be made) ends in one line, and
    is marked failed with its reason in results.json and the W&B run wherever those can still be written; a
    private trunk goes, a shared one keeps what it verified."""
    try:
        yield
    except (KoopsweepError, OSError) as exc:
        error = exc if isinstance(exc, KoopsweepError) else machine_error(exc)
        with contextlib.suppress(Exception):
            write_json_atomic(run.out_dir / RESULTS, {**record(), "error": str(error)})
        with contextlib.suppress(Exception):
            tracker.summary({"run/error": str(error)[:500]})
        with contextlib.suppress(Exception):
            tracker.finish("failed", exit_code=error.exit_code)
        if not run.cfg.store.reuse:
            with contextlib.suppress(OSError):
                trunk.remove()
        raise error from None


def _record(run: Run, status: str, trunk: str, branch: str, resolved: dict[str, Any], wall: float) -> dict[str, Any]:
    """The run's results.json: counts from its mask (even after NaNs), FLOPs, timings and everything measured."""
    amount = run.amount()
    run.metrics.update(
        {
            "run/status": status,
            "run/prune_at": run.plan.prune_at,
            "run/prune_epoch": run.plan.prune_at / run.plan.iterations_per_epoch,
            "mask/fraction": amount.fraction,
            "mask/compression_target": amount.target_compression,
        }
    )
    run.metrics.update(parameter_counts(run.model, run.space, run.trainer.masks))
    run.metrics.update(flop_metrics(run.model, run.data.input_shape))
    run.timed("total", time.perf_counter() - wall)
    run.metrics.update(run.timings)
    return results_record(
        status=status,
        pruner=run.cfg.pruner.name,
        fraction=amount.fraction,
        compression_target=amount.target_compression,
        trunk_id=trunk,
        branch_id=branch,
        iterations={"per_epoch": run.plan.iterations_per_epoch, "prune_at": run.plan.prune_at, "end": run.plan.end},
        metrics=run.metrics,
        layer_sparsity=layer_sparsity(run.model, run.space, run.trainer.masks),
        koopman=run.koopman,
        config=resolved,
        device=str(run.device),
    )
