"""koopsweep.api: KMP/KGP in a plain PyTorch loop gives the masks koopsweep's runs give on the same trajectory."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from koopsweep.api import KoopmanRecorder, apply_masks, masks_for, prunable_parameters
from koopsweep.models import LeNet300100, MnistNet, ResNet20

README = Path(__file__).resolve().parent.parent / "README.md"
CELL = [
    "dataset=synthetic",
    "dataset.source.train=512",
    "dataset.source.test=256",
    "dataset.batch_size=64",
    "schedule.train=3ep",
    "schedule.prune_at=2ep",
    "schedule.finetune=1ep",
    "koopman.window=1ep",
    "pruner.compression=4",
]


def test_the_api_gives_the_masks_of_the_frameworks_runs_on_the_same_trajectory(make_cfg) -> None:
    """Four runs (GMP, GGP, KMP, KGP at 4x, one shared trunk), then the same dense steps in a plain loop with the
    API recording the window: every mask is the run's, bit for bit."""
    from koopsweep.artifacts import load_checked
    from koopsweep.train.run import run_experiment
    from koopsweep.train.session import build_run

    saved = {}
    for name in ("gmp", "ggp", "kmp", "kgp"):
        results = run_experiment(make_cfg([*CELL, f"pruner={name}"], out=name))
        saved[name] = load_checked(Path(results["config"]["paths"]["output_dir"]) / "masks.pt")

    run = build_run(make_cfg([*CELL, "pruner=kmp"], out="own"))  # the same model, data order and optimizer
    model, optimizer, stream, t0, t = run.model, run.trainer.optimizer, run.trainer.stream, 8, 16
    recorder = KoopmanRecorder(model, snapshots=t - t0 + 1)
    assert recorder.space.names == run.space.names  # ShrinkBench's convention is the framework's on LeNet
    for iteration in range(t):  # a plain PyTorch loop
        for group in optimizer.param_groups:
            group["lr"] = run.trainer.lr_at(iteration)
        x, y = stream.batch(iteration)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if iteration + 1 >= t0:
            recorder.record()  # θ after each step of the window [t0, t]
    lr = run.trainer.lr_at(t - 1)
    batches = [stream.batch(t + i) for i in range(8)]  # conf/pruner/ggp.yaml: the 8 batches after t
    own = {
        "gmp": recorder.masks("gmp", compression=4),
        "ggp": recorder.masks("ggp", compression=4, batches=batches),
        "kmp": recorder.masks("kmp", compression=4),
        "kgp": recorder.masks("kgp", compression=4, lr=lr, momentum=0.9),  # SGD's heavy ball, undone as runs do
    }
    for name, masks in own.items():
        assert list(masks) == list(saved[name]), name
        assert all(torch.equal(masks[k], saved[name][k]) for k in masks), name
    assert not all(torch.equal(own["kmp"][k], own["kgp"][k]) for k in own["kmp"])  # the methods do differ
    assert recorder.nbytes == 8 * 9 * run.space.numel  # the framework's in-memory window: float64 increments


def test_apply_masks_through_torch_prune_or_in_place() -> None:
    torch.manual_seed(0)
    model = LeNet300100()
    masks = masks_for(model, "gmp", fraction=0.9)
    assert list(masks) == ["fc1.weight", "fc2.weight"]  # the classifier fc3 stays dense
    assert sum(int((~m).sum()) for m in masks.values()) == round(0.9 * (784 * 300 + 300 * 100))
    reference = LeNet300100()
    reference.load_state_dict(model.state_dict())
    apply_masks(model, masks)
    assert hasattr(model.fc1, "weight_mask") and torch.equal(model.fc1.weight_mask, masks["fc1.weight"].float())
    apply_masks(reference, masks, how="inplace")
    assert torch.equal(model.fc1.weight, reference.fc1.weight) and int((reference.fc1.weight == 0).sum()) > 0
    assert list(masks_for(model, "random", fraction=0.5, params=["fc2.weight_orig"], seed=1)) == ["fc2.weight_orig"]


def test_shrinkbench_convention_conv_and_linear_weights_classifier_dense() -> None:
    assert prunable_parameters(MnistNet()) == ["conv1.weight", "conv2.weight", "fc1.weight"]
    names = prunable_parameters(ResNet20((3, 32, 32), 10))
    assert "fc.weight" not in names and not any("bn" in n for n in names) and len(names) == 19


def test_every_misuse_is_one_clear_error() -> None:
    torch.manual_seed(0)
    model = LeNet300100()
    recorder = KoopmanRecorder(model, snapshots=3)
    recorder.record()
    with pytest.raises(ValueError, match="window holds 1 snapshot.*at least 2"):
        recorder.masks("kmp", fraction=0.5)
    for _ in range(2):
        recorder.record()
    with pytest.raises(ValueError, match="sized for 3 snapshots"):
        recorder.record()
    with pytest.raises(ValueError, match=r"^fraction=1.5 is out of range"):
        recorder.masks("gmp", fraction=1.5)
    with pytest.raises(ValueError, match=r"^compression=1000 is unreachable for LeNet300100"):
        recorder.masks("gmp", compression=1000)
    with pytest.raises(ValueError, match="give the amount"):
        recorder.masks("gmp")
    with pytest.raises(ValueError, match="unknown pruning method 'kmpp'"):
        recorder.masks("kmpp", fraction=0.5)
    with pytest.raises(ValueError, match="kgp needs lr="):
        recorder.masks("kgp", fraction=0.5)
    with pytest.raises(ValueError, match="ggp needs batches="):
        recorder.masks("ggp", fraction=0.5)
    with pytest.raises(ValueError, match="needs a KoopmanRecorder"):
        masks_for(model, "kmp", fraction=0.5)
    apply_masks(model, recorder.masks("kmp", fraction=0.5))
    with pytest.raises(ValueError, match="changed since recording"):
        recorder.masks("kmp", fraction=0.5)


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## KMP and KGP in your own training loop", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_in_well_under_a_minute(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    exec(compile(readme_example(), "README.md", "exec"), {"__name__": "readme"})
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert re.search(r"KMP at 16x: removed weights shared with GMP \d+\.\d %; test accuracy \d+\.\d+ %", out), out
    assert seconds < 60
