"""Shared fixtures: configs composed through Hydra with every path in a tmp dir and W&B off by default."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(1)


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


@pytest.fixture
def tiny() -> list[str]:
    """Overrides for a run of a few seconds: synthetic MNIST-shaped data, LeNet, a handful of iterations."""
    return [
        "dataset=synthetic",
        "dataset.source.train=512",
        "dataset.source.test=256",
        "dataset.batch_size=64",
        "schedule.train=2ep",
        "schedule.finetune=1ep",
        "schedule.eval_every=4it",
    ]


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
