"""Pretrained starting points: ShrinkBench's networks, a weights file or a URL, loaded strictly and safely.

``model.pretrained`` is ``null`` (train from the initialisation), ``shrinkbench`` (the network ShrinkBench ships for
this model: found offline under ``paths.data_dir/shrinkbench-models/<dataset>/<file>`` or ``model.weights_dir``,
else downloaded from ShrinkBench's URL), a path, or an ``http(s)://`` URL. Every file is checked against its sha256
where one is known, loaded with ``weights_only=True`` (never unpickled as code), mapped from ShrinkBench's layout
(a ``module.`` prefix from DataParallel, the classifier named ``linear``) onto koopsweep's, and loaded strictly:
a missing, unexpected or mis-shaped tensor is one line naming it. The file's sha256 is part of the trunk's
identity, so a run from pretrained weights never reuses a trunk trained from scratch, or from other weights.
"""

from __future__ import annotations

import functools
import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from koopsweep.errors import ConfigError

SHRINKBENCH_URL = "https://raw.githubusercontent.com/JJGO/shrinkbench-models/master/{folder}/{file}"
SHRINKBENCH_FOLDER = "shrinkbench-models"


@dataclass(frozen=True)
class ShippedWeights:
    """One of ShrinkBench's pretrained files: where it lives in their repository and its sha256."""

    folder: str
    file: str
    sha256: str
    test_accuracy: float  # as its authors report it, on the original test set

    @property
    def url(self) -> str:
        return SHRINKBENCH_URL.format(folder=self.folder, file=self.file)


SHRINKBENCH: dict[str, ShippedWeights] = {
    "mnistnet": ShippedWeights(
        "mnist", "mnistnet.pt", "5e1e80e145773c6ea30cb93dfc7d23fb87fd4116ff24e6889fdcb96a577190c9", 0.9896
    ),
    "resnet20": ShippedWeights(
        "cifar10", "resnet20.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 0.9178
    ),
    "resnet56": ShippedWeights(
        "cifar10", "resnet56.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 0.9362
    ),
}


def is_url(spec: str) -> bool:
    return urllib.parse.urlparse(spec).scheme in ("http", "https")


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The file's sha256, computed once per (path, size, modification time) in a process."""
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns)


def _checked(path: Path, expected: str | None) -> Path:
    if expected is not None and sha256_of(path) != expected:
        raise ConfigError(
            f"model.pretrained: {path} does not match its published sha256 ({expected[:12]}…): it is damaged or "
            "another file; delete it (it will be downloaded again) or point model.weights_dir at a good copy"
        )
    return path


def _download(url: str, target: Path, expected: str | None) -> Path:
    """Fetch ``url`` into ``target`` (atomically, checked against ``expected`` when known)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        torch.hub.download_url_to_file(url, str(partial), progress=False)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            f"model.pretrained: could not download {url} ({type(exc).__name__}); offline, put the file under "
            "paths.data_dir/shrinkbench-models/<mnist|cifar10>/ or set model.weights_dir, or give a local path"
        ) from None
    try:
        _checked(partial, expected)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _shrinkbench_file(model_name: str, search: list[Path], cache_dir: Path) -> Path:
    shipped = SHRINKBENCH.get(model_name)
    if shipped is None:
        raise ConfigError(
            f"model.pretrained=shrinkbench: ShrinkBench ships no weights for model {model_name!r} "
            f"(it has {', '.join(sorted(SHRINKBENCH))}); give a file or URL instead"
        )
    for folder in search:
        for candidate in (folder / SHRINKBENCH_FOLDER / shipped.folder / shipped.file, folder / shipped.folder /
                          shipped.file, folder / shipped.file):  # fmt: skip
            if candidate.is_file():
                return _checked(candidate, shipped.sha256)
    cached = cache_dir / SHRINKBENCH_FOLDER / shipped.folder / shipped.file
    if cached.is_file():
        return _checked(cached, shipped.sha256)
    return _download(shipped.url, cached, shipped.sha256)


def resolve_weights(
    spec: str, model_name: str, data_dir: Path, weights_dir: Path | None, cache_dir: Path
) -> tuple[Path, str]:
    """The local file ``model.pretrained`` names (downloaded if need be) and its sha256."""
    if spec == "shrinkbench":
        search = [weights_dir, data_dir] if weights_dir is not None else [data_dir]
        path = _shrinkbench_file(model_name, search, cache_dir)
    elif is_url(spec):
        name = Path(urllib.parse.urlparse(spec).path).name or "weights"
        tag = hashlib.sha256(spec.encode()).hexdigest()[:12]
        path = cache_dir / "weights" / f"{tag}-{name}"
        path = path if path.is_file() else _download(spec, path, None)
    else:
        path = Path(spec).expanduser()
        path = path if path.is_absolute() or weights_dir is None else weights_dir / path
        if not path.is_file():
            raise ConfigError(
                f"model.pretrained={spec}: no such file ({path}); give a weights file, a URL, 'shrinkbench' or null"
            )
    return path, sha256_of(path)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: a state dict, or ShrinkBench's ``{"state_dict": ...}`` checkpoint."""
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"model.pretrained: {path} is not a weights file torch.load(weights_only=True) can read "
            f"({type(exc).__name__}): save a state_dict of tensors"
        ) from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise ConfigError(f"model.pretrained: {path} holds no state dict of tensors")
    return dict(loaded)


