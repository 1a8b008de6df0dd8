"""The report's training-dynamics outputs drawn from a tiny committed-like sample (runs.csv + spectra.jsonl).

Two seeds (trunks) pruned at 1, 2 and 4 epochs by KMP and GMP. The spectrum at time k is {1, 0.9 − a_k − 0.001·s,
0.5 ± 0.2i} with a = 0.04, 0.02, 0 (seed s), so its distance to the converged (4 ep) spectrum is a_k / 4, and the
KMP/GMP overlap is 1 − a_k: the spectral distance orders the overlap exactly (ρ = −1).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from koopsweep.commands.report import main
from koopsweep.errors import ConfigError
from koopsweep.report.collect import COLUMNS, read_table
from koopsweep.report.dynamics import DEFAULT_LABELS, DistanceMatrix, block_summary, separation
from koopsweep.report.dynamics_figures import koopman_predictors, spectral_distance_matrix, spectral_distance_vs_time
from koopsweep.report.dynamics_tables import write_dynamics
from koopsweep.report.figures import FIGURES, Data
from koopsweep.report.plot import save
from koopsweep.report.style import RC

SHIFT = {1: 0.04, 2: 0.02, 4: 0.0}
DRAWN = (
    ("spectral_distance_matrix", spectral_distance_matrix),
    ("spectral_distance_vs_time", spectral_distance_vs_time),
    ("koopman_predictors", koopman_predictors),
)
PER_EPOCH = 100


def spectrum(epoch: int, seed: int) -> dict:
    re = [1.0, 0.9 - SHIFT[epoch] - 0.001 * seed, 0.5, 0.5]
    return {
        "experiment": "timing", "model": "net", "dataset": "mnist", "seed": seed, "trunk_id": f"t{seed}",
        "prune_at": epoch * PER_EPOCH, "prune_epoch": float(epoch), "prune_step": f"{epoch}ep",
        "chosen_re": 1.0, "chosen_im": 0.0, "re": re, "im": [0.0, 0.0, 0.2, -0.2],
    }  # fmt: skip


def row(method: str, compression: float, epoch: int, seed: int) -> dict:
    final = 0.95 - (SHIFT[epoch] if method == "kmp" else 0.0) / 10
    values = {
        "experiment": "timing", "model": "net", "dataset": "mnist", "seed": seed, "method": method,
        "fraction": 1 - 1 / compression, "compression_target": compression, "prune_at": epoch * PER_EPOCH,
        "prune_epoch": float(epoch), "prune_step": f"{epoch}ep", "dense_acc": 0.96, "pruned_acc": final - 0.1,
        "final_acc": final, "status": "finished", "trunk_id": f"t{seed}",
        "branch_id": f"{method}{compression}{epoch}{seed}",
    }  # fmt: skip
    if method == "kmp":
        values |= {"overlap_gmp": 1 - SHIFT[epoch], "koopman_distance_to_1": 1e-6,
                   "koopman_fixed_point_distance": 0.1 * SHIFT[epoch] + 1e-4}  # fmt: skip
    return values


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("committed")
    with (folder / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for method in ("kmp", "gmp"):
            for compression in (2.0, 4.0):
                for epoch in SHIFT:
                    for seed in (0, 1):
                        writer.writerow(row(method, compression, epoch, seed))
    lines = [json.dumps(spectrum(epoch, seed)) for seed in (0, 1) for epoch in SHIFT]
    (folder / "spectra.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def redrawn(sample: Path) -> Path:
    """The dynamics figures and tables of the sample, as ``koopsweep report`` writes them (the paper's figures,
    drawn by tests/test_report.py, left out to keep this quick)."""
    collection = read_table(sample)
    keys, labels = ["experiment", "model", "dataset"], list(DEFAULT_LABELS)
    data = Data(collection.rows, collection.spectra, keys, labels)
    with matplotlib.rc_context(RC):
        for name, build in DRAWN:
            figure = build(data)
            assert not isinstance(figure, str), figure
            save(figure, sample / f"{name}.png")
    write_dynamics(collection.rows, collection.spectra, sample, keys, labels)
    return sample


def test_the_three_figures_are_drawn(redrawn: Path) -> None:
    for name, _ in DRAWN:
        path = redrawn / f"{name}.png"
        assert path.is_file() and path.stat().st_size > 20_000, name
        assert name in {n for n, _, _ in FIGURES}  # and so drawn by every report


def test_distance_table_holds_the_known_distances(redrawn: Path) -> None:
    with (redrawn / "spectral_distances.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15  # 6 spectra, every pair once
    cell = {(r["a_seed"], r["a_prune_step"], r["b_seed"], r["b_prune_step"]): float(r["distance"]) for r in rows}
    assert cell[("0", "1ep", "0", "4ep")] == pytest.approx(0.04 / 4)
    assert cell[("0", "2ep", "1", "2ep")] == pytest.approx(0.001 / 4)


def test_predictors_are_measured_against_the_overlap(redrawn: Path) -> None:
    with (redrawn / "predictors.csv").open() as handle:
        fits = list(csv.DictReader(handle))
    assert len(fits) == 6 and {f["method"] for f in fits} == {"kmp"}
    one = next(f for f in fits if f["seed"] == "1" and f["prune_step"] == "1ep")
    assert float(one["distance_to_converged"]) == pytest.approx(0.01)
    assert float(one["overlap"]) == pytest.approx(96.0)
    assert float(one["final_gap"]) == pytest.approx(0.4)
    text = (redrawn / "dynamics.md").read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("| spectral distance to converged |"))
    assert line.split(" | ")[1].startswith("-1.00 / ")  # ρ = −1 with the overlap
    assert "| \\|λ* − 1\\| | " in text  # a | inside a cell is escaped
    assert "| 1ep | 0.01 | 0.01 |" in text  # distance to convergence per seed


def test_unknown_distance_by_key_is_a_config_error(sample: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--distance-by 'model.kwargs.hidden'"):
        main([str(sample), "--out", str(tmp_path / "r"), "--distance-by", "model.kwargs.hidden,seed"])


def test_block_summary_separates_between_from_within() -> None:
    """Three widths × two seeds: the distances between widths and within one, as the FCN-width study reads them."""
    records = [{"width": w, "seed": s} for w in (5, 40) for s in (0, 1)]
    matrix = np.array([[0, 1, 5, 5], [1, 0, 5, 5], [5, 5, 0, 2], [5, 5, 2, 0]], dtype=float)
    found = DistanceMatrix(("x",), "x", ["a", "b", "c", "d"], records, matrix)
    summary = {(a, b): (mean, n) for a, b, mean, _, n in block_summary(found, "width")}
    assert summary == {("5", "5"): (1.0, 1), ("5", "40"): (5.0, 4), ("40", "40"): (2.0, 1)}
    # 2 of the 3 ways to split four spectra into two pairs mix the widths: only the true split is as far apart
    assert separation(found, "width", "5", "40") == pytest.approx(1 / 3, abs=0.03)
    assert np.isnan(separation(found, "width", "5", "5"))


def test_runs_never_refined_have_no_after_refinement_and_predict_the_gap_right_after(tmp_path: Path) -> None:
    """schedule.finetune=0it runs end where they pruned: their "final" metrics are the pruned network's again."""
    from koopsweep.report.dynamics import predictor_sets
    from koopsweep.report.dynamics_figures import shown_targets
    from koopsweep.report.dynamics_tables import _correlations_md

    with (tmp_path / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        for method in ("kmp", "gmp"):
            for epoch in SHIFT:
                for seed in (0, 1):
                    values = row(method, 2.0, epoch, seed)
                    writer.writerow(values | {"end_iteration": values["prune_at"]})
    lines = [json.dumps(spectrum(epoch, seed)) for seed in (0, 1) for epoch in SHIFT]
    (tmp_path / "spectra.jsonl").write_text("\n".join(lines) + "\n")
    collection = read_table(tmp_path)
    assert all(r["final_acc"] is None and r["pruned_acc"] is not None for r in collection.rows)
    (pset,) = predictor_sets(collection.rows, collection.spectra, ["experiment", "model", "dataset"])
    assert shown_targets(pset) == ("overlap", "pruned_gap")
    one = next(f for f in pset.fits if f["seed"] == 0 and f["prune_step"] == "1ep")
    assert one["final_gap"] is None and one["pruned_gap"] == pytest.approx(0.4)
    data = Data(collection.rows, collection.spectra, ["experiment", "model", "dataset"], list(DEFAULT_LABELS))
    with matplotlib.rc_context(RC):
        assert not isinstance(koopman_predictors(data), str)
    table = "\n".join(_correlations_md(pset))  # no all-empty "after refinement" column
    assert "after refinement" not in table and table.count("| ρ / r / p:") == 2 and "right after pruning" in table


def test_a_figure_of_runs_never_refined_has_no_after_refinement_row() -> None:
    from koopsweep.report.figures import STAGES, stages

    unrefined = [{"pruned_acc": 0.5, "final_acc": None}, {"pruned_acc": 0.4, "final_acc": None}]
    assert stages(unrefined) == STAGES[:1]
    assert stages([*unrefined, {"pruned_acc": 0.5, "final_acc": 0.9}]) == STAGES


def test_an_unrefined_group_beside_refined_ones_says_so_in_its_panel() -> None:
    from matplotlib.figure import Figure

    from koopsweep.report.figures import _not_refined

    ax = Figure().subplots()
    assert not _not_refined(ax, [{"final_acc": 0.9}], "final_acc", "after refinement")
    assert _not_refined(ax, [{"final_acc": None}], "final_acc", "after refinement")
    assert "not refined here" in ax.texts[0].get_text() and ax.get_title() == "after refinement"
