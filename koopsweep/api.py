"""KMP and KGP in your own training loop: record a window of training, get masks by method and amount, apply them.

```python
recorder = KoopmanRecorder(model, snapshots=100)   # conv and linear weights, the classifier left dense
...                                                 # your loop: after each optimizer step of the window
recorder.record()
masks = recorder.masks("kmp", compression=16)       # {parameter name: bool keep-mask}
apply_masks(model, masks)                           # torch.nn.utils.prune.custom_from_mask, or how="inplace"
```

The pieces are the ones koopsweep's runs use: the in-memory recorder (float64 increments, the Gram grown while
recording), the exact DMD fit and its θ*/ĝ (koopsweep.koopman.vectors.pruning_vectors), the scorers and exact-k
selection (koopsweep.prune.methods.choose_keep). So on the same trajectory a run and this API give the same masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import prune

from koopsweep.errors import ConfigError
from koopsweep.koopman import fit_dmd
from koopsweep.koopman.memory import MemoryRecorder, MemoryWindow, window_bytes
from koopsweep.koopman.vectors import KoopmanVectors, pruning_vectors
from koopsweep.prune.amount import solve
from koopsweep.prune.gradients import average_gradient
from koopsweep.prune.methods import METHODS, choose_keep, method
from koopsweep.prune.paramspace import ParamSpace, select_parameters
from koopsweep.prune.scorers import PruneContext

Masks = dict[str, torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
__all__ = ["METHODS", "KoopmanRecorder", "apply_masks", "masks_for", "prunable_parameters"]


def classifier_module(model: nn.Module) -> str | None:
    """The module a model marks as its classifier (``classifier_name``), else its last Linear (ShrinkBench's rule)."""
    marked = getattr(model, "classifier_name", None)
    if marked:
        return marked
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


def prunable_parameters(model: nn.Module) -> list[str]:
    """ShrinkBench's prunable set, as koopsweep's runs choose it: conv and linear weights, the classifier's aside
    (a model without ``classifier_name`` has its last Linear taken for its classifier).

    >>> from torch import nn
    >>> from koopsweep import prunable_parameters
    >>> prunable_parameters(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)))
    ['0.weight']
    """
    marked = getattr(model, "classifier_name", None)
    classifier = None if marked else classifier_module(model)
    return select_parameters(model, ignore=[classifier] if classifier else [])


def _space(model: nn.Module, params: Sequence[str] | None) -> ParamSpace:
    names = list(params) if params is not None else prunable_parameters(model)
    available = dict(model.named_parameters())
    missing = [n for n in names if n not in available]
    if missing or not names:
        raise ValueError(
            f"{type(model).__name__} has no parameters {missing}" if missing else "no parameters to prune were given"
        )
    return ParamSpace(names, [available[n].shape for n in names])


class KoopmanRecorder:
    """Records a model's prunable parameters after each optimizer step of a window and fits their Koopman modes.

    ``snapshots`` is the most snapshots the window will hold (the buffer is allocated once: as much memory as a
    koopsweep run's recorder for the same window, ``8 × snapshots × prunable`` bytes). ``stride`` is how many
    optimizer steps lie between two ``record()`` calls (KGP's step is lr × stride); ``rank_tol`` and ``delays``
    are the fit's (koopsweep's ``koopman.*``; defaults: untruncated, no delays, as the paper).

    >>> import torch
    >>> from torch import nn
    >>> from koopsweep import KoopmanRecorder
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))  # the last Linear: the classifier
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> x, y = torch.randn(64, 8), torch.randint(2, (64,))
    >>> recorder = KoopmanRecorder(model, snapshots=10)
    >>> for _ in range(10):  # the window before pruning: record after each optimizer step
    ...     optimizer.zero_grad()
    ...     nn.functional.cross_entropy(model(x), y).backward()
    ...     optimizer.step()
    ...     recorder.record()
    >>> kmp = recorder.masks("kmp", fraction=0.75)  # {parameter name: bool keep-mask}
    >>> kgp = recorder.masks("kgp", fraction=0.75, lr=0.1)  # ĝ needs the window's step size
    >>> {name: int((~keep).sum()) for name, keep in kmp.items()}  # exactly 75 % of the 128 prunable weights
    {'0.weight': 96}
    """

    def __init__(
        self,
        model: nn.Module,
        snapshots: int,
        *,
        params: Sequence[str] | None = None,
        stride: int = 1,
        rank_tol: float = 0.0,
        delays: int = 0,
        chunk_size: int = 64,
    ) -> None:
        if snapshots < 2 + delays or stride < 1:
            raise ValueError(f"snapshots must be >= {2 + delays} (delays + 2) and stride >= 1")
        self.model = model
        self.space = _space(model, params)
        self.stride, self.rank_tol, self.delays = int(stride), float(rank_tol), int(delays)
        self.capacity = int(snapshots)
        device = self.space.tensors(model)[0].device
        self._recorder: MemoryRecorder | None = MemoryRecorder(
            self.space.layout_hash, self.space.numel, snapshots, chunk_size, device
        )
        self._window: MemoryWindow | None = None
        self._fit = None
        self._vectors: dict[tuple[float, float], KoopmanVectors] = {}

    @property
    def count(self) -> int:
        """Snapshots recorded so far."""
        return self._window.count if self._window is not None else self._recorder.count  # type: ignore[union-attr]

    @property
    def nbytes(self) -> int:
        """Memory the window takes (its float64 increments), the same as a koopsweep run's in-memory recorder."""
        return window_bytes(self.capacity, self.space.numel)

    def check_layout(self) -> None:
        """ValueError when the model's prunable tensors are no longer the ones recorded (renamed or reshaped)."""
        params = dict(self.model.named_parameters())
        changed = [s.name for s in self.space.slots if s.name not in params or tuple(params[s.name].shape) != s.shape]
        if changed:
            raise ValueError(
                f"the model's parameters {changed[:3]} changed since recording began (renamed, reshaped or "
                "reparametrised, e.g. by torch.nn.utils.prune): ask for masks before applying any"
            )

    def record(self) -> None:
        """Record the prunable parameters as they are now: call it after each optimizer step of the window."""
        if self._recorder is None:
            raise ValueError("the window is closed (masks were asked for): start a new KoopmanRecorder to record again")
        self.check_layout()
        if self._recorder.count == self.capacity:
            raise ValueError(f"the recorder was sized for {self.capacity} snapshots: raise snapshots=")
        self._recorder.append(self.space.flatten(self.model))

    def vectors(self, lr: float, momentum: float = 0.0) -> KoopmanVectors:
        """θ* and ĝ of the recorded window (the window is closed and fitted on the first call)."""
        if self._fit is None:
            count = self.count
            if count < self.delays + 2:
                raise ValueError(
                    f"the window holds {count} snapshot(s); the Koopman fit needs at least {self.delays + 2}: call "
                    "record() after each optimizer step of the window"
                )
            self._window = self._recorder.close()  # type: ignore[union-attr]
            self._recorder = None
            self._fit = fit_dmd(self._window, self.rank_tol, self.delays, device=self._window.increments.device)
        key = (float(lr), float(momentum))
        if key not in self._vectors:
            fixed_point, gradient = pruning_vectors(self._fit, lr * self.stride, momentum)
            self._vectors[key] = KoopmanVectors(self._fit.summary(), fixed_point, gradient, lr, momentum)
        return self._vectors[key]

    def masks(self, name: str, **amount_and_inputs) -> Masks:
        """Keep-masks by parameter name for method ``name`` (see ``masks_for`` for the keywords)."""
        self.check_layout()
        return masks_for(self.model, name, recorder=self, **amount_and_inputs)


def masks_for(
    model: nn.Module,
    name: str,
    *,
    fraction: float | None = None,
    compression: float | None = None,
    recorder: KoopmanRecorder | None = None,
    params: Sequence[str] | None = None,
    scope: str | None = None,
    lr: float | None = None,
    momentum: float = 0.0,
    batches: Iterable[Batch] | None = None,
    seed: int = 0,
) -> Masks:
    """Keep-masks (True = kept) by parameter name: method ``name`` (``gmp lmp ggp lgp kmp kgp random``) removes
    exactly the amount asked — ``fraction`` of the prunable weights, or ShrinkBench's whole-network ``compression``.

    ``kmp``/``kgp`` need a ``recorder`` (its window); ``kgp`` also ``lr`` (the window's learning rate) and
    ``momentum`` (heavy-ball β, undone in ĝ; 0 for plain steps); ``ggp``/``lgp`` need ``batches`` of (x, y), whose
    cross-entropy gradient is averaged. ``scope`` overrides the method's (``global`` or ``layer``).

    >>> import torch
    >>> from torch import nn
    >>> from koopsweep import masks_for
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))  # 178 parameters, 128 prunable
    >>> keep = masks_for(model, "gmp", fraction=0.5)["0.weight"]
    >>> keep.shape, int(keep.sum())
    (torch.Size([16, 8]), 64)
    >>> removed = int((~masks_for(model, "gmp", compression=2)["0.weight"]).sum())
    >>> 178 / (178 - removed)  # ShrinkBench's axis: total / non-zero parameters of the whole network
    2.0
    >>> batches = [(torch.randn(32, 8), torch.randint(2, (32,)))]
    >>> int((~masks_for(model, "ggp", fraction=0.5, batches=batches)["0.weight"]).sum())
    64
    """
    scorer, default_scope = method(name)
    space = recorder.space if recorder is not None else _space(model, params)
    if fraction is None and compression is None:
        raise ValueError("give the amount: fraction= (of prunable weights) or compression= (total / non-zero)")
    total = sum(p.numel() for p in model.parameters())
    try:
        amount = solve(fraction, compression, space.numel, total, type(model).__name__, prefix="")
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    koopman = None
    if scorer.requires_koopman:
        if recorder is None:
            raise ValueError(f"{name} needs a KoopmanRecorder that recorded the window: masks_for(..., recorder=)")
        if name == "kgp" and lr is None:
            raise ValueError("kgp needs lr= (the learning rate of the window's steps) to reconstruct the gradient")
        koopman = recorder.vectors(1.0 if lr is None else lr, momentum)
    if scorer.gradient_flavoured and name != "kgp" and batches is None:
        raise ValueError(f"{name} needs batches= (a few (x, y) training batches to average the gradient over)")
    ctx = PruneContext(
        model=model,
        space=space,
        iteration=0,
        seed=seed,
        koopman_fit=koopman,
        loss_gradient=_gradient(model, space, batches),
        lr=1.0 if lr is None else lr,
        momentum=momentum,
    )
    keep = choose_keep(scorer, ctx, amount.remove, scope or default_scope)
    return {n: m.cpu().clone() for n, m in space.unflatten(keep).items()}


def _gradient(model: nn.Module, space: ParamSpace, batches: Iterable[Batch] | None) -> Callable[[], torch.Tensor]:
    def gradient() -> torch.Tensor:
        return average_gradient(model, space, batches or [])

    return gradient


def apply_masks(model: nn.Module, masks: Masks, how: str = "prune") -> None:
    """Apply keep-masks: ``how="prune"`` through ``torch.nn.utils.prune.custom_from_mask`` (the mask stays on the
    module and holds through further training); ``"inplace"`` zeroes the removed weights now (re-apply after
    each optimizer step, as koopsweep's fine-tuning does).

    >>> from torch import nn
    >>> from koopsweep import apply_masks, masks_for
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> apply_masks(model, masks_for(model, "gmp", fraction=0.5))
    >>> int((model[0].weight == 0).sum()), hasattr(model[0], "weight_mask")  # weight = weight_orig * weight_mask
    (64, True)
    """
    if how not in ("prune", "inplace"):
        raise ValueError(f"how must be 'prune' or 'inplace', got {how!r}")
    for name, mask in masks.items():
        module_name, _, tensor = name.rpartition(".")
        module = model.get_submodule(module_name)
        if how == "prune":
            prune.custom_from_mask(module, tensor, mask)
        else:
            with torch.no_grad():
                getattr(module, tensor).mul_(mask.to(getattr(module, tensor).device))
