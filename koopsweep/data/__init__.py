"""Datasets as in-memory tensors (TensorData), deterministic batching (BatchStream) and the sources configs name."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from koopsweep.data.mini import load_mnist_mini
from koopsweep.data.synthetic import make_synthetic
from koopsweep.data.tensors import BatchStream, TensorData
from koopsweep.data.torchvision_sets import load_cifar10, load_mnist
from koopsweep.errors import DataError


def load_dataset(source_cfg: Mapping[str, Any], root: str | Path) -> TensorData:
    """Call ``source_cfg._target_`` with ``root`` and the other keys as keyword arguments.

    The last two datasets loaded stay in memory, so the jobs of an in-process multirun (or a benchmark) read and
    normalise MNIST once. TensorData is never modified in place (subset/to return new objects), so sharing is safe.
    """
    if isinstance(source_cfg, DictConfig):
        options = OmegaConf.to_container(source_cfg, resolve=True)
    else:
        options = dict(source_cfg)
    options.setdefault("root", str(root))
    return _load_cached(json.dumps(options, sort_keys=True, default=str))


def source_identity(source_cfg: Mapping[str, Any], root: str | Path) -> str | None:
    """What tells this source's data apart beyond its config (a loader's ``identity``, e.g. the content key of an
    image-folder copy), or None when the config says it all; part of the trunk id."""
    options = (
        OmegaConf.to_container(source_cfg, resolve=True) if isinstance(source_cfg, DictConfig) else dict(source_cfg)
    )
    target = options.pop("_target_", None)
    options["root"] = options.get("root") or str(root)
    try:
        identity = getattr(get_method(target), "identity", None) if target else None
    except Exception:
        return None  # reported by the config checks
    return identity(**options) if identity is not None else None


@functools.lru_cache(maxsize=2)
def _load_cached(options_json: str) -> TensorData:
    return _load(json.loads(options_json))


def _load(options: dict[str, Any]) -> TensorData:
    target = options.pop("_target_", None)
    if not target:
        raise DataError("dataset.source has no _target_; set it to a loader such as koopsweep.data.load_mnist_mini")
    try:
        loader = get_method(target)
    except Exception as exc:
        raise DataError(f"dataset.source._target_={target} cannot be imported ({type(exc).__name__})") from None
    signature = inspect.signature(loader)
    try:
        signature.bind(**options)
    except TypeError:
        accepted = [p for p in signature.parameters if p != "root"]
        unknown = sorted(set(options) - set(signature.parameters))
        raise DataError(f"dataset.source: {target} has no option(s) {unknown}; it accepts {accepted}") from None
    data = loader(**options)
    if not isinstance(data, TensorData):
        raise DataError(f"dataset.source._target_={target} returned {type(data).__name__}, not TensorData")
    return data


__all__ = [
    "BatchStream",
    "TensorData",
    "load_cifar10",
    "load_dataset",
    "load_mnist",
    "load_mnist_mini",
    "make_synthetic",
    "source_identity",
]
