"""koopman.cluster_radius: KMP's θ* from every mode near 1, cached apart from the paper's nearest-mode θ*."""

from __future__ import annotations

from pathlib import Path

import pytest

from koopsweep.config.checks import check_config
from koopsweep.errors import ConfigError
from koopsweep.store import branch_id
from koopsweep.train.run import run_experiment


def test_a_cluster_run_fits_its_own_theta_star_beside_the_papers(make_cfg, tiny, tmp_path: Path) -> None:
    common = [*tiny, "pruner=kmp", "pruner.fraction=0.5", "schedule.prune_at=1ep", f"paths.store_dir={tmp_path}/s"]
    paper = run_experiment(make_cfg(common, out="paper"))
    cluster = run_experiment(make_cfg([*common, "koopman.cluster_radius=0.5"], out="cluster"))
    assert "cluster_modes" not in paper["koopman"] and cluster["koopman"]["cluster_modes"] >= 2
    fits = sorted(p.name for p in (tmp_path / "s").rglob("fits/*.pt"))
    assert len(fits) == 2 and any("-c0.5-" in name for name in fits)
    assert paper["metrics"]["trunk/reused_iterations"] == cluster["metrics"]["trunk/reused_iterations"]
    assert paper["branch_id"] != cluster["branch_id"]


def test_the_papers_setting_keeps_existing_branch_ids(make_cfg) -> None:
    assert branch_id(make_cfg(["koopman.cluster_radius=0"])) == branch_id(make_cfg([]))
    with pytest.raises(ConfigError, match="koopman.cluster_radius=1.5 is out of range"):
        check_config(make_cfg(["koopman.cluster_radius=1.5"]))
