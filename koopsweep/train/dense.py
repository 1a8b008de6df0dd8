"""The dense trunk: load it from the store at the pruning time, or train it there (once, under a lock).

States are kept every ``store.checkpoint_every`` and at the start of the Koopman window, so a run pruning at a
later time, or one that was stopped, resumes from the latest state instead of starting over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from koopsweep.errors import ArtifactError
from koopsweep.store.trunk import Trunk
from koopsweep.tracking import STEP, Tracker
from koopsweep.train import state as train_state
from koopsweep.train.koopman_recording import FitVectors, KoopmanRecording, records_koopman
from koopsweep.train.preempt import Preempted
from koopsweep.train.session import Run, train_phase

# Curve keys of stores written before the metric names were unified (docs/logging.md).
_LEGACY_KEYS = {"test/acc": "eval/test_acc", "test/loss": "eval/test_loss", "lr": "train/lr", "epoch": "train/epoch"}


def _replay_curve(trunk: Trunk, tracker: Tracker, until: int) -> None:
    """Log the stored dense curve up to ``until`` so a run that reused its trunk still shows it."""
    for record in trunk.curve(until):
        iteration = record.pop("iteration")
        record.pop("stage", None)
        tracker.log({STEP: iteration, **{_LEGACY_KEYS.get(k, k): v for k, v in record.items()}})


@dataclass(frozen=True)
class _Ready:
    fit: FitVectors | None


def _read_ready(
    run: Run, trunk: Trunk, tracker: Tracker, window: KoopmanRecording | None, stop_waiting: Callable[[], None]
) -> _Ready | None:
    """Load the state at the pruning time (and the cached fit) when the store already has them; None otherwise.

    Under the trunk's shared lock, beside a process that may hold the exclusive one to extend the trunk: a run
    that only reads what exists never waits for that extension. Anything missing or damaged is left to the
    exclusive path, which repairs it.
    """
    target = run.plan.prune_at
    if target not in trunk.state_iterations():
        return None
    with trunk.reading(stop_waiting):
        fit = window.cached(repair=False) if window is not None else None
        if window is not None and fit is None:
            return None
        state = trunk.read_state(target, run.space.layout_hash)
        if state is None:
            return None
        train_state.restore(run.trainer, state, run.space)
        run.metrics["trunk/reused_iterations"] = target
        _replay_curve(trunk, tracker, target)
    return _Ready(fit)


def train_trunk(run: Run, trunk: Trunk, tracker: Tracker) -> FitVectors | None:
    """Bring ``run`` to the pruning time from the trunk; returns the Koopman fit when the pruner needs one (or
    ``koopman.record`` asks for it).

    A Koopman run whose fit is cached needs no window; otherwise the window is recorded (again, if its snapshots
    were dropped) on the way to the pruning time and fitted, all under the trunk's lock.
    """
    target = run.plan.prune_at
    layout = run.space.layout_hash
    window = KoopmanRecording.for_run(run, trunk) if records_koopman(run) else None

    def stop_waiting() -> None:  # SIGTERM while another run holds the trunk: stop now, not once it is free
        signum = run.trainer.stop_requested()
        if signum is not None:
            raise Preempted(run.trainer.iteration, signum)

    ready = _read_ready(run, trunk, tracker, window, stop_waiting)
    if ready is not None:
        return ready.fit
    with trunk.lock(stop_waiting):
        fit = window.cached() if window is not None else None
        recording = window if window is not None and fit is None else None
        if recording is None or recording.complete():
            state = trunk.latest_state(target, layout) if target in trunk.state_iterations() else None
            state = state if state is not None and state["iteration"] == target else None
            fitted = recording.fit_or_discard() if recording is not None and state is not None else fit
            if state is not None and (recording is None or fitted is not None):
                train_state.restore(run.trainer, state, run.space)
                run.metrics["trunk/reused_iterations"] = target
                _replay_curve(trunk, tracker, target)
                return fitted
        start_limit = recording.start if recording is not None else target
        state = trunk.latest_state(start_limit, layout)
        if state is not None:
            train_state.restore(run.trainer, state, run.space)
            _replay_curve(trunk, tracker, run.trainer.iteration)
        run.metrics["trunk/reused_iterations"] = run.trainer.iteration
        every = run.plan.checkpoint_every
        keep = {recording.start} if recording is not None else set()
        saved = set(trunk.state_iterations())

        def checkpoint(iteration: int) -> None:
            if (iteration % every == 0 or iteration in keep) and iteration not in saved:
                trunk.save_state(iteration, train_state.capture(run.trainer), layout)
                saved.add(iteration)

        hooks = [checkpoint] + ([recording.record] if recording is not None else [])
        run.trainer.hooks.extend(hooks)
        try:
            for hook in hooks:
                hook(run.trainer.iteration)  # the starting point itself (θ(t0) of a window beginning here)
            train_phase(run, target, "dense", tracker, on_curve=trunk.append_curve, origin=0)
        except Preempted:
            if run.trainer.iteration not in saved:  # resume point; dropped once a run has passed it
                trunk.save_state(run.trainer.iteration, train_state.capture(run.trainer), layout, temporary=True)
            raise
        finally:
            for hook in hooks:
                run.trainer.hooks.remove(hook)
        if target not in saved:
            trunk.save_state(target, train_state.capture(run.trainer), layout)
        trunk.drop_temporary_states(before=target)
        if recording is not None:
            try:
                return recording.fit_and_cache()
            except ArtifactError:
                recording.discard()  # written just now and already unreadable: the next run records it again
                raise
    return fit
