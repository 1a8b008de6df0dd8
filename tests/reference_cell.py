"""A frozen, straightforward reimplementation of one koopsweep cell, for bit-for-bit checks on the same machine.

The production path (trunk store, Trainer, hooks, MemoryRecorder, fit cache, scorers, MaskSet) must compute exactly
what this plain loop computes, bit for bit, when both run in the same process: same CPU, same kernels, same threads.
Any refactor that moves a bit of the final weights shows up as a difference here, on any CPU; what a run gives on
*other* CPUs is checked against stored figures with tolerances (tests/test_reference.py).

What the loop reproduces, and from where:

- data: the config's ``dataset.source`` loader called with its options (the data itself is not what is checked);
- model: ``torch.manual_seed(seed)``, then the model class, as koopsweep builds it;
- data order: the documented rule of koopsweep.data.tensors (batch i is slice ``i mod epoch`` of the permutation
  ``torch.randperm(n, generator=derive_generator(seed, 0, epoch))``, tag 0 = the order stream), written out here
  with the primitive ``derive_generator`` rather than through BatchStream;
- SGD with the config's lr and momentum (constant learning rate), ``zero_grad(set_to_none=True)``;
- the Koopman window [t − window, t] recorded by this loop every ``stride`` steps as float32 vectors, fitted with
  koopsweep's public exact DMD (``fit_dmd``; it has its own oracle tests): θ* and ĝ at the window's last snapshot,
  in one ``combine_many`` pass, with ĝ for the step lr·stride and the heavy-ball momentum, cast to float32;
- exact-k global selection, k = round(fraction × prunable), lowest scores removed, ties to the lower index
  (a stable sort), the classifier and biases never pruned;
- masks multiplied into the weights at the pruning time and after every fine-tuning step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hydra.utils import get_class, get_method
from omegaconf import DictConfig, OmegaConf
from torch import nn

from koopsweep.data.tensors import derive_generator
from koopsweep.koopman import fit_dmd
from koopsweep.steps import Step

ORDER_STREAM = 0  # koopsweep.data.tensors: the tag of the data-order generator


@dataclass
class ReferenceCell:
    """What the reference computed: the final state_dict and the keep-mask over the prunable weights."""

    weights: dict[str, torch.Tensor]
    keep: torch.Tensor


def _supported(cfg: DictConfig) -> None:
    """The reference implements the settings the checked cells use, and refuses anything else (no silent drift)."""
    schedule, koopman, opt, data = cfg.schedule, cfg.koopman, cfg.optimizer, cfg.dataset
    assert opt._target_ == "torch.optim.SGD" and not opt.nesterov and opt.weight_decay == 0, opt
    assert (
        schedule.lr_schedule == "constant"
        and schedule.finetune_lr is None
        and Step.parse(schedule.warmup).to_iterations(1) == 0
    )
    assert koopman.delays == 0 and koopman.rank_tol == 0, koopman
    assert data.train_size is None and data.test_size is None and not data.augment, data
    assert cfg.pruner.scope == "global" and list(cfg.pruner.kinds) == ["weight"] and not cfg.pruner.ignore
    assert cfg.pruner.ignore_classifier and cfg.pruner.compression is None and cfg.precision == "fp32"
    assert cfg.device == "cpu" and not cfg.model.get("pretrained"), "the reference trains from scratch on the CPU"


def _prunable(model: nn.Module) -> list[torch.Tensor]:
    """The weights of every layer but the classifier, in parameter order."""
    classifier = model.classifier_name + "."
    return [p for name, p in model.named_parameters() if name.endswith(".weight") and not name.startswith(classifier)]


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors]).to(torch.float32)


def _scores(pruner: str, theta: torch.Tensor, window: list[torch.Tensor], lr: float, momentum: float) -> torch.Tensor:
    """GMP |θ|, KMP |θ*|, KGP |θ ⊙ ĝ|; θ* and ĝ from the exact DMD of the recorded window."""
    if pruner == "gmp":
        return theta.abs()
    fit = fit_dmd(torch.stack(window))
    last = len(window) - 1
    both = fit.combine_many([fit.fixed_point_weights(), fit.gradient_weights(last, lr, momentum)])
    fixed_point, gradient = both[:, 0].to(torch.float32), both[:, 1].to(torch.float32)
    if pruner == "kmp":
        return fixed_point.abs()
    if pruner == "kgp":
        return (theta * gradient).abs()
    raise ValueError(f"the reference cell implements gmp, kmp and kgp, not {pruner}")


def _exact_k_keep(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Remove round(fraction × n) lowest scores; among equal scores the lower index goes first (stable sort)."""
    keep = torch.ones(scores.numel(), dtype=torch.bool)
    keep[torch.sort(scores, stable=True).indices[: int(round(fraction * scores.numel()))]] = False
    return keep


@torch.no_grad()
def _multiply(tensors: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    for tensor, mask in zip(tensors, masks):
        tensor.mul_(mask)


@dataclass
class Batches:
    """Batch i: slice (i mod epoch) of the permutation ``randperm(n, derive_generator(seed, 0, i // epoch))``."""

    x: torch.Tensor
    y: torch.Tensor
    size: int
    seed: int

    @property
    def per_epoch(self) -> int:
        return -(-len(self.x) // self.size)

    def __call__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position = divmod(i, self.per_epoch)
        order = torch.randperm(len(self.x), generator=derive_generator(self.seed, ORDER_STREAM, epoch))
        index = order[position * self.size : (position + 1) * self.size]
        return self.x[index], self.y[index]


def run_reference_cell(cfg: DictConfig) -> ReferenceCell:
    """Train, prune once and fine-tune as ``cfg`` says, in a plain loop (see the module docstring)."""
    _supported(cfg)
    source = OmegaConf.to_container(cfg.dataset.source, resolve=True)
    assert isinstance(source, dict)
    data = get_method(source.pop("_target_"))(**source)
    torch.manual_seed(cfg.seed)
    model = get_class(cfg.model._target_)(input_shape=data.input_shape, num_classes=data.num_classes)
    lr, momentum = float(cfg.optimizer.lr), float(cfg.optimizer.momentum)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    batch = Batches(data.train_x, data.train_y, cfg.dataset.batch_size, cfg.seed)

    def iterations(step: str) -> int:
        return Step.parse(step).to_iterations(batch.per_epoch)

    prune_at = iterations(cfg.schedule.prune_at or cfg.schedule.train)
    end = prune_at + iterations(cfg.schedule.finetune)
    stride = int(cfg.koopman.stride)
    window_start = max(prune_at - iterations(cfg.koopman.window), 0)
    prunable = _prunable(model)
    window: list[torch.Tensor] = []
    masks: list[torch.Tensor] | None = None
    keep = torch.ones(0, dtype=torch.bool)
    for i in range(end + 1):  # i = optimizer steps taken so far
        if window_start <= i <= prune_at and (i - window_start) % stride == 0:
            window.append(_flat(prunable))
        if i == prune_at:
            koopman_momentum = momentum if cfg.koopman.momentum_correction else 0.0
            scores = _scores(cfg.pruner.name, _flat(prunable), window, lr * stride, koopman_momentum)
            keep = _exact_k_keep(scores, cfg.pruner.fraction)
            parts = keep.split([p.numel() for p in prunable])
            masks = [part.view(p.shape).to(p.dtype) for part, p in zip(parts, prunable)]
            _multiply(prunable, masks)
        if i == end:
            break
        x, y = batch(i)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if masks is not None:
            _multiply(prunable, masks)
    return ReferenceCell({k: v.detach().clone() for k, v in model.state_dict().items()}, keep)
