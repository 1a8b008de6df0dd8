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


def configure(seed: int, threads: int, deterministic: bool) -> None:
    """Seed every generator and fix the thread count, so a run on the CPU repeats bit for bit."""
    if threads > 0:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def dtype_of(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp64": torch.float64}[precision]
