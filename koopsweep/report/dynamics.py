"""Training dynamics compared through their Koopman spectra, and whether a spectrum predicts KMP ≡ GMP.

From the spectra a report keeps (spectra.jsonl) and its rows (runs.csv), with nothing re-fitted:

- pairwise spectral distances (koopsweep.koopman.spectral) within each report group, every spectrum labelled by
  the keys the user names (``--distance-by``: pruning time, seed, a model setting, ...);
- the distance of each pruning time's spectrum to the converged one (the same trunk's latest pruning time);
- per fit (trunk, pruning time), scalars read off the spectrum and the fit alone, set against the mask overlap of
  a Koopman method with its baseline (KMP/GMP, KGP/GGP) and their accuracy gaps, with rank correlations.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from koopsweep.koopman.spectral import NEAR_ONE, distance_matrix, mass_near_one, spectral_distance, spectral_gap
from koopsweep.report.collect import Row, number
from koopsweep.report.correlation import Correlation, correlate
from koopsweep.report.figure_data import DEFAULT_LABELS  # noqa: F401  (re-exported: how spectra are named)
from koopsweep.report.labels import group_title, step_label
from koopsweep.report.stats import group, sort_key

MIN_FITS = 4  # fits (trunk × pruning time, two times at least) below which a correlation says nothing
PAIRS = (("kmp", "gmp"), ("kgp", "ggp"))  # a Koopman method and the baseline it is claimed to match

# (key, label, log axis): what a fit offers before any pruning is done; the pruning time is the naive baseline.
PREDICTORS: tuple[tuple[str, str, bool], ...] = (
    ("prune_epoch", "pruning time (epochs)", True),
    ("distance_to_1", "|λ* − 1|", True),
    ("fixed_point_distance", "‖θ* − θ(t)‖ / ‖θ(t)‖", True),
    ("spectral_gap", "spectral gap |λ₂ − 1| − |λ* − 1|", True),
    ("mass_near_one", f"share of |λ − 1| < {NEAR_ONE:g}", False),
    ("distance_to_converged", "spectral distance to converged", True),
)
# (key, label): what the equivalence is measured by, averaged over the amounts removed at that fit.
TARGETS: tuple[tuple[str, str], ...] = (
    ("overlap", "mask overlap (%)"),
    ("final_gap", "|accuracy gap| after refinement (points)"),
    ("pruned_gap", "|accuracy gap| right after pruning (points)"),
)


def eigenvalues(record: Row) -> np.ndarray:
    """A spectrum record's eigenvalues as a complex array."""
    return np.asarray(record["re"], dtype=float) + 1j * np.asarray(record["im"], dtype=float)


def label_value(record: Row, key: str) -> str:
    """How one label key of a spectrum reads: the pruning time as configured, else the value."""
    if key == "prune_step":
        return step_label(record)
    value = record.get(key)
    return f"{value:g}" if isinstance(value, float) else str(value)


def label_of(record: Row, labels: Sequence[str]) -> str:
    return " · ".join(label_value(record, k) for k in labels)


def _order(record: Row, labels: Sequence[str]) -> tuple[Any, ...]:
    """Label keys in reading order: pruning times by epoch, not as text ('100it' after '50it')."""
    keys = [("prune_epoch" if k in ("prune_step", "prune_at") else k) for k in labels]
    return tuple(sort_key(record.get(k)) for k in (*keys, "trunk_id", "prune_epoch"))


def ordered(spectra: Sequence[Row], labels: Sequence[str]) -> list[Row]:
    return sorted(spectra, key=lambda r: _order(r, labels))


# ------------------------------------------------------------------------------------------ pairwise distances
@dataclass(frozen=True)
class DistanceMatrix:
    """The pairwise spectral distances of one report group's spectra, in label order."""

    key: tuple[Any, ...]
    title: str
    labels: list[str]
    records: list[Row]
    matrix: np.ndarray


