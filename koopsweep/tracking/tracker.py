"""The one place that talks to Weights & Biases: start, log, summarise and always finish a run.

Why a wrapper: W&B's known pitfalls are handled here once. Several Hydra jobs in one process must not share a run
(`reinit="finish_previous"` and a context manager that always finishes); sweep-set keys are locked in the W&B
config, so the resolved Hydra config is logged whole under its own key and the flat keys are for display only; an
unreachable server falls back to offline within a bounded wait. The mode is decided by koopsweep.tracking.mode,
and a run's name, group and tags by koopsweep.tracking.identity. wandb is imported lazily, so `disabled` runs
(tests, CI) never load it and never write a file of it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from omegaconf import DictConfig

from koopsweep.errors import ConfigError, first_line
from koopsweep.tracking.identity import RunIdentity, flatten_config
from koopsweep.tracking.mode import resolve_mode

STATUSES = ("finished", "failed", "diverged", "preempted")
STEP = "train/iteration"
"""The x axis of every curve (declared with define_metric): the global training iteration. Rows are logged without
W&B's own step, so that two rows can share an iteration (the dense and the pruned evaluation at the pruning time)."""
SUMMARIES = {"eval/test_acc": "max,last", "eval/test_loss": "min,last", "train/loss": "last"}
"""How the curves are summarised: a run's best and last test accuracy, its lowest and last test loss."""
RESOLVED_CONFIG_KEY = "hydra_cfg"
"""W&B config key holding the full resolved Hydra config: the truth, unlike the (sweep-lockable) flat keys."""

EXIT_CODES = {"finished": 0, "diverged": 0, "failed": 1}
"""W&B marks a run failed on a non-zero exit code. A diverged run is a valid result of the grid (status in the
summary says so). A preempted run exits with its signal's code, 128 + signal number (koopsweep.train.preempt), after
`mark_preempting()`, so that sweeps requeue it: the caller passes that code."""

_RUN_ID_FORBIDDEN = re.compile(r"[:;,#?/'\\%\s]")
_open: list[Tracker] = []  # the tracker whose run is still open in this process (at most one)
_unreachable: list[str] = []  # why an online init failed in this process: later runs go offline at once
_redirected: set[str] = set()  # W&B folder variables this process pointed into a run folder (see _writable_homes)


ONLINE_INIT_TIMEOUT_S = 8.0
"""How long an online `wandb.init` may take before the run falls back to offline (wandb's default is 90 s, spent
retrying an unreachable server before training starts). WANDB_INIT_TIMEOUT, when set, wins."""


def _init_timeout(mode: str) -> dict[str, float]:
    """``init_timeout`` for wandb.Settings: bounded for online runs unless the user set WANDB_INIT_TIMEOUT."""
    if mode != "online" or os.environ.get("WANDB_INIT_TIMEOUT", "").strip():
        return {}
    return {"init_timeout": ONLINE_INIT_TIMEOUT_S}


def _check_names(tags: Sequence[str], run_id: str | None) -> list[str]:
    """Reject what wandb would reject later with a traceback, as one-line ConfigErrors."""
    if isinstance(tags, str):
        tags = [tags]
    tags = [str(t) for t in tags]
    for tag in tags:
        if not 1 <= len(tag) <= 64:
            raise ConfigError(f"logger.tags: {tag!r} must have 1 to 64 characters")
    if run_id is not None and (not run_id or len(run_id) > 128 or _RUN_ID_FORBIDDEN.search(run_id)):
        raise ConfigError(f"W&B run id {run_id!r} must be 1-128 characters without whitespace or :;,#?/'\\%")
    return tags


