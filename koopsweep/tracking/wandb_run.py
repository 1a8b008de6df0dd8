"""The one place that talks to Weights & Biases: start, log, summarise and always finish a run.

Why a wrapper: W&B's known pitfalls are handled here once. An online `wandb.init` without a key prompts for a login
(a hung SLURM job), so the mode is resolved beforehand; several Hydra jobs in one process must not share a run
(`reinit="finish_previous"` and a context manager that always finishes); sweep-set keys are locked in the W&B
config, so the resolved Hydra config is logged whole under its own key and the flat keys are for display only.
wandb is imported lazily, so `disabled` runs (tests, CI) never load it and never write a file of it.
"""

from __future__ import annotations

import math
import netrc
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from koopsweep.errors import ConfigError

__all__ = [
    "EXIT_CODES",
    "MODES",
    "RESOLVED_CONFIG_KEY",
    "STATUSES",
    "Tracker",
    "api_key_source",
    "flatten_config",
    "resolve_mode",
]

MODES = ("online", "offline", "disabled", "auto")
STATUSES = ("finished", "failed", "diverged", "preempted")
RESOLVED_CONFIG_KEY = "hydra_cfg"
"""W&B config key holding the full resolved Hydra config: the truth, unlike the (sweep-lockable) flat keys."""

EXIT_CODES = {"finished": 0, "diverged": 0, "failed": 1, "preempted": 143}
"""W&B marks a run failed on a non-zero exit code. A diverged run is a valid result of the grid (status in the
summary says so); a preempted one exits 128 + SIGTERM, after `mark_preempting()`, so that sweeps requeue it."""

_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
_RANK = {"disabled": 0, "offline": 1, "online": 2}
# W&B's default API hosts (0.31 defaults to the Forge proxy, older keys are stored for api.wandb.ai).
_DEFAULT_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")
_RUN_ID_FORBIDDEN = re.compile(r"[:;,#?/'\\%\s]")
_open: list[Tracker] = []  # the tracker whose run is still open in this process (at most one)
_unreachable: list[str] = []  # why an online init failed in this process: later runs go offline at once