def distance_matrices(
    spectra: Sequence[Row], keys: Sequence[str], labels: Sequence[str], nearest: int | None = None
) -> list[DistanceMatrix]:
    """One matrix per group with at least two spectra."""
    out = []
    for key, records in group(spectra, keys).items():
        if len(records) < 2:
            continue
        records = ordered(records, labels)
        matrix = distance_matrix([eigenvalues(r) for r in records], nearest)
        out.append(DistanceMatrix(key, group_title(keys, key), [label_of(r, labels) for r in records], records, matrix))
    return out


def block_summary(matrix: DistanceMatrix, by: str) -> list[tuple[str, str, float, float, int]]:
    """(a, b, mean, std, count) of the distances between spectra whose ``by`` values are a and b (a = b: within
    one value, e.g. across seeds of one width), in label order."""
    values = [label_value(r, by) for r in matrix.records]
    names = list(dict.fromkeys(values))
    buckets: dict[tuple[str, str], list[float]] = {}
    for p in range(len(values)):
        for q in range(p + 1, len(values)):
            a, b = sorted((values[p], values[q]), key=names.index)
            buckets.setdefault((a, b), []).append(float(matrix.matrix[p, q]))
    out = []
    for (a, b), cells in sorted(buckets.items(), key=lambda item: tuple(names.index(v) for v in item[0])):
        arr = np.asarray(cells)
        out.append((a, b, float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0, int(arr.size)))
    return out


def separation(matrix: DistanceMatrix, by: str, a: str, b: str, permutations: int = 5000, seed: int = 0) -> float:
    """Permutation p-value that spectra labelled a and b are further apart than spectra within a and within b.

    Statistic: mean distance between the two sets minus the mean distance within them; the labels of the spectra
    of a and b are shuffled ``permutations`` times (seeded). Small p: the two values of ``by`` (two widths, say)
    give dynamics the seeds do not explain — the paper's "non-conjugate"."""
    values = [label_value(r, by) for r in matrix.records]
    index = [i for i, v in enumerate(values) if v in (a, b)]
    sub = matrix.matrix[np.ix_(index, index)]
    labels = np.array([values[i] == a for i in index])
    if a == b or labels.all() or not labels.any() or min(labels.sum(), (~labels).sum()) < 2:
        return float("nan")
    upper = np.triu(np.ones_like(sub, dtype=bool), 1)

    def statistic(first: np.ndarray) -> float:
        between = first[:, None] != first[None, :]
        return float(sub[between & upper].mean() - sub[~between & upper].mean())

    observed = statistic(labels)
    rng = np.random.default_rng(seed)
    hits = sum(statistic(rng.permutation(labels)) >= observed - 1e-15 for _ in range(permutations))
    return (1 + hits) / (permutations + 1)


# ------------------------------------------------------------------------------------------ against convergence
def converged_distances(spectra: Sequence[Row], keys: Sequence[str]) -> dict[tuple[Any, ...], float]:
    """(group…, trunk, prune_at) → distance of that fit's spectrum to its trunk's latest one in the group.

    Only trunks fitted at two or more times; the latest fit itself is at distance 0.
    """
    out: dict[tuple[Any, ...], float] = {}
    for key, records in group(spectra, [*keys, "trunk_id"]).items():
        if len({r.get("prune_at") for r in records}) < 2:
            continue
        reference = max(records, key=lambda r: r.get("prune_at") or 0)
        ref = eigenvalues(reference)
        for r in records:
            out[(*key, r.get("prune_at"))] = spectral_distance(eigenvalues(r), ref)
    return out


# ------------------------------------------------------------------------------------------ predictors
@dataclass
class PredictorSet:
    """The fits of one group where a Koopman method and its baseline were both run: scalars and targets."""

    key: tuple[Any, ...]
    title: str
    method: str
    reference: str
    fits: list[Row] = field(default_factory=list)

    @property
    def refined(self) -> bool:
        """Whether any pair of runs was refined: without it (schedule.finetune=0it) there is no gap after refinement."""
        return any(fit.get("final_gap") is not None for fit in self.fits)

    @property
    def targets(self) -> tuple[tuple[str, str], ...]:
        """The targets these fits measure: all of TARGETS, less the gap after refinement where nothing was refined."""
        return TARGETS if self.refined else tuple(t for t in TARGETS if t[0] != "final_gap")

    @functools.cached_property
    def correlations(self) -> dict[tuple[str, str], Correlation]:
        """(predictor, target) → correlation over the fits."""
        out = {}
        for p, _, _ in PREDICTORS:
            for t, _ in TARGETS:
                x = [np.nan if f.get(p) is None else f[p] for f in self.fits]
                y = [np.nan if f.get(t) is None else f[t] for f in self.fits]
                out[(p, t)] = correlate(x, y)
        return out


