"""Run a sweep file without a W&B server (Hydra multirun, locally or on SLURM), or create it on the W&B server.

The multirun runs as a subprocess, `python -m koopsweep -m ...`, rather than in this process: the command printed by
`--dry-run` is then exactly the one that runs (copy it, edit it, rerun one job); WANDB_MODE and the thread variables
are set before torch or wandb load in the child and its joblib workers; and the child's preflight composes every job
again through the same path as any `koopsweep -m` a user types. (The cell queue of `--warm`/`--skip-finished` with
one job is the exception: its cells are composed and checked here already, so this process runs them; see
koopsweep.sweeps.warm_local.run.)
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from koopsweep.config import CONF_DIR_ENV, conf_dir, setup, unique_suffix
from koopsweep.errors import ConfigError, KoopsweepError
from koopsweep.sweeps import launcher_plugins
from koopsweep.sweeps.finished import finished_points
from koopsweep.sweeps.plan import SweepPlan, plan_sweep

LOCAL_MODES = ("offline", "disabled")
SLURM_MODES = ("auto", "online", "offline", "disabled")
_PLAIN = re.compile(r"^[A-Za-z0-9_/.\-:@+%]+$")


class LaunchError(KoopsweepError):
    """The multirun itself failed; exit with its status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Launch:
    """What will run: the argv, the variables set for it, where results go, and the checked plan."""

    plan: SweepPlan
    argv: list[str]
    env: dict[str, str]
    sweep_dir: Path
    runs: int = 0
    finished: dict[tuple[str, ...], Path] = field(default_factory=dict)  # argv -> results.json: cells not to run

    def shell(self) -> str:
        """The exact command as one shell line, variables first."""
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])


def trunk_phase(launch: Launch) -> Launch:
    """The same launch restricted to the first job of every trunk, into its own folder (``<dir>-trunks``)."""
    plan = launch.plan
    sweep_dir = launch.sweep_dir.with_name(launch.sweep_dir.name + "-trunks")
    hydra = launch.argv[4 + len(plan.overrides()) :]
    keep = [o for o in [*plan.trunk_overrides(), *hydra] if not o.startswith("hydra.sweep.dir=")]
    argv = [*launch.argv[:4], *keep, f"hydra.sweep.dir={hydra_quote(str(sweep_dir))}"]
    return Launch(plan, argv, launch.env, sweep_dir, len(plan.trunks))


