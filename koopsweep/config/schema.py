"""Typed schemas for every config group, registered in Hydra's ConfigStore.

The yaml files under conf/ are merged into these dataclasses, so a misspelled key or a value of the wrong type
fails at compose time; `koopsweep.config.checks` then rejects impossible values before any training starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class ModelConfig:
    """A network class built as ``_target_(input_shape=(C, H, W), num_classes=K)``, optionally from weights.

    ``pretrained``: null (train from the initialisation), ``shrinkbench``, a file or a URL
    (koopsweep.models.pretrained); ``weights_dir``: a folder searched first for ShrinkBench's files; ``kwargs``:
    further constructor arguments (e.g. the FCN's ``hidden`` width), part of the trunk id.
    """

    _target_: str = MISSING
    name: str = MISSING
    pretrained: Optional[str] = None
    weights_dir: Optional[str] = None
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetConfig:
    """Where the tensors come from (``source._target_`` is a loader) and how they are batched."""

    name: str = MISSING
    source: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128
    eval_batch_size: int = 1000
    train_size: Optional[int] = None
    test_size: Optional[int] = None
    augment: bool = False


@dataclass
class OptimizerConfig:
    """A torch optimizer class (``_target_``, built partially and called with the parameters), e.g. SGD or Adam.

    The fields its constructor accepts are passed to it; ``kwargs`` carries any others (e.g. RMSprop's alpha).
    """

    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ScheduleConfig:
    """Lengths as Steps ("3ep", "500it", "2ep10it") and the learning-rate schedule over the dense run."""

    train: str = "10ep"
    prune_at: Optional[str] = None
    finetune: str = "1ep"
    lr_schedule: str = "constant"
    milestones: list[str] = field(default_factory=list)
    gamma: float = 0.1
    warmup: str = "0it"
    finetune_lr: Optional[float] = None
    eval_every: str = "1ep"


@dataclass
class PrunerConfig:
    """A scorer (``_target_``) plus how its scores become a mask.

    How much to remove is either ``fraction`` (share of prunable parameters) or ``compression`` (ShrinkBench's
    total / non-zero target over the whole network), never both; see koopsweep.prune.amount.
    """

    _target_: Optional[str] = None
    name: str = MISSING
    fraction: Optional[float] = None
    compression: Optional[float] = None
    scope: str = "global"
    kinds: list[str] = field(default_factory=lambda: ["weight"])
    ignore: list[str] = field(default_factory=list)
    ignore_classifier: bool = True
    batches: int = 1
    compare: bool = True


@dataclass
class KoopmanConfig:
    """The snapshot window before the pruning time and the DMD settings.

    ``params``: parameter names or module prefixes to record instead of the pruner's prunable space (a spectrum of a
    subset; Koopman pruners need the full space); ``record``: fit and log the spectrum even when the pruner does not
    use it (``pruner=none``, ``gmp``); ``max_rank``: keep at most this many DMD modes (0 = all).
    """

    window: str = "1ep"
    stride: int = 1
    rank_tol: float = 0.0
    delays: int = 0
    chunk_size: int = 64
    momentum_correction: bool = True
    cluster_radius: float = 0.0
    params: list[str] = field(default_factory=list)
    record: bool = False
    max_rank: int = 0


@dataclass
class StoreConfig:
    """The trunk store: dense runs shared by content id across every pruner, fraction and pruning time."""

    reuse: bool = True
    checkpoint_every: str = "1ep"
    keep_windows: bool = False


@dataclass
class LoggerConfig:
    """Weights & Biases: mode online | offline | disabled | auto."""

    mode: str = "auto"
    project: str = "koopsweep"
    entity: Optional[str] = None
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    notes: Optional[str] = None


@dataclass
class PathsConfig:
    """Absolute paths (Hydra may change the working directory, so nothing relies on it)."""

    root_dir: str = MISSING
    data_dir: str = MISSING
    store_dir: str = MISSING
    cache_dir: str = "${paths.root_dir}/cache"
    output_dir: str = MISSING
    log_dir: str = MISSING


@dataclass
class Config:
    """One koopsweep run."""

    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    schedule: ScheduleConfig = MISSING
    pruner: PrunerConfig = MISSING
    koopman: KoopmanConfig = MISSING
    store: StoreConfig = MISSING
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    precision: str = "fp32"
    deterministic: bool = True
    progress: Optional[bool] = None


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "dataset": DatasetConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "pruner": PrunerConfig,
    "koopman": KoopmanConfig,
    "store": StoreConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}


def register_configs() -> None:
    """Register the root schema; config.yaml lists it first so every group file merges into a typed node."""
    ConfigStore.instance().store(name="koopsweep_schema", node=Config)
