"""Sweep cells run one after another in one long-lived process: the loop of the warm agent.

A fresh process per cell pays the interpreter, torch (and torch._dynamo, which torch.optim imports on first use),
Hydra's compose, the data set and the trunk state before it trains a step (docs/benchmarks.md). A `CellRunner`
keeps them: points are composed from cached group choices (koopsweep.config.compose.Composer, identical to a full
compose), data sets stay in koopsweep.data's cache and trunk states in koopsweep.store.state_cache.

Each cell still gets what its own process gave it: the same preflight (a bad point is refused in one line and the
loop goes on), its own run folder (results, model, masks, ``.hydra/config.yaml``, ``.hydra/overrides.yaml``,
``koopsweep.log``), its own W&B run, SIGTERM handling and resume, and a failure or divergence that ends the cell,
not the loop. Nothing leaks from one cell to the next: every run seeds its generators itself, and the process-wide
switches a run may turn (deterministic algorithms, cuDNN, threads, default dtype, grad mode, log handlers) are put
back after each cell (`isolated`). koopsweep.sweeps.warm_agent feeds it from W&B, koopsweep.sweeps.warm_local from
the sweep file's own grid.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from koopsweep.config import setup, unique_suffix
from koopsweep.config.compose import shared_composer
from koopsweep.errors import KoopsweepError, first_line

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job logging format
LOG_FILE = "koopsweep.log"  # Hydra's <hydra.job.name>.log
REJECTED, FAILED, PREEMPTED = "rejected", "failed", "preempted"


@dataclass(frozen=True)
class Outcome:
    """How a cell ended, and the exit status its own ``koopsweep`` process would have had in a sweep."""

    status: str  # finished | diverged | failed | preempted | rejected (its config never ran)
    exit_code: int = 0
    out_dir: Path | None = None
    message: str = ""

    @property
    def stops_the_loop(self) -> bool:
        """A stop signal ended the cell (its state is saved): the process exits with its code, as a cold one would."""
        return self.status == PREEMPTED


def default_run_dir(cfg: DictConfig) -> Path:
    """The folder a lone ``koopsweep`` run gets (conf/hydra/default.yaml's hydra.run.dir): time and 6 random digits."""
    stamp = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{unique_suffix()}"
    return Path(str(cfg.paths.log_dir)) / "runs" / str(cfg.experiment_name) / stamp


def _switches() -> dict[str, Any]:
    """The process-wide torch settings a run may change."""
    return {
        "deterministic": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "cudnn": (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic),
        "threads": torch.get_num_threads(),
        "dtype": torch.get_default_dtype(),
        "grad": torch.is_grad_enabled(),
    }


def _restore(saved: dict[str, Any]) -> None:
    """Put back what `_switches` saw, touching only what changed (switching determinism imports torch._inductor)."""
    now = _switches()
    if now["deterministic"] != saved["deterministic"]:
        enabled, warn_only = saved["deterministic"]
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved["cudnn"]
    if now["threads"] != saved["threads"]:
        torch.set_num_threads(saved["threads"])
    torch.set_default_dtype(saved["dtype"])
    torch.set_grad_enabled(saved["grad"])


def configure_console_logging() -> None:
    """Log records to stdout in Hydra's format, as a ``koopsweep`` run does (once per process, if nobody did); the
    warm entry points call it, not the runner, so that a caller's own logging (a notebook, the tests) stays as is."""
    root = logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(console)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)


@contextlib.contextmanager
def isolated(out_dir: Path) -> Iterator[None]:
    """One cell's stretch of the process: its log file, then the torch switches restored and its memory freed."""
    saved = _switches()
    out_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
        _restore(saved)
        gc.collect()  # the run's objects hold reference cycles (closures, hooks): free its tensors now
        gc.freeze()  # and never scan what outlives it again (imports, caches): a collection then costs ms, not 0.5 s
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()


def write_hydra_files(out_dir: Path, cfg: DictConfig, argv: Sequence[str]) -> None:
    """``.hydra/config.yaml`` and ``.hydra/overrides.yaml``, as Hydra writes them for a run (to rerun it by hand)."""
    folder = out_dir / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(argv)), folder / "overrides.yaml")


def _say(error: BaseException) -> None:
    print(f"koopsweep: error: {error}", file=sys.stderr, flush=True)


class CellRunner:
    """Runs cells given as ``koopsweep`` command-line overrides, one at a time, in this process."""

    def __init__(self) -> None:
        setup()
        self._composer = shared_composer()
        self.busy = False

    def compose(self, argv: Sequence[str], out_dir: Path | None = None) -> DictConfig:
        """The cell's checked config with its run folder set: the preflight; KoopsweepError (one line) if refused."""
        cfg = self._composer.compose(list(argv))
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir if out_dir is not None else default_run_dir(cfg))
        return cfg

    def run(self, argv: Sequence[str], out_dir: Path | None = None) -> Outcome:
        """Run one cell to its end, whatever that end is; only a second Ctrl-C (KeyboardInterrupt) escapes."""
        from koopsweep.train.run import run_experiment

        self.busy = True
        try:
            try:
                cfg = self.compose(argv, out_dir)
            except KoopsweepError as error:
                _say(error)
                return Outcome(REJECTED, error.exit_code, None, str(error))
            out = Path(cfg.paths.output_dir)
            with isolated(out):
                try:
                    write_hydra_files(out, cfg, argv)
                    results = run_experiment(cfg)
                except SystemExit as stop:  # preempted: state saved, W&B run finished with the signal's code
                    code = stop.code if isinstance(stop.code, int) else 1
                    return Outcome(PREEMPTED, code, out)
                except KoopsweepError as error:
                    _say(error)
                    return Outcome(FAILED, error.exit_code, out, str(error))
                except Exception as exc:  # a crash ends this cell (its W&B run is marked failed), not the loop
                    traceback.print_exc()
                    return Outcome(FAILED, 1, out, first_line(exc))
            return Outcome(str(results["status"]), 0, out)
        finally:
            self.busy = False
