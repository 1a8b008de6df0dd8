"""The pruning step: what scorers see, exactly-k selection, the masks, and the comparisons with GMP and GGP.

Koopman runs also report their fit here: the chosen eigenvalue, the diagnostics and the spectrum.
"""

from __future__ import annotations

import logging
import time

import torch

from koopsweep.koopman.dmd import DIAGNOSTICS
from koopsweep.prune import MaskSet, select_keep
from koopsweep.prune.gradients import average_gradient
from koopsweep.prune.methods import choose_keep
from koopsweep.prune.metrics import layer_sparsity, overlap
from koopsweep.prune.scorers import GradientMagnitudeScorer, PruneContext
from koopsweep.report.spectrum import save_run_spectrum
from koopsweep.tracking import Tracker
from koopsweep.train.koopman_recording import FitVectors
from koopsweep.train.session import Run

log = logging.getLogger(__name__)


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
    """The spectrum of ``run.koopman`` with the eigenvalue nearest 1 marked, in the run's figures/ folder, and on
    W&B when ``upload`` (a run resumed in fine-tuning redraws its figure without logging it twice)."""
    spectrum = run.koopman["spectrum"]
    lam = [complex(re, im) for re, im in zip(spectrum["re"], spectrum["im"])]
    chosen = min(range(len(lam)), key=lambda j: abs(lam[j] - 1))
    path, caption = save_run_spectrum(run.out_dir, lam, chosen, step=run.plan.prune_at)
    if upload:
        tracker.log_image("koopman/spectrum", path, caption, iteration=run.plan.prune_at)


def prune(run: Run, ctx: PruneContext, tracker: Tracker) -> MaskSet:
    """Score, select exactly k parameters, apply the mask, and compare with GMP (and GGP) at the same t, fraction."""
    start = time.perf_counter()
    pruner = run.cfg.pruner
    amount = run.amount()
    keep = choose_keep(run.scorer, ctx, amount.remove, pruner.scope)  # the step koopsweep.api takes too
    if run.scorer.requires_koopman:
        log_koopman(run, ctx, tracker)
    if pruner.compare:
        reference = select_keep(ctx.theta().abs(), amount.remove, run.space, "global")
        run.metrics["overlap/gmp"] = overlap(~keep, ~reference)
        if run.scorer.gradient_flavoured:
            ggp = GradientMagnitudeScorer().scores(ctx).to(run.device)
            run.metrics["overlap/ggp"] = overlap(~keep, ~select_keep(ggp, amount.remove, run.space, "global"))
    masks = MaskSet(run.space, keep)
    masks.apply(run.model)
    run.trainer.masks = masks
    collapsed = [name for name, share in layer_sparsity(run.model, run.space, masks).items() if share == 1.0]
    run.metrics["mask/collapsed_layers"] = len(collapsed)
    if collapsed:
        log.warning(
            "%s removed every weight of %s (layer collapse): the network is cut and fine-tuning cannot repair it",
            *(pruner.name, ", ".join(collapsed)),
        )
    run.timed("prune", time.perf_counter() - start)
    return masks