def _can_write(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _writable_homes(run_dir: Path) -> None:
    """Point W&B's data and cache folders into ``run_dir/wandb/`` where their defaults under HOME cannot be written.

    W&B stages every table, image and artifact there (~/.local/share/wandb, ~/.cache/wandb): with a read-only or
    missing HOME (containers, some clusters) a run would fail at its first table. A folder the user set is theirs.
    """
    from wandb import env

    for name, default in ((env.DATA_DIR, env.get_data_dir), (env.CACHE_DIR, env.get_cache_dir)):
        if (os.environ.get(name) and name not in _redirected) or _can_write(Path(default())):
            continue
        os.environ[name] = str(run_dir / "wandb" / "home" / name.lower().removeprefix("wandb_"))
        _redirected.add(name)


def _resolved_mode(mode: str) -> tuple[str, str | None]:
    """The mode a run gets (online, offline or disabled) and why it is offline when not asked to be; after a job of
    this process waited for an unreachable server, online runs go offline at once."""
    resolved, reason = resolve_mode(mode)
    if resolved == "online" and _unreachable:
        resolved, reason = "offline", _unreachable[-1]
    return resolved, reason


def _abandon_open_runs() -> None:
    """Finish a run still open in this process as failed: reinit would finish it as a success, and an unfinished
    job did not succeed."""
    for previous in list(_open):
        print("koopsweep: a W&B run was still open when a new one started; finished it as failed", file=sys.stderr)
        previous._abandon()


def _run_config(resolved_config: Mapping[str, Any] | None, display_config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The W&B run config: flat dotted keys for display, the whole resolved config under RESOLVED_CONFIG_KEY."""
    full = dict(resolved_config or {})
    config = dict(flatten_config(full) if display_config is None else display_config)
    config[RESOLVED_CONFIG_KEY] = full
    return config


def _init_kwargs(resolved: str, run_id: str | None, fields: dict[str, Any]) -> dict[str, Any]:
    """wandb.init's keywords for the run's ``fields``: quiet, resumed by ``run_id``, and under a sweep agent without
    project, entity and id (the agent owns them; passing them only warns)."""
    import wandb

    kwargs: dict[str, Any] = dict(
        fields,
        reinit="finish_previous",
        # koopsweep prints its own summary and the one line about offline runs; W&B's banner and summary
        # table would repeat them (errors and warnings still show).
        settings=wandb.Settings(quiet=True, **_init_timeout(resolved)),
    )
    if run_id is not None:
        kwargs.update(id=run_id, resume="allow")
    if os.environ.get("WANDB_SWEEP_ID"):
        for key in ("project", "entity", "id", "resume"):
            kwargs.pop(key, None)
    return kwargs


def _init_run(resolved: str, reason: str | None, kwargs: dict[str, Any]) -> tuple[Any, str, str | None]:
    """wandb.init in the resolved mode: (run, mode, reason). An online init the server refuses or does not answer
    goes offline, and so do later runs of this process; settings W&B rejects are one ConfigError line."""
    import wandb

    try:
        try:
            return wandb.init(mode=resolved, **kwargs), resolved, reason
        except (wandb.errors.CommError, wandb.errors.AuthenticationError) as exc:
            if resolved != "online":
                raise
            reason = f"W&B server unreachable or key rejected ({first_line(exc)})"
            _unreachable.append(reason)
            # wandb-core keeps the failed attempt's stream under the run id ("run ID ... is in use" on the
            # retry): stop the service, so the offline run starts in a fresh one with the same id.
            wandb.teardown()
            kwargs["settings"] = wandb.Settings(quiet=True)
            return wandb.init(mode="offline", **kwargs), "offline", reason
    except (wandb.errors.UsageError, ValueError) as exc:
        raise ConfigError(f"W&B rejected the logger settings: {first_line(exc)}") from exc


def _announce_offline(reason: str, offline_dir: Path | None) -> None:
    print(
        f"koopsweep: W&B logging offline: {reason}; run stored in {offline_dir}; "
        f"upload it later with: wandb sync {offline_dir}",
        file=sys.stderr,
        flush=True,
    )


class Tracker:
    """One W&B run (or a no-op stand-in when disabled). Build with `Tracker.start(...)`, use as a context manager."""

    def __init__(self, run: Any, mode: str, run_dir: Path, offline_dir: Path | None) -> None:
        self._run = run
        self._mode = mode
        self._run_dir = run_dir
        self._offline_dir = offline_dir
        self._finished = False

    @classmethod
    def start(
        cls,
        mode: str,
        project: str,
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        tags: Sequence[str] = (),
        run_dir: Path | str = ".",
        resolved_config: Mapping[str, Any] | None = None,
        display_config: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        notes: str | None = None,
    ) -> Tracker:
        """Start a run whose files live under `run_dir/wandb/`; `run_id` makes a rerun resume the same run.

        `display_config` (flat dotted keys) defaults to the flattened resolved config.
        """
        resolved, reason = _resolved_mode(mode)
        tag_list = _check_names(tags, run_id)
        run_dir = Path(run_dir).expanduser().resolve()  # Hydra may chdir: never depend on the working directory
        _abandon_open_runs()
        if resolved == "disabled":
            return cls(None, "disabled", run_dir, None)

        config = _run_config(resolved_config, display_config)
        run_dir.mkdir(parents=True, exist_ok=True)
        _writable_homes(run_dir)
        fields = dict(project=project, entity=entity, name=name, group=group, job_type=job_type, tags=tag_list)
        kwargs = _init_kwargs(resolved, run_id, dict(fields, notes=notes, dir=str(run_dir), config=config))
        run, resolved, reason = _init_run(resolved, reason, kwargs)
        offline_dir = Path(run.settings.sync_dir) if resolved == "offline" else None
        if reason is not None:
            _announce_offline(reason, offline_dir)
        tracker = cls(run, resolved, run_dir, offline_dir)
        _open.append(tracker)
        return tracker

    @classmethod
    def for_run(
        cls, logger: DictConfig, identity: RunIdentity, run_dir: Path | str, resolved_config: Mapping[str, Any]
    ) -> Tracker:
        """Start the W&B run of one koopsweep run from its `logger` config and identity, curves declared."""
        tracker = cls.start(
            mode=logger.mode,
            project=logger.project,
            entity=logger.entity,
            name=identity.name,
            group=identity.group,
            job_type=identity.job_type,
            tags=identity.tags,
            run_dir=run_dir,
            resolved_config=resolved_config,
            display_config=identity.display_config,
            run_id=identity.run_id,
            notes=logger.notes,
        )
        tracker.define_curves()
        return tracker

    # -- properties ----------------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The resolved mode: online, offline or disabled (never auto)."""
        return self._mode

    @property
    def run_dir(self) -> Path:
        return self._run_dir

    @property
    def offline_dir(self) -> Path | None:
        """The offline run folder to pass to `wandb sync`, or None when online or disabled."""
        return self._offline_dir

    @property
    def url(self) -> str | None:
        return self._run.url if self._run is not None and self._mode == "online" else None

    @property
    def run_id(self) -> str | None:
        return self._run.id if self._run is not None else None

    @property
    def finished(self) -> bool:
        return self._finished

    # -- logging -------------------------------------------------------------------------------------------------

    def _active(self) -> bool:
        """True when there is a wandb run to write to; raises if the run was finished (a bug in every mode)."""
        if self._finished:
            raise RuntimeError("Tracker used after finish()")
        return self._run is not None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log one history row. koopsweep's rows carry their iteration as `train/iteration` (STEP) and no `step`;
        with `step`, wandb drops a row whose step is lower than one already logged."""
        if self._active():
            self._run.log(dict(metrics), step=step)

    def define_curves(self) -> None:
        """Declare STEP as the x axis of every `train/*`, `eval/*` and `koopman/*` curve, and their summaries."""
        if self._active():
            self._run.define_metric(STEP)
            for prefix in ("train/*", "eval/*", "koopman/*", "tables/*"):
                self._run.define_metric(prefix, step_metric=STEP)
            for name, summary in SUMMARIES.items():
                self._run.define_metric(name, step_metric=STEP, summary=summary)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """Set final values (accuracy, sparsity, ...) in the run summary, what the dashboard tables show."""
        if self._active():
            self._run.summary.update(dict(metrics))

    def log_table(self, key: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Log a wandb.Table (e.g. per-layer sparsity, mask overlaps)."""
        if self._active():
            import wandb

            table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
            self._run.log({key: table})

    def log_scatter(
        self, key: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], x: str, y: str, title: str
    ) -> None:
        """Log a table and W&B's interactive scatter of two of its columns (``<key>_plot``): e.g. eigenvalues in
        the complex plane, zoomable in the run's page and comparable across runs in the workspace."""
        if self._active():
            import wandb

            table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
            self._run.log({key: table, f"{key}_plot": wandb.plot.scatter(table, x, y, title=title)})

    def log_image(self, key: str, path: Path, caption: str = "", iteration: int | None = None) -> None:
        """Log a PNG the run has drawn (it stays in the run folder in every mode) as a wandb.Image at ``iteration``."""
        if self._active():
            import wandb

            row: dict[str, Any] = {key: wandb.Image(str(path), caption=caption)}
            if iteration is not None:
                row[STEP] = iteration
            self._run.log(row)

    def log_artifact(
        self, name: str, kind: str, files: Sequence[Path], metadata: Mapping[str, Any], aliases: Sequence[str] = ()
    ) -> bool:
        """Log ``files`` as one W&B artifact (offline runs keep it for `wandb sync`); True when logged.

        Never fails the run: the results are already on disk, so any error (a file gone, a server refusing the
        upload) is one warning line and False.
        """
        if not self._active():
            return False
        try:
            import wandb

            artifact = wandb.Artifact(name, type=kind, metadata=dict(metadata))
            for path in files:
                artifact.add_file(str(path), name=Path(path).name)
            self._run.log_artifact(artifact, aliases=list(aliases))
        except Exception as exc:
            print(f"koopsweep: warning: W&B artifact {name} not logged: {first_line(exc)}", file=sys.stderr)
            return False
        return True

    # -- finishing -----------------------------------------------------------------------------------------------

    def finish(self, status: str = "finished", exit_code: int | None = None) -> None:
        """Finish once: summary["run/status"] = status, exit code from EXIT_CODES unless given. Later calls do nothing.

        `preempted` needs the process's exit code (128 + the signal) and also calls `run.mark_preempting()`, so the
        dashboard shows preemption and sweeps requeue the run; the process itself must exit with it too.
        """
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if status == "preempted" and exit_code is None:
            raise ValueError("a preempted run finishes with its exit code (128 + the signal number)")
        if self._finished:
            return
        self._finished = True
        if self in _open:
            _open.remove(self)
        if self._run is None:
            return
        try:
            self._run.summary["run/status"] = status
            if status == "preempted":
                self._run.mark_preempting()
        finally:
            self._run.finish(exit_code=EXIT_CODES[status] if exit_code is None else exit_code)

    def _abandon(self) -> None:
        try:
            self._run.summary["run/error"] = "abandoned: a new run started in this process before this one finished"
        finally:
            self.finish("failed")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Always finish: `finished` on a clean exit or sys.exit(0), `failed` otherwise; never hides the error."""
        if self._finished:
            return
        if exc is None or (isinstance(exc, SystemExit) and exc.code in (0, None)):
            self.finish("finished")
            return
        code = 130 if isinstance(exc, KeyboardInterrupt) else exc.code if isinstance(exc, SystemExit) else 1
        try:
            if self._run is not None:
                self._run.summary["run/error"] = f"{type(exc).__name__}: {first_line(exc)}"[:500]
            self.finish("failed", exit_code=code if isinstance(code, int) and code else 1)
        except Exception as finish_exc:
            self._finished = True
            print(f"koopsweep: could not finish the W&B run: {first_line(finish_exc)}", file=sys.stderr)
