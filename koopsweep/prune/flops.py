"""Dense and non-zero multiply-accumulates of a forward pass, per prunable weight (ShrinkBench's FLOP metric).

Each Conv2d/Linear costs (output positions × weight elements) MACs; with a sparse weight only the non-zero
elements count. The theoretical speed-up is dense / non-zero MACs over the whole network.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def macs_per_weight(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """MACs of one sample's forward pass attributed to each conv/linear weight (name → dense MACs)."""
    names = {module: name for name, module in model.named_modules()}
    macs: dict[str, int] = {}

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        positions = output[0].numel() // output.shape[1] if isinstance(module, nn.Conv2d) else 1
        macs[f"{names[module]}.weight"] = positions * module.weight.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        model(torch.zeros((1, *input_shape), dtype=param.dtype, device=param.device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs


@torch.no_grad()
def flop_metrics(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, float]:
    """Dense MACs, MACs left after pruning (weights' zeros skipped) and the theoretical speed-up."""
    params = dict(model.named_parameters())
    dense = macs_per_weight(model, input_shape)
    nonzero = sum(m * float(torch.count_nonzero(params[n])) / params[n].numel() for n, m in dense.items())
    total = sum(dense.values())
    return {"flops/dense": total, "flops/nonzero": nonzero, "flops/speedup": total / max(nonzero, 1.0)}