def _mean(xs: Sequence[float | None]) -> float | None:
    kept = [x for x in xs if x is not None]
    return float(np.mean(kept)) if kept else None


def _targets(mine: Sequence[Row], theirs: Sequence[Row], reference: str) -> dict[str, float | None]:
    """Overlap (%) and |accuracy gaps| (points), each averaged over the amounts removed, paired by amount."""
    by_level = {(r.get("compression_target"), r.get("fraction")): r for r in theirs}
    gaps: dict[str, list[float | None]] = {"final_gap": [], "pruned_gap": []}
    for r in mine:
        other = by_level.get((r.get("compression_target"), r.get("fraction")))
        for target, column in (("final_gap", "final_acc"), ("pruned_gap", "pruned_acc")):
            a, b = number(r.get(column)), number(other.get(column)) if other else None
            gaps[target].append(None if a is None or b is None else 100 * abs(a - b))
    overlap = _mean([number(r.get(f"overlap_{reference}")) for r in mine])
    return {"overlap": None if overlap is None else 100 * overlap, **{k: _mean(v) for k, v in gaps.items()}}


def predictor_sets(rows: Sequence[Row], spectra: Sequence[Row], keys: Sequence[str]) -> list[PredictorSet]:
    """Per group and (Koopman method, baseline) pair run there: one entry per fit with a spectrum."""
    finished = [r for r in rows if r.get("status") == "finished"]
    fits = {k: v[0] for k, v in group(spectra, [*keys, "trunk_id", "prune_at"]).items()}
    to_converged = converged_distances(spectra, keys)
    out = []
    for key, runs in group(finished, keys).items():
        for method, reference in PAIRS:
            cells = group([r for r in runs if r["method"] in (method, reference)], ["trunk_id", "prune_at"])
            pset = PredictorSet(key, group_title(keys, key), method, reference)
            for (trunk, prune_at), cell in cells.items():
                mine = [r for r in cell if r["method"] == method]
                theirs = [r for r in cell if r["method"] == reference]
                record = fits.get((*key, trunk, prune_at))
                if not mine or not theirs or record is None:
                    continue
                lam = eigenvalues(record)
                pset.fits.append(
                    {
                        "trunk_id": trunk,
                        "seed": mine[0].get("seed"),
                        "prune_at": prune_at,
                        "prune_step": mine[0].get("prune_step"),
                        "prune_epoch": number(mine[0].get("prune_epoch")),
                        "distance_to_1": number(mine[0].get("koopman_distance_to_1")),
                        "fixed_point_distance": number(mine[0].get("koopman_fixed_point_distance")),
                        "spectral_gap": spectral_gap(lam),
                        "mass_near_one": mass_near_one(lam, NEAR_ONE),
                        "distance_to_converged": to_converged.get((*key, trunk, prune_at)),
                        "eigenvalues": int(lam.size),
                        **_targets(mine, theirs, reference),
                    }
                )
            if len(pset.fits) >= MIN_FITS and len({f["prune_at"] for f in pset.fits}) >= 2:
                out.append(pset)
    return out


def strongest(pset: PredictorSet, target: str) -> tuple[str, Correlation] | None:
    """The predictor with the largest |ρ| for ``target`` (the pruning time included)."""
    found = [(p, c) for (p, t), c in pset.correlations.items() if t == target and np.isfinite(c.spearman)]
    return max(found, key=lambda item: abs(item[1].spearman)) if found else None