def _netrc_path(env: Mapping[str, str]) -> Path:
    if env.get("NETRC"):
        return Path(env["NETRC"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    for name in (".netrc", "_netrc"):
        if (home / name).exists():
            return home / name
    return home / ".netrc"


def api_key_source(env: Mapping[str, str] | None = None, *, consult_wandb: bool = True) -> str | None:
    """Where a W&B API key would come from (a short label), or None. Never prompts, never uses the network.

    Checks WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the netrc file (NETRC or ~/.netrc) for the W&B host, then,
    if `consult_wandb`, wandb's own session and settings files (a key saved by `wandb login`).
    """
    env = os.environ if env is None else env
    if env.get("WANDB_API_KEY", "").strip():
        return "WANDB_API_KEY"
    if env.get("WANDB_IDENTITY_TOKEN_FILE", "").strip():
        return "WANDB_IDENTITY_TOKEN_FILE"
    base_url = env.get("WANDB_BASE_URL", "").strip()
    hosts = (urlsplit(base_url).netloc,) if base_url else _DEFAULT_HOSTS
    path = _netrc_path(env)
    try:
        entries = netrc.netrc(str(path))
        for host in filter(None, hosts):
            auth = entries.authenticators(host)
            if auth and auth[2]:
                return str(path)
    except (OSError, netrc.NetrcParseError):
        pass
    if consult_wandb:
        try:  # private API, hence guarded: same lookup as wandb.api.api_key, without its deprecation warning
            from wandb.sdk import wandb_setup
            from wandb.sdk.lib import wbauth

            settings = wandb_setup.singleton().settings
            if (
                wbauth.session_credentials(host=settings.base_url)
                or settings.api_key
                or wbauth.read_netrc_auth(host=settings.base_url)
            ):
                return "wandb settings"
        except Exception:  # noqa: BLE001 - any failure means "no key we can use without asking"
            pass
    return None


def resolve_mode(
    mode: str, env: Mapping[str, str] | None = None, *, consult_wandb: bool = True
) -> tuple[str, str | None]:
    """Resolve `online | offline | disabled | auto` to a wandb mode, plus the reason for a fallback (or None).

    WANDB_MODE decides `auto` and can lower (never raise) an explicit mode, so CI's WANDB_MODE=disabled always wins
    (wandb itself lets an explicit `mode=` argument beat the variable). Online without a key falls back to offline.
    """
    if mode not in MODES:
        raise ConfigError(f"logger.mode={mode!r} is not one of {', '.join(MODES)}")
    env = os.environ if env is None else env
    raw = env.get("WANDB_MODE", "").strip().lower()
    env_mode = _ENV_MODES.get(raw)
    if raw and env_mode is None:
        raise ConfigError(f"WANDB_MODE={raw!r} is not one of online, offline, disabled")
    if mode == "auto":
        wanted = env_mode or "online"
    else:
        wanted = mode if env_mode is None or _RANK[env_mode] >= _RANK[mode] else env_mode
    if wanted != "online":
        return wanted, None
    if api_key_source(env, consult_wandb=consult_wandb) is None:
        return "offline", "no W&B API key found (WANDB_API_KEY, ~/.netrc or `wandb login`)"
    return "online", None


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping to dotted keys (`optimizer.lr`), the names sweeps and dashboard filters use."""
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = value
    return flat


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
        resolved, reason = resolve_mode(mode)
        if resolved == "online" and _unreachable:  # a previous job of this process already waited for the server
            resolved, reason = "offline", _unreachable[-1]
        tag_list = _check_names(tags, run_id)
        run_dir = Path(run_dir).expanduser().resolve()  # Hydra may chdir: never depend on the working directory
        for previous in list(_open):  # reinit would finish it as a success; an unfinished job did not succeed
            print("koopsweep: a W&B run was still open when a new one started; finished it as failed", file=sys.stderr)
            previous._abandon()
        if resolved == "disabled":
            return cls(None, "disabled", run_dir, None)

        import wandb

        full = dict(resolved_config or {})
        config = dict(flatten_config(full) if display_config is None else display_config)
        config[RESOLVED_CONFIG_KEY] = full
        run_dir.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = dict(
            project=project,
            entity=entity,
            name=name,
            group=group,
            job_type=job_type,
            tags=tag_list,
            notes=notes,
            dir=str(run_dir),
            config=config,
            reinit="finish_previous",
            # koopsweep prints its own summary and the one line about offline runs; W&B's banner and summary
            # table would repeat them (errors and warnings still show).
            settings=wandb.Settings(quiet=True, **_init_timeout(resolved)),
        )
        if run_id is not None:
            kwargs.update(id=run_id, resume="allow")
        if os.environ.get("WANDB_SWEEP_ID"):  # the agent owns project, entity and id; passing them only warns
            for key in ("project", "entity", "id", "resume"):
                kwargs.pop(key, None)
        try:
            try:
                run = wandb.init(mode=resolved, **kwargs)
            except (wandb.errors.CommError, wandb.errors.AuthenticationError) as exc:
                if resolved != "online":
                    raise
                resolved = "offline"
                reason = f"W&B server unreachable or key rejected ({_first_line(exc)})"
                _unreachable.append(reason)
                # wandb-core keeps the failed attempt's stream under the run id ("run ID ... is in use" on the
                # retry): stop the service, so the offline run starts in a fresh one with the same id.
                wandb.teardown()
                kwargs["settings"] = wandb.Settings(quiet=True)
                run = wandb.init(mode="offline", **kwargs)
        except (wandb.errors.UsageError, ValueError) as exc:
            raise ConfigError(f"W&B rejected the logger settings: {_first_line(exc)}") from exc
        offline_dir = Path(run.settings.sync_dir) if resolved == "offline" else None
        if reason is not None:
            print(
                f"koopsweep: W&B logging offline: {reason}; run stored in {offline_dir}; "
                f"upload it later with: wandb sync {offline_dir}",
                file=sys.stderr,
                flush=True,
            )
        tracker = cls(run, resolved, run_dir, offline_dir)
        _open.append(tracker)
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
        """Log metrics at `step` (use the global iteration: wandb drops steps lower than one already logged)."""
        if self._active():
            self._run.log(dict(metrics), step=step)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        """Set final values (accuracy, sparsity, ...) in the run summary, what the dashboard tables show."""
        if self._active():
            self._run.summary.update(dict(metrics))

    def log_table(
        self, key: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], step: int | None = None
    ) -> None:
        """Log a wandb.Table (e.g. per-layer sparsity, mask overlaps)."""
        if self._active():
            import wandb

            table = wandb.Table(columns=list(columns), data=[list(r) for r in rows])
            self._run.log({key: table}, step=step)

    def log_spectrum(
        self, eigenvalues: Any, chosen_index: int, key: str = "koopman/spectrum", step: int | None = None,
        upload: bool = True,
    ) -> Path:
        """Plot eigenvalues in the complex plane with the unit circle and the chosen one highlighted.

        The PNG is saved under `run_dir/figures/` in every mode (it is a result, not a W&B file) and logged as a
        wandb.Image when a run is active and `upload` (a resumed run redraws its figure without logging it twice).
        Returns the PNG path.
        """
        self._active()
        if hasattr(eigenvalues, "detach"):  # torch tensor, possibly on a GPU
            eigenvalues = eigenvalues.detach().cpu().numpy()
        import numpy as np

        lam = np.asarray(eigenvalues, dtype=complex).ravel()
        if not -len(lam) <= chosen_index < len(lam):
            raise IndexError(f"chosen_index {chosen_index} out of range for {len(lam)} eigenvalues")
        chosen = complex(lam[chosen_index])
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("_") + ("" if step is None else f"_step{step}")
        path = self._run_dir / "figures" / f"{stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        caption = (
            f"chosen λ = {chosen.real:.6f}{chosen.imag:+.6f}i (|λ-1| = {abs(chosen - 1):.2e}), {len(lam)} eigenvalues"
        )
        _plot_spectrum(lam, chosen, caption, path)
        if self._run is not None and upload:
            import wandb

            self._run.log({key: wandb.Image(str(path), caption=caption)}, step=step)
        return path

    # -- finishing -----------------------------------------------------------------------------------------------

    def finish(self, status: str = "finished", exit_code: int | None = None) -> None:
        """Finish once: summary["status"] = status, exit code from EXIT_CODES unless given. Later calls do nothing.

        `preempted` also calls `run.mark_preempting()`, so the dashboard shows preemption and sweeps requeue the run;
        the process itself must exit non-zero too for an agent to requeue it.
        """
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        if self._finished:
            return
        self._finished = True
        if self in _open:
            _open.remove(self)
        if self._run is None:
            return
        try:
            self._run.summary["status"] = status
            if status == "preempted":
                self._run.mark_preempting()
        finally:
            self._run.finish(exit_code=EXIT_CODES[status] if exit_code is None else exit_code)

    def _abandon(self) -> None:
        try:
            self._run.summary["error"] = "abandoned: a new run started in this process before this one finished"
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
                self._run.summary["error"] = f"{type(exc).__name__}: {_first_line(exc)}"[:500]
            self.finish("failed", exit_code=code if isinstance(code, int) and code else 1)
        except Exception as finish_exc:  # noqa: BLE001 - the body's exception is the one to report
            self._finished = True
            print(f"koopsweep: could not finish the W&B run: {_first_line(finish_exc)}", file=sys.stderr)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _plot_spectrum(lam: Any, chosen: complex, caption: str, path: Path) -> None:
    """Draw with the object API (no pyplot state, no GUI backend), so it is safe in workers and headless jobs."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t = np.linspace(0.0, 2.0 * math.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="0.6", lw=1, ls="--", label="unit circle")
    ax.axhline(0.0, color="0.85", lw=0.8)
    ax.axvline(0.0, color="0.85", lw=0.8)
    ax.scatter(lam.real, lam.imag, s=18, color="tab:blue", alpha=0.8, label="eigenvalues")
    ax.scatter([chosen.real], [chosen.imag], s=160, marker="*", color="tab:red", zorder=3, label="chosen")
    finite = lam[np.isfinite(lam)]
    r = max(1.05, float(np.abs(finite).max()) * 1.05) if finite.size else 1.05
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(caption, fontsize=8)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
