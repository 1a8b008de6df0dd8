"""Device, threads, seeding and determinism for one run."""

from __future__ import annotations

import random

import numpy as np
import torch


def select_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def configure(seed: int, threads: int, deterministic: bool, device: torch.device | None = None) -> None:
    """Seed every generator and fix the thread count, so a run on the CPU repeats bit for bit.

    ``deterministic`` asks CUDA for its deterministic kernels. The CPU kernels koopsweep uses are deterministic
    already, so on the CPU the switch is left alone: turning it on costs 2 s of imports (torch._inductor) in every
    process, and fills every new tensor with NaN, without changing a bit of the results.
    """
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic and device is not None and device.type == "cuda":
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def dtype_of(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp64": torch.float64}[precision]
