"""Runs that record a Koopman spectrum without pruning from it: koopman.record, koopman.params, koopman.max_rank,
and the FCN of the width study (model.kwargs in the trunk id)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from koopsweep.errors import ConfigError
from koopsweep.models import FCN
from koopsweep.store import trunk_id
from koopsweep.store.ids import trunk_spec
from koopsweep.train.run import run_experiment

SPECTRUM_ONLY = [
    "model=fcn",
    "model.kwargs.hidden=8",
    "pruner=none",
    "koopman.record=true",
    "koopman.params=[fc2]",
    "koopman.delays=2",
    "koopman.max_rank=6",
    "schedule.train=1ep",
    "schedule.finetune=0it",
]


def test_a_dense_run_logs_the_spectrum_of_its_output_layer(make_cfg, tiny) -> None:
    cfg = make_cfg([*tiny, *SPECTRUM_ONLY])
    results = run_experiment(cfg)
    koopman = results["koopman"]
    assert results["pruner"] == "none" and results["metrics"]["mask/sparsity"] == 0.0
    assert koopman["snapshots"] == 9 and koopman["delays"] == 2  # 8 iterations of 64 from 512 examples: θ(0) … θ(8)
    assert koopman["rank"] == len(koopman["spectrum"]["re"]) == 6 and koopman["max_rank"] == 6
    assert 0 <= results["metrics"]["koopman/near_one_share"] <= 1
    assert (Path(cfg.paths.output_dir) / "figures" / "koopman_spectrum_step8.png").is_file()
    on_disk = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert on_disk["koopman"]["spectrum"] == koopman["spectrum"]


def test_the_tracked_subset_and_the_truncation_change_the_fit_not_the_trunk(make_cfg, tiny) -> None:
    """fc2 of an 8-wide FCN has 80 weights: the window is 9 × 80 with 2 delays, 6 modes kept; the whole prunable
    space (fc1, 6,272 weights) would be another window, and the trunk is the same either way."""
    subset = make_cfg([*tiny, *SPECTRUM_ONLY])
    whole = make_cfg([*tiny, *[o for o in SPECTRUM_ONLY if not o.startswith("koopman.params")]])
    assert trunk_id(subset) == trunk_id(whole)
    from koopsweep.store import branch_id

    assert branch_id(subset) != branch_id(whole)


def test_the_width_is_part_of_the_trunk_id_and_old_ids_stay(make_cfg) -> None:
    narrow, wide = (make_cfg(["model=fcn", f"model.kwargs.hidden={h}"]) for h in (5, 40))
    assert trunk_id(narrow) != trunk_id(wide)
    assert trunk_spec(narrow)["model"]["kwargs"] == {"hidden": 5, "bias": False}
    assert trunk_spec(make_cfg())["model"] == {"_target_": "koopsweep.models.LeNet300100"}  # no kwargs: as before


def test_a_koopman_pruner_refuses_a_tracked_subset(make_cfg, tiny) -> None:
    with pytest.raises(ConfigError, match="koopman.params=\\['fc2'\\] records a subset"):
        make_cfg([*tiny, "model=fcn", "pruner=kmp", "koopman.params=[fc2]"])
    with pytest.raises(ConfigError, match="without koopman.record=true"):
        make_cfg([*tiny, "model=fcn", "pruner=gmp", "koopman.params=[fc2]"])
    with pytest.raises(ConfigError, match="\\['fc9'\\] match no parameter"):
        make_cfg([*tiny, "model=fcn", "pruner=none", "koopman.record=true", "koopman.params=[fc9]"])


def test_the_width_study_sets_delays_from_the_width(make_cfg) -> None:
    """32·10/h delays (Redman et al. 2024): 64, 32 and 8 for h = 5, 10, 40."""
    for hidden, delays in ((5, 64), (10, 32), (40, 8)):
        cfg = make_cfg(["experiment=fcn_width", f"model.kwargs.hidden={hidden}", "paths.data_dir=/nonexistent"])
        assert cfg.koopman.delays == delays and cfg.dataset.batch_size == 60 and cfg.optimizer.lr == 0.1


def test_fcn_shapes() -> None:
    net = FCN((1, 28, 28), 10, hidden=5)
    assert [tuple(p.shape) for p in net.parameters()] == [(5, 784), (10, 5)]
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="hidden"):
        FCN(hidden=0)
