"""What a dataset is, known without loading it: input shape, classes and split sizes.

Checks that need the epoch length (a pruning time in iterations, a batch larger than the data, a Koopman window
longer than the time before pruning) and the size of the model (an unreachable compression target) run before
anything is loaded or trained, from this description. A loader publishes it as a ``describe`` attribute taking the
loader's own options; a loader without one (a user's) is checked when its data are loaded instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and size of a dataset's splits."""

    input_shape: tuple[int, ...]
    num_classes: int
    train_examples: int
    test_examples: int

    def subset(self, train_size: int | None, test_size: int | None) -> DatasetInfo:
        """The description after ``dataset.train_size`` / ``test_size`` (None keeps a split whole)."""
        return DatasetInfo(
            self.input_shape,
            self.num_classes,
            self.train_examples if train_size is None else min(train_size, self.train_examples),
            self.test_examples if test_size is None else min(test_size, self.test_examples),
        )

    def iterations_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.train_examples / batch_size)


Describer = Callable[..., DatasetInfo]


def fixed(input_shape: tuple[int, ...], num_classes: int, train: int, test: int) -> Describer:
    """A describer for a dataset whose splits do not depend on the loader's options."""
    info = DatasetInfo(tuple(input_shape), num_classes, train, test)
    return lambda **_: info


def describe(source_cfg: Mapping[str, Any]) -> DatasetInfo | None:
    """The description of ``dataset.source`` from its loader's ``describe``, or None when the loader has none."""
    options = (
        OmegaConf.to_container(source_cfg, resolve=True) if isinstance(source_cfg, DictConfig) else dict(source_cfg)
    )
    target = options.pop("_target_", None)
    options.pop("root", None)
    try:
        describer = getattr(get_method(target), "describe", None) if target else None
    except Exception:
        return None
    if describer is None:
        return None
    try:
        return describer(**options)
    except TypeError:
        return None  # options the loader rejects are reported when it is called
