"""The pruning step: what scorers see, exactly-k selection, the masks, and the comparisons with GMP and GGP.

Koopman runs also report their fit here: the chosen eigenvalue, the diagnostics and the spectrum.
"""

from __future__ import annotations

import logging
import time

import torch

from koopsweep.koopman.dmd import DIAGNOSTICS
from koopsweep.koopman.spectral import NEAR_ONE, mass_near_one, spectral_gap
from koopsweep.prune import MaskSet, select_keep
from koopsweep.prune.gradients import average_gradient
from koopsweep.prune.methods import choose_keep
from koopsweep.prune.metrics import layer_sparsity, overlap
from koopsweep.prune.scorers import GradientMagnitudeScorer, MagnitudeScorer, PruneContext, Scorer
from koopsweep.report.spectrum import save_run_spectrum
from koopsweep.tracking import Tracker
from koopsweep.train.koopman_recording import FitVectors
from koopsweep.train.session import Run

log = logging.getLogger(__name__)

EIGENVALUES = "koopman/eigenvalues"  # W&B table (and <key>_plot scatter) of a Koopman run's spectrum


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


def log_koopman(run: Run, fit: FitVectors, tracker: Tracker) -> None:
    """The chosen eigenvalue, kept rank, mode's imaginary share, spectral scalars and the whole spectrum (results,
    W&B summary, an eigenvalue table and its complex-plane scatter, the run's spectrum figure)."""
    summary = fit.summary()
    run.koopman = summary
    lam = [complex(re, im) for re, im in zip(summary["spectrum"]["re"], summary["spectrum"]["im"])]
    run.metrics.update(
        {
            "koopman/eigenvalue_re": summary["eigenvalue"]["re"],
            "koopman/eigenvalue_im": summary["eigenvalue"]["im"],
            "koopman/distance_to_1": summary["eigenvalue"]["distance_to_1"],
            "koopman/rank": summary["rank"],
            "koopman/snapshots": summary["snapshots"],
            "koopman/imag_ratio": summary["imag_ratio"],
            **{f"koopman/{key}": summary.get(key) for key in DIAGNOSTICS},
            "koopman/spectral_gap": spectral_gap(lam),
            "koopman/near_one_share": mass_near_one(lam, NEAR_ONE),
            "time/koopman_fit_s": fit.seconds,
        }
    )
    plot_spectrum(run, tracker)
    log_eigenvalues(summary, tracker)


def log_eigenvalues(summary: dict, tracker: Tracker) -> None:
    """Every eigenvalue as a row of the W&B table ``koopman/eigenvalues`` (with |λ|, |λ − 1|, the amplitude |b|,
    whether KMP chose it) and its scatter in the complex plane, so spectra compare across runs in W&B."""
    spectrum = summary["spectrum"]
    amplitudes = summary.get("amplitude_abs") or []
    lam = [complex(re, im) for re, im in zip(spectrum["re"], spectrum["im"])]
    if not lam:
        return
    chosen = min(range(len(lam)), key=lambda j: abs(lam[j] - 1))
    rows = [
        [j, z.real, z.imag, abs(z), abs(z - 1), amplitudes[j] if j < len(amplitudes) else None, j == chosen]
        for j, z in enumerate(lam)
    ]
    columns = ["index", "re", "im", "abs", "distance_to_1", "amplitude_abs", "chosen"]
    tracker.log_scatter(EIGENVALUES, columns, rows, "re", "im", "Koopman eigenvalues (complex plane)")


def log_recorded_fit(run: Run, fit: FitVectors | None, tracker: Tracker) -> None:
    """``koopman.record=true``: a run whose pruner does not score from the fit (none, gmp, ...) logs it all the
    same; a Koopman pruner's run logs it when it prunes."""
    if fit is not None and not (run.scorer is not None and run.scorer.requires_koopman):
        log_koopman(run, fit, tracker)


def plot_spectrum(run: Run, tracker: Tracker, upload: bool = True) -> None:
    """The spectrum of ``run.koopman`` with the eigenvalue nearest 1 marked, in the run's figures/ folder, and on
    W&B when ``upload`` (a run resumed in fine-tuning redraws its figure without logging it twice)."""
    spectrum = run.koopman["spectrum"]
    lam = [complex(re, im) for re, im in zip(spectrum["re"], spectrum["im"])]
    chosen = min(range(len(lam)), key=lambda j: abs(lam[j] - 1))
    path, caption = save_run_spectrum(run.out_dir, lam, chosen, step=run.plan.prune_at)
    if upload:
        tracker.log_image("koopman/spectrum", path, caption, iteration=run.plan.prune_at)


def _is(scorer: Scorer, kind: type[Scorer], scope: str) -> bool:
    """True when ``scorer`` at ``scope`` is exactly the global baseline ``kind`` (GMP, GGP): same scores, same mask."""
    return type(scorer) is kind and scope == "global"


def prune(run: Run, ctx: PruneContext, tracker: Tracker) -> MaskSet:
    """Score, select exactly k parameters, apply the mask, and compare with GMP (and GGP) at the same t, fraction."""
    start = time.perf_counter()
    pruner = run.cfg.pruner
    amount = run.amount()
    keep = choose_keep(run.scorer, ctx, amount.remove, pruner.scope)  # the step koopsweep.api takes too
    if pruner.compare:  # a GMP (GGP) run is its own reference: its mask is not selected a second time
        reference = keep if _is(run.scorer, MagnitudeScorer, pruner.scope) else None
        if reference is None:
            reference = select_keep(ctx.theta().abs(), amount.remove, run.space, "global")
        run.metrics["overlap/gmp"] = overlap(~keep, ~reference)
        if run.scorer.gradient_flavoured:
            ggp = keep if _is(run.scorer, GradientMagnitudeScorer, pruner.scope) else None
            if ggp is None:
                scores = GradientMagnitudeScorer().scores(ctx).to(run.device)
                ggp = select_keep(scores, amount.remove, run.space, "global")
            run.metrics["overlap/ggp"] = overlap(~keep, ~ggp)
    masks = MaskSet(run.space, keep)
    masks.apply(run.model)
    run.trainer.masks = masks
    collapsed = [name for name, share in layer_sparsity(run.model, run.space, masks).items() if share == 1.0]
    run.metrics["mask/collapsed_layers"] = len(collapsed)
    if collapsed:
        log.warning(
            "%s removed every weight of %s (layer collapse): its output is zero for good (fine-tuning cannot bring it "
            "back); a plain chain of layers is cut there, a residual block passes on only its skip connection",
            *(pruner.name, ", ".join(collapsed)),
        )
    run.timed("prune", time.perf_counter() - start)
    if run.scorer.requires_koopman:  # reporting, not pruning: outside time/prune_s
        log_koopman(run, ctx.koopman(), tracker)
    return masks
