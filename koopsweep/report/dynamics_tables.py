"""The tables of the training-dynamics figures: spectral_distances.csv, predictors.csv and dynamics.md.

Written beside the figures whenever a report holds two or more Koopman spectra in one group, so the numbers behind
the heat map and the correlations can be read, diffed and cited without the figures.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from koopsweep.report.collect import Row
from koopsweep.report.dynamics import (
    NEAR_ONE,
    PREDICTORS,
    TARGETS,
    DistanceMatrix,
    PredictorSet,
    block_summary,
    converged_distances,
    distance_matrices,
    label_value,
    predictor_sets,
    separation,
    strongest,
)
from koopsweep.report.labels import group_title, step_label
from koopsweep.report.stats import group

DISTANCES_CSV, PREDICTORS_CSV, DYNAMICS_MD = "spectral_distances.csv", "predictors.csv", "dynamics.md"

INTRO = f"""# Training dynamics: Koopman spectra compared

Spectral distance: the Wasserstein distance between two fits' DMD eigenvalues as points in the complex plane, the
mean |λ − μ| over the one-to-one matching that minimises it (Redman et al. 2024; for sets of different sizes only
the smaller is matched). See docs/koopman.md and docs/report.md. Predictors are read off the fit before pruning:
|λ* − 1|, ‖θ* − θ(t)‖/‖θ(t)‖, the spectral gap |λ₂ − 1| − |λ* − 1|, the share of eigenvalues within {NEAR_ONE:g} of 1
and the distance to the trunk's converged (latest) spectrum; the pruning time is the naive baseline. Targets are
averaged over the amounts removed at each fit. ρ: Spearman's rank correlation, r: Pearson's, p: two-sided
permutation p-value of ρ.
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: a literal | (as in |λ* − 1|) would end the cell."""
    return text.replace("|", "\\|")


def _signed(value: float) -> str:
    return "–" if not np.isfinite(value) else f"{value:+.2f}"


def _matrix_md(found: DistanceMatrix) -> list[str]:
    lines = ["| | " + " | ".join(found.labels) + " |", "|---" * (len(found.labels) + 1) + "|"]
    for label, row in zip(found.labels, found.matrix):
        lines.append(f"| **{label}** | " + " | ".join(f"{v:.3g}" for v in row) + " |")
    return lines


def _blocks_md(found: DistanceMatrix, by: str) -> list[str]:
    lines = [
        f"Between and within values of `{by}` (mean ± std over pairs; p: permutation p-value that the two values "
        "are further apart than the spectra within each):",
        "",
        f"| {by} | {by} | distance | pairs | p |",
        "|---|---|---|---|---|",
    ]
    for a, b, mean, std, n in block_summary(found, by):
        p = "" if a == b else _fmt(separation(found, by, a, b), 2)
        lines.append(f"| {a} | {b} | {mean:.4g} ± {std:.2g} | {n} | {p} |")
    return lines


def _converged_md(spectra: Sequence[Row], keys: Sequence[str], key: tuple[Any, ...]) -> list[str]:
    distances = converged_distances(spectra, keys)
    records = [s for s in spectra if (*[s.get(k) for k in keys], s.get("trunk_id"), s.get("prune_at")) in distances]
    records = [r for r in records if tuple(r.get(k) for k in keys) == key]
    if not records:
        return []
    seeds = sorted({str(r.get("seed")) for r in records})
    lines = ["Distance of each pruning time's spectrum to the trunk's latest one:", ""]
    lines += ["| pruning time | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---" * (len(seeds) + 1) + "|"]
    for _, cell in group(records, ["prune_epoch"]).items():
        by_seed = {str(r.get("seed")): distances[(*key, r["trunk_id"], r["prune_at"])] for r in cell}
        lines.append(f"| {step_label(cell[0])} | " + " | ".join(_fmt(by_seed.get(s)) for s in seeds) + " |")
    return lines


def _correlations_md(pset: PredictorSet) -> list[str]:
    head = " | ".join(f"ρ / r / p: {_cell(label)}" for _, label in pset.targets)
    lines = [
        f"Predictors of {pset.method.upper()} ≡ {pset.reference.upper()} over {len(pset.fits)} fits:",
        "",
        f"| scalar | {head} |",
        "|---" * (len(pset.targets) + 1) + "|",
    ]
    for predictor, label, _ in PREDICTORS:
        cells = []
        for target, _ in pset.targets:
            c = pset.correlations[(predictor, target)]
            cells.append(f"{_signed(c.spearman)} / {_signed(c.pearson)} / {_fmt(c.p_value, 2)}")
        lines.append(f"| {_cell(label)} | " + " | ".join(cells) + " |")
    best = strongest(pset, "overlap")
    if best is not None:
        name = dict((p, label) for p, label, _ in PREDICTORS)[best[0]]
        rho, n = best[1].spearman, best[1].n
        lines += ["", f"Strongest rank correlation with the overlap: {name} (ρ = {rho:+.2f}, n = {n})."]
    return lines


def dynamics_markdown(
    matrices: Sequence[DistanceMatrix],
    sets: Sequence[PredictorSet],
    spectra: Sequence[Row],
    keys: Sequence[str],
    labels: Sequence[str],
) -> str:
    """dynamics.md: per group, the distance matrix, its blocks, the distances to convergence, the correlations."""
    lines = [INTRO]
    for found in matrices:
        key = found.key
        lines += [f"## {group_title(keys, key)}", "", f"Pairwise spectral distances ({' · '.join(labels)}):", ""]
        lines += _matrix_md(found) + [""]
        if len(labels) > 1:
            lines += _blocks_md(found, labels[0]) + [""]
        converged = _converged_md(spectra, keys, key)
        lines += converged + ([""] if converged else [])
        for pset in (s for s in sets if s.key == key):
            lines += _correlations_md(pset) + [""]
    return "\n".join(lines)


def _write_csv(path: Path, header: Sequence[str], body: Sequence[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return path


def write_dynamics(
    rows: Sequence[Row], spectra: Sequence[Row], out: Path, keys: Sequence[str], labels: Sequence[str]
) -> list[Path]:
    """Write dynamics.md, spectral_distances.csv and (for timing sweeps) predictors.csv; the paths written."""
    matrices = distance_matrices(spectra, keys, labels)
    if not matrices:
        return []
    sets = predictor_sets([r for r in rows if r.get("status") == "finished"], spectra, keys)
    written = [out / DYNAMICS_MD]
    written[0].write_text(dynamics_markdown(matrices, sets, spectra, keys, labels), encoding="utf-8")
    body = []
    for found in matrices:
        for i, a in enumerate(found.records):
            for j in range(i + 1, len(found.records)):
                b = found.records[j]
                names = [label_value(a, k) for k in labels] + [label_value(b, k) for k in labels]
                body.append([*found.key, *names, a.get("trunk_id"), b.get("trunk_id"), f"{found.matrix[i, j]:.6g}"])
    header = [*keys, *(f"a_{k}" for k in labels), *(f"b_{k}" for k in labels), "a_trunk_id", "b_trunk_id", "distance"]
    written.append(_write_csv(out / DISTANCES_CSV, header, body))
    if sets:
        columns = ["trunk_id", "seed", "prune_step", "prune_epoch", "eigenvalues"]
        columns += [p for p, _, _ in PREDICTORS if p != "prune_epoch"] + [t for t, _ in TARGETS]
        lines = [[*s.key, s.method, s.reference, *(_fmt(f.get(c), 6) for c in columns)] for s in sets for f in s.fits]
        written.append(_write_csv(out / PREDICTORS_CSV, [*keys, "method", "reference", *columns], lines))
    return written