def cores() -> int:
    """CPU cores this process may use (the affinity mask, which SLURM and taskset restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def hydra_quote(value: str) -> str:
    """A path as a Hydra override value: plain when safe, else single-quoted with escapes."""
    if _PLAIN.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sweep_dir(plan: SweepPlan, extra: Sequence[str]) -> tuple[Path, list[str]]:
    """hydra.sweep.dir and the override that sets it: the user's, or conf/hydra/default.yaml's pattern resolved now,
    so that the command can say where the results went."""
    for override in extra:
        if override.startswith("hydra.sweep.dir="):
            return Path(override.split("=", 1)[1].strip("'\"")), []
    cfg = plan.points[0].cfg
    stamp = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{unique_suffix()}"
    path = Path(str(cfg.paths.log_dir)) / "multiruns" / str(cfg.experiment_name) / stamp
    return path, [f"hydra.sweep.dir={hydra_quote(str(path))}"]


def _check_own_keys(extra: Sequence[str]) -> None:
    """threads and logger.mode come from --threads/--cpus and --wandb, which check them; refuse a second source."""
    for override in extra:
        key = override.split("=", 1)[0].lstrip("+")
        if key in ("threads", "logger.mode"):
            flag = "--threads (--cpus on SLURM)" if key == "threads" else "--wandb"
            raise ConfigError(f"extra override {override!r}: set it with {flag}")


def _command(plan: SweepPlan, hydra: list[str]) -> list[str]:
    return [sys.executable, "-m", "koopsweep", "-m", *plan.overrides(), *hydra]


def local_launch(
    path: str | Path,
    extra: Sequence[str] = (),
    jobs: int = 1,
    threads: int | None = None,
    wandb_mode: str = "offline",
    latest_first: bool = False,
    only: Sequence[str] = (),
    warm: bool = False,
    skip_finished: bool = False,
) -> Launch:
    """Plan a local multirun; refuses jobs x threads above the cores (joblib itself would oversubscribe them).

    ``warm``: the cells will run in ``jobs`` long-lived processes (koopsweep.sweeps.warm_local.warm), not joblib's.
    ``skip_finished``: the cells that finished in an earlier multirun (koopsweep.sweeps.finished) are listed in
    ``Launch.finished``; only a cell queue (warm_local) can leave them out.
    """
    if wandb_mode not in LOCAL_MODES:
        raise ConfigError(
            f"--wandb {wandb_mode}: a local sweep logs offline or disabled (sync later with `wandb sync`)"
        )
    n = cores()
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give at least 1 job")
    if jobs > 1 and not warm:
        launcher_plugins.require(launcher_plugins.JOBLIB, f"--jobs {jobs}")
    threads = max(1, n // jobs) if threads is None else threads
    if threads < 1:
        raise ConfigError(f"--threads {threads}: give at least 1 thread")
    if jobs * threads > n:
        raise ConfigError(
            f"--jobs {jobs} x --threads {threads} = {jobs * threads} threads on {n} core(s): oversubscribed; "
            f"use e.g. --jobs {min(jobs, n)} --threads {max(1, n // min(jobs, n))}"
        )
    _check_own_keys(extra)
    extra = [*extra, f"threads={threads}", f"logger.mode={wandb_mode}"]
    plan = plan_sweep(path, extra, latest_first=latest_first, only=only)
    sweep_dir, hydra = _sweep_dir(plan, extra)
    if jobs > 1 and not warm:
        hydra += ["hydra/launcher=local", f"hydra.launcher.n_jobs={jobs}"]
    env = {"WANDB_MODE": wandb_mode, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    finished = finished_points(plan.points) if skip_finished else {}
    return Launch(plan, _command(plan, hydra), env, sweep_dir, len(plan.points) - len(finished), finished)


def slurm_launch(
    path: str | Path,
    extra: Sequence[str] = (),
    partition: str | None = None,
    time_min: int | None = None,
    gpus: int | None = None,
    cpus: int | None = None,
    wandb_mode: str = "auto",
    latest_first: bool = False,
    only: Sequence[str] = (),
) -> Launch:
    """Plan a multirun through conf/hydra/launcher/slurm.yaml, the options overriding the preset's fields."""
    if wandb_mode not in SLURM_MODES:
        raise ConfigError(f"--wandb {wandb_mode!r} is not one of {', '.join(SLURM_MODES)}")
    launcher_plugins.require(launcher_plugins.SUBMITIT, "koopsweep sweep slurm")
    for flag, value in (("--time", time_min), ("--cpus", cpus)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: give a positive number")
    if gpus is not None and gpus < 0:
        raise ConfigError(f"--gpus {gpus}: give 0 or more")
    hydra = ["hydra/launcher=slurm"]
    for setting, value in (
        ("partition", partition),
        ("timeout_min", time_min),
        ("gpus_per_node", gpus),
        ("cpus_per_task", cpus),
    ):
        if value is not None:
            hydra.append(f"hydra.launcher.{setting}={hydra_quote(str(value))}")
    _check_own_keys(extra)
    preset = launcher_config([*hydra, *(e for e in extra if e.startswith("hydra.launcher."))])
    threads = int(cpus if cpus is not None else preset.cpus_per_task or 1)
    extra = [*extra, f"threads={threads}", f"logger.mode={wandb_mode}"]
    plan = plan_sweep(path, extra, latest_first=latest_first, only=only)
    sweep_dir, where = _sweep_dir(plan, extra)
    return Launch(plan, _command(plan, hydra + where), {}, sweep_dir, len(plan.points))


def launcher_config(hydra_overrides: Sequence[str], overrides: Sequence[str] = ()) -> DictConfig:
    """The `hydra.launcher` node these overrides compose to (what submitit or joblib will receive)."""
    setup()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, *hydra_overrides], return_hydra_config=True)
    return cfg.hydra.launcher