@functools.lru_cache(maxsize=16)
def _readable(path: str, sha256: str) -> None:
    read_state_dict(Path(path))


def check_weights_file(path: Path, sha256: str) -> None:
    """Raise ConfigError when the file holds no state dict of tensors (checked once per content in a process)."""
    _readable(str(path), sha256)


def to_model_layout(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Strip DataParallel's ``module.`` prefix; name the classifier as ``model`` does (ShrinkBench: ``linear``)."""
    state = {key.removeprefix("module."): value for key, value in state.items()}
    classifier = getattr(model, "classifier_name", None)
    own = model.state_dict()
    if classifier and f"{classifier}.weight" in own and f"{classifier}.weight" not in state:
        state = {
            (f"{classifier}.{key.split('.', 1)[1]}" if key.startswith("linear.") else key): value
            for key, value in state.items()
        }
    return state


def load_pretrained(model: nn.Module, path: Path) -> None:
    """Load the weights at ``path`` into ``model`` strictly; one line naming the first tensor that does not fit."""
    state = to_model_layout(read_state_dict(path), model)
    own = model.state_dict()
    for key in own:  # files saved before PyTorch 0.4.1 (ShrinkBench's ResNets) lack BatchNorm's step counter
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(own[key])
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        parts = [
            f"{what} {_first(names)}" for what, names in (("missing", missing), ("unexpected", unexpected)) if names
        ]
        raise ConfigError(
            f"model.pretrained: {path.name} does not fit {type(model).__name__}: {'; '.join(parts)} "
            "(is it the weights of another model?)"
        )
    for key, tensor in own.items():
        if state[key].shape != tensor.shape:
            raise ConfigError(
                f"model.pretrained: {path.name}'s {key} has shape {tuple(state[key].shape)}, "
                f"{type(model).__name__} needs {tuple(tensor.shape)} (another depth, width or number of classes?)"
            )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def pretrained_weights(cfg: Any) -> tuple[Path, str] | None:
    """The weights file a run's config names (``model.pretrained``) and its sha256; None to train from scratch."""
    spec = cfg.model.get("pretrained")
    if not spec:
        return None
    weights_dir = cfg.model.get("weights_dir")
    return resolve_weights(
        str(spec),
        str(cfg.model.name),
        Path(str(cfg.paths.data_dir)).expanduser(),
        Path(str(weights_dir)).expanduser() if weights_dir else None,
        Path(str(cfg.paths.cache_dir)).expanduser(),
    )


def pretrained_sha256(cfg: Any) -> str | None:
    """The sha256 of the run's pretrained weights (part of its trunk id), or None."""
    found = pretrained_weights(cfg)
    return found[1] if found is not None else None


def _first(names: list[str], shown: int = 3) -> str:
    """The first few of a list of tensor names, '…' when there are more."""
    return f"{names[:shown]}{' …' if len(names) > shown else ''}"
