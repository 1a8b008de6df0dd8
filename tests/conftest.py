"""Shared fixtures: configs composed through Hydra with every path in a tmp dir and W&B off by default.

The suite does not depend on the account that runs it: the user's W&B variables (a key, a mode, their entity, project
or run id, a server URL) and netrc are dropped, and HOME (with the caches and settings under it) is a fresh folder
of this session, so neither a read-only home nor a `wandb login` changes a result, and no test writes there.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)


def _forget_the_users_environment() -> None:
    """Drop the user's W&B settings and give the session its own HOME (before anything imports wandb)."""
    for name in [n for n in os.environ if n.startswith("WANDB_") or n == "NETRC"]:
        del os.environ[name]
    home = tempfile.mkdtemp(prefix="koopsweep-tests-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["HOME"] = home
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "MPLCONFIGDIR"):
        os.environ.pop(name, None)


_forget_the_users_environment()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes into the repo or talks to W&B."""
    monkeypatch.setenv("WANDB_MODE", os.environ.get("KOOPSWEEP_TEST_WANDB_MODE", "disabled"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("KOOPSWEEP_ROOT", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose a checked config with outputs in tmp_path; W&B disabled unless overridden."""
    from koopsweep.config.compose import compose_config

    def make(overrides: Sequence[str] = (), out: str = "run") -> DictConfig:
        cfg = compose_config(["logger=none", "threads=1", *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / out)
        return cfg

    return make


# Overrides for a run of a few seconds: synthetic MNIST-shaped data, a handful of iterations (module-scoped fixtures
# import it; tests take the ``tiny`` fixture).
TINY = (
    "dataset=synthetic",
    "dataset.source.train=512",
    "dataset.source.test=256",
    "dataset.batch_size=64",
    "schedule.train=2ep",
    "schedule.finetune=1ep",
    "schedule.eval_every=4it",
)


@pytest.fixture
def tiny() -> list[str]:
    """Overrides for a run of a few seconds: synthetic MNIST-shaped data, LeNet, a handful of iterations."""
    return list(TINY)


@pytest.fixture
def sigterm_at() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with sigterm_at(n):`` sends this process SIGTERM right before the step that reaches iteration n."""
    from koopsweep.train.loop import Trainer

    @contextlib.contextmanager
    def patched(iteration: int) -> Iterator[None]:
        original = Trainer.step

        def step(self: Trainer) -> torch.Tensor:
            if self.iteration + 1 == iteration:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Trainer, "step", step)
            yield

    return patched