@contextlib.contextmanager
def pinned_conf() -> Iterator[Path]:
    """For the block, every multirun this process starts composes from a private copy of conf/ (``$KOOPSWEEP_CONF_DIR``
    set to it): editing conf/ in a checkout while a local grid runs then reaches none of its later cells. The copy
    lives in a folder only this user can read (not the sweep folder, which others may write: configs name code to
    run) and is removed afterwards; each cell's composed config stays in its ``.hydra/config.yaml``."""
    with tempfile.TemporaryDirectory(prefix="koopsweep-conf-") as private:
        copy = Path(private) / "conf"
        shutil.copytree(conf_dir(), copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        with _variables({CONF_DIR_ENV: str(copy)}):
            yield copy


def run(launch: Launch, here: Callable[[], int] | None = None) -> list[Path]:
    """Run the multirun, streaming its output; return the results.json files it left. ``here``, when given, runs it
    in this process instead (the same command's work, with its variables set for the call) and returns its status."""
    if here is None:
        code = subprocess.call(launch.argv, env={**os.environ, **launch.env})
    else:
        with _variables(launch.env):
            code = here()
    results = sorted(launch.sweep_dir.glob("*/results.json"))
    if code != 0:
        raise LaunchError(
            f"the multirun exited with status {code} ({len(results)} of {launch.runs} runs finished, "
            f"in {launch.sweep_dir}); see the log above",
            code,
        )
    return results


@contextlib.contextmanager
def _variables(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in os.environ for the block, the previous values restored after it."""
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def offline_runs(sweep_dir: Path) -> list[Path]:
    """The offline W&B run folders of a finished multirun (for `wandb sync`)."""
    return sorted(sweep_dir.glob("*/wandb/offline-run-*"))


def check_slurm_available() -> None:
    if shutil.which("sbatch") is None:
        raise ConfigError("sbatch not found: run this on a SLURM login node, or add --dry-run to see the command")


def offline_reason(env: dict[str, str] | None = None) -> str | None:
    """Why a sweep cannot be created on the W&B server now, or None when it can (never prompts for a login)."""
    env = dict(os.environ) if env is None else env
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun", "disabled"):
        return f"WANDB_MODE={mode}"
    from koopsweep.tracking.mode import api_key_source

    if api_key_source(env) is None:
        return "no W&B API key (WANDB_API_KEY, ~/.netrc or `wandb login`)"
    return None


def create(path: str | Path, project: str | None = None, entity: str | None = None) -> dict[str, Any]:
    """Create the sweep on the W&B server; returns entity, project, sweep id and the agent command."""
    from koopsweep.sweeps.spec import load_spec

    spec = load_spec(path)
    reason = offline_reason()
    if reason is not None:
        raise ConfigError(
            f"cannot create a W&B sweep offline ({reason}): run the same grid without a server with "
            f"`koopsweep sweep local {path}`, then upload the runs with `wandb sync`"
        )
    plan = plan_sweep(path)
    logger = plan.points[0].cfg.logger
    project = project or spec.raw.get("project") or logger.project
    import wandb

    entity = entity or spec.raw.get("entity") or logger.entity or wandb.Api().default_entity
    sweep_id = wandb.sweep(sweep=dict(spec.raw), project=project, entity=entity)
    return {
        "entity": entity,
        "project": project,
        "sweep_id": sweep_id,
        "runs": len(plan.points),
        "trunks": len(plan.trunks),
        "agent": f"wandb agent {entity}/{project}/{sweep_id}",
    }
