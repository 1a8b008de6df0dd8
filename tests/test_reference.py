"""The cell path's exactness, on any CPU: bit for bit against a plain reference, and close to stored figures.

PyTorch picks its CPU kernels by instruction set at run time (``ATEN_CPU_CAPABILITY``: default, avx2, avx512), and
their floating-point results differ in the last bits. So exactness is checked in two ways:

- bit for bit, within one process: the production cell (trunk store, Trainer, in-memory Koopman recorder, fit
  cache, scorers, MaskSet) against the frozen plain loop of tests/reference_cell.py, on the same CPU, kernels and
  threads. A refactor that moves one bit of the final weights fails here on every machine.
- against figures recorded on another machine: the keep-mask's digest must be identical (exact-k selection has
  margins far above the kernels' differences here: the masks agree across default/avx2/avx512 and 1 or 2 threads),
  and per-tensor sums and norms of the final weights must agree within ``RTOL`` (measured: 4e-7 between kernel sets).

CI runs this module (marker ``reference``) under ATEN_CPU_CAPABILITY=default as well as the native kernels.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict
from reference_cell import run_reference_cell

import koopsweep.train.run
from koopsweep.artifacts import load_checked
from koopsweep.config.compose import compose_config
from koopsweep.train.run import run_experiment

pytestmark = pytest.mark.reference

# The cell: synthetic MNIST-shaped data, LeNet-300-100, 8 iterations per epoch; dense to 1 epoch, pruned 80 % there
# (the Koopman window is that epoch), fine-tuned 1 epoch with heavy-ball SGD; on the CPU even where a GPU is visible.
CELL = [
    "dataset=synthetic", "dataset.source.train=512", "dataset.source.test=256", "dataset.batch_size=64",
    "schedule.train=2ep", "schedule.finetune=1ep", "schedule.eval_every=4it", "pruner.fraction=0.8",
    "schedule.prune_at=1ep", "optimizer.momentum=0.9", "device=cpu",
]  # fmt: skip
PRUNERS = ("gmp", "kgp", "kmp")

# Recorded with torch 2.14.1 (native AVX-512 kernels; default and AVX2 kernels give the same masks and figures
# within 4e-7). Per pruner: sha256 of the keep-mask (bool bytes) and, per tensor, (sum, L1 norm, L2 norm) in float64.
FIGURES_TORCH = "2.14."
RTOL = 1e-5  # relative to the L1 norm for sums, to the value for norms: 25x the spread measured across kernel sets
FIGURES: dict[str, dict] = {
    "gmp": {
        "mask": "4e3d4e62637c7ab0",
        "weights": {
            "fc1.bias": (2.0550152336, 5.70522505137, 0.388053307874),
            "fc1.weight": (-23.9738269886, 1331.06934741, 6.86554618385),
            "fc2.bias": (2.21948384028, 3.52017536678, 0.4306982671),
            "fc2.weight": (93.415009746, 673.407700881, 5.83091085932),
            "fc3.bias": (-0.163078259677, 0.759694419801, 0.272180775553),
            "fc3.weight": (-2.46248276567, 73.6711095126, 2.84278450203),
        },
    },
    "kgp": {
        "mask": "366cf032616d0d49",
        "weights": {
            "fc1.bias": (1.73847449511, 5.62599516688, 0.377961814194),
            "fc1.weight": (-34.2718896649, 1115.56952131, 5.97977696284),
            "fc2.bias": (1.6600222805, 3.22512055296, 0.393978023834),
            "fc2.weight": (162.1668035, 553.308732759, 5.16336878985),
            "fc3.bias": (-0.163078280166, 0.774789752439, 0.275684136551),
            "fc3.weight": (-2.46248292815, 73.4146440998, 2.82134467622),
        },
    },
    "kmp": {
        "mask": "810e3501e95e2443",
        "weights": {
            "fc1.bias": (0.594692183811, 5.4030130617, 0.359955307557),
            "fc1.weight": (31.0688491586, 774.976224591, 4.40863679927),
            "fc2.bias": (0.840503620886, 2.93143918042, 0.352564933097),
            "fc2.weight": (-77.7131916212, 480.023885233, 4.53394403572),
            "fc3.bias": (-0.163078247337, 0.521225825651, 0.198287344248),
            "fc3.weight": (-2.46248293223, 58.7622541592, 2.20995966706),
        },
    },
}


@dataclass
class Cell:
    """A finished cell: its final state_dict and keep-mask over the prunable weights."""

    weights: dict[str, torch.Tensor]
    keep: torch.Tensor


def cell_config(pruner: str, root: Path) -> DictConfig:
    cfg = compose_config(["logger=none", "threads=1", *CELL, f"pruner={pruner}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "run")
    return cfg


def run_production_cell(pruner: str, root: Path) -> tuple[Cell, DictConfig]:
    """The cell through run_experiment in its own store and environment, with the mask pruning produced."""
    masks = []

    def prune_and_keep(*args, **kwargs):
        masks.append(original(*args, **kwargs))
        return masks[-1]

    original = koopsweep.train.run.prune
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KOOPSWEEP_ROOT", str(root))
        patch.setenv("WANDB_MODE", "disabled")
        patch.delenv("WANDB_API_KEY", raising=False)
        patch.setattr(koopsweep.train.run, "prune", prune_and_keep)
        cfg = cell_config(pruner, root)
        results = run_experiment(cfg)
    assert results["status"] == "finished" and len(masks) == 1
    weights = load_checked(Path(cfg.paths.output_dir) / "model.pt")
    return Cell(weights, masks[0].keep.cpu()), cfg


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Cell, DictConfig]]:
    """``production(pruner)``: the cell run once per module and pruner (both checks below use it)."""
    cells: dict[str, tuple[Cell, DictConfig]] = {}

    def cell(pruner: str) -> tuple[Cell, DictConfig]:
        if pruner not in cells:
            cells[pruner] = run_production_cell(pruner, tmp_path_factory.mktemp(pruner))
        return cells[pruner]

    return cell


def mask_digest(keep: torch.Tensor) -> str:
    return hashlib.sha256(keep.to(torch.bool).numpy().tobytes()).hexdigest()[:16]


def weight_figures(weights: dict[str, torch.Tensor]) -> dict[str, tuple[float, float, float]]:
    """Per tensor: sum, L1 and L2 norm (float64); close across kernel sets, unlike the bits."""
    out = {}
    for name in sorted(weights):
        w = weights[name].double()
        out[name] = (float(w.sum()), float(w.abs().sum()), float(w.norm()))
    return out


@pytest.mark.parametrize("pruner", PRUNERS)
def test_the_cell_is_bit_identical_to_the_plain_reference(production, pruner: str) -> None:
    cell, cfg = production(pruner)
    reference = run_reference_cell(cfg)
    assert torch.equal(cell.keep, reference.keep)
    assert sorted(cell.weights) == sorted(reference.weights)
    moved = [name for name in cell.weights if not torch.equal(cell.weights[name], reference.weights[name])]
    assert not moved, f"final weights differ from the reference in {moved}"


@pytest.mark.skipif(
    not torch.__version__.startswith(FIGURES_TORCH), reason=f"figures recorded with torch {FIGURES_TORCH}x"
)
@pytest.mark.parametrize("pruner", PRUNERS)
def test_the_cell_matches_its_stored_figures_on_any_kernel_set(production, pruner: str) -> None:
    cell, _ = production(pruner)
    stored = FIGURES[pruner]
    assert mask_digest(cell.keep) == stored["mask"], "the mask moved: not a kernel-set difference"
    figures = weight_figures(cell.weights)
    assert sorted(figures) == sorted(stored["weights"])
    for name, (total, l1, l2) in stored["weights"].items():
        got_total, got_l1, got_l2 = figures[name]
        assert abs(got_total - total) <= RTOL * l1, (name, "sum", got_total, total)
        assert got_l1 == pytest.approx(l1, rel=RTOL), (name, "L1")
        assert got_l2 == pytest.approx(l2, rel=RTOL), (name, "L2")


def recorded_figures() -> Iterator[str]:
    """Lines of a new FIGURES table (after a deliberate change of the cell's numbers): ``python tests/...py``."""
    for pruner in PRUNERS:
        with tempfile.TemporaryDirectory() as root:
            cell, _ = run_production_cell(pruner, Path(root))
        weights = {name: tuple(float(f"{v:.12g}") for v in fig) for name, fig in weight_figures(cell.weights).items()}
        yield f'    "{pruner}": {{"mask": "{mask_digest(cell.keep)}", "weights": {weights}}},'


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("FIGURES = {", *recorded_figures(), "}", sep="\n")
