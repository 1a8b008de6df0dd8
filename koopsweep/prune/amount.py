"""How many parameters a pruner removes: from ``pruner.fraction`` or from ShrinkBench's ``pruner.compression``.

``fraction`` is the share of *prunable* parameters removed, as torch.nn.utils.prune counts ``amount``.
``compression`` is ShrinkBench's target for the *whole network*: total parameters / non-zero parameters, with the
non-prunable ones (the classifier, biases) counted and left dense. ShrinkBench solves the fraction of prunable
weights from it (``fraction_to_keep``); here the exact count is solved, so that the achieved compression is the
target to the rounding of one weight: keep ``round(total / compression)`` parameters in all, remove the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from koopsweep.errors import ConfigError


@dataclass(frozen=True)
class Amount:
    """The exact number of prunable parameters to remove, and what it was solved from."""

    remove: int
    prunable: int
    total: int
    target_compression: float | None = None

    @property
    def fraction(self) -> float:
        """The share of prunable parameters removed."""
        return self.remove / self.prunable

    @property
    def expected_compression(self) -> float:
        """total / non-zero after pruning, for a network without other zeros."""
        return self.total / (self.total - self.remove)


def from_fraction(fraction: float, prunable: int, total: int, prefix: str = "pruner.") -> Amount:
    """``round(fraction × prunable)`` parameters, as torch.nn.utils.prune rounds ``amount``; ``prefix`` names the
    setting in messages (``pruner.`` for configs, empty for the Python API)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(
            f"{prefix}fraction={fraction} is out of range: expected 0 <= fraction < 1 (0.9 = 90 % sparse)"
        )
    remove = int(round(fraction * prunable))
    _removes_some_not_all(remove, prunable, f"{prefix}fraction={fraction:g}", fraction > 0)
    return Amount(remove, prunable, total)


def _removes_some_not_all(remove: int, prunable: int, setting: str, asked: bool) -> None:
    """An amount that asks to prune but rounds to no weight, or to every prunable weight, cannot be meant."""
    if asked and remove == 0:
        raise ConfigError(
            f"{setting} removes no weight: 1 of the {prunable:,} prunable weights is {1 / prunable:.3g} of them; "
            "ask for more, or leave the amount at 0 for a dense run"
        )
    if remove >= prunable:
        raise ConfigError(f"{setting} removes every one of the {prunable:,} prunable weights: ask for less")


def largest_compression(prunable: int, total: int) -> float:
    """The highest compression that keeps at least one prunable parameter."""
    return total / (total - prunable + 1)


def from_compression(
    compression: float, prunable: int, total: int, model: str = "the model", prefix: str = "pruner."
) -> Amount:
    """Remove ``total − round(total / compression)`` prunable parameters; one line when that is impossible."""
    if not compression >= 1.0:
        raise ConfigError(
            f"{prefix}compression={compression} is out of range: expected >= 1 (total / non-zero parameters)"
        )
    remove = total - int(round(total / compression))
    _removes_some_not_all(min(remove, prunable - 1), prunable, f"{prefix}compression={compression:g}", compression > 1)
    if remove >= prunable:
        nonprunable = total - prunable
        raise ConfigError(
            f"{prefix}compression={compression:g} is unreachable for {model}: {nonprunable:,} of its {total:,} "
            f"parameters are not prunable and stay dense, so the largest reachable compression is "
            f"{largest_compression(prunable, total):.4g}x; choose a lower target"
        )
    return Amount(remove, prunable, total, float(compression))


def solve(
    fraction: float | None,
    compression: float | None,
    prunable: int,
    total: int,
    model: str = "the model",
    prefix: str = "pruner.",
) -> Amount:
    """The Amount a pruner config asks for (at most one of ``fraction`` and ``compression`` is set; neither: 0)."""
    if fraction is not None and compression is not None:
        raise ConfigError(
            f"{prefix}fraction={fraction} and {prefix}compression={compression} are both set: give one "
            "(fraction = share of prunable weights removed; compression = ShrinkBench's total / non-zero target)"
        )
    if compression is not None:
        return from_compression(compression, prunable, total, model, prefix)
    return from_fraction(0.0 if fraction is None else fraction, prunable, total, prefix)
