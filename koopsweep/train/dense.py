"""The dense trunk: load it from the store at the pruning time, or train it there (once, under a lock).

States are kept every ``store.checkpoint_every`` and at the start of the Koopman window, so a run pruning at a
later time, or one that was stopped, resumes from the latest state instead of starting over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from koopsweep.store.trunk import Trunk
from koopsweep.steps import Step
from koopsweep.tracking import Tracker
from koopsweep.train import state as train_state
from koopsweep.train.preempt import Preempted
from koopsweep.train.run import Run, train_phase


def _replay_curve(trunk: Trunk, tracker: Tracker, until: int) -> None:
    """Log the stored dense curve up to ``until`` so a run that reused its trunk still shows it."""
    for record in trunk.curve(until):
        iteration = record.pop("iteration")
        tracker.log({**record, "stage": "dense"}, step=iteration)


def train_trunk(run: Run, trunk: Trunk, tracker: Tracker) -> Callable[[], Any] | None:
    """Bring ``run`` to the pruning time from the trunk; returns the Koopman fit (lazy) when the pruner needs it."""
    target = run.plan.prune_at
    layout = run.space.layout_hash
    window = None
    if run.scorer is not None and run.scorer.requires_koopman:
        from koopsweep.train.koopman_window import KoopmanWindow

        window = KoopmanWindow.for_run(run, trunk)
    with trunk.lock():
        if window is None or window.complete():
            state = trunk.load_state(target, layout) if target in trunk.state_iterations() else None
            if state is not None:
                train_state.restore(run.trainer, state, run.space)
                run.metrics["trunk/reused_iterations"] = target
                _replay_curve(trunk, tracker, target)
                return window.fit if window else None
        start_limit = window.start if window is not None else target
        state = trunk.latest_state(start_limit, layout)
        if state is not None:
            train_state.restore(run.trainer, state, run.space)
            _replay_curve(trunk, tracker, run.trainer.iteration)
        run.metrics["trunk/reused_iterations"] = run.trainer.iteration
        every = Step.parse(run.cfg.store.checkpoint_every).to_iterations(run.plan.iterations_per_epoch)
        keep = {window.start} if window is not None else set()
        saved = set(trunk.state_iterations())

        def checkpoint(iteration: int) -> None:
            if (iteration % every == 0 or iteration in keep) and iteration not in saved:
                trunk.save_state(iteration, train_state.capture(run.trainer), layout)
                saved.add(iteration)
        hooks = [checkpoint] + ([window.record] if window is not None else [])
        run.trainer.hooks.extend(hooks)
        try:
            for hook in hooks:
                hook(run.trainer.iteration)  # the starting point itself (θ(t0) of a window beginning here)
            train_phase(run, target, "dense", tracker, on_curve=trunk.append_curve)
        except Preempted:
            trunk.save_state(run.trainer.iteration, train_state.capture(run.trainer), layout)
            raise
        finally:
            for hook in hooks:
                run.trainer.hooks.remove(hook)
        if target not in saved:
            trunk.save_state(target, train_state.capture(run.trainer), layout)
        if window is not None:
            window.close()
    return window.fit if window is not None else None
