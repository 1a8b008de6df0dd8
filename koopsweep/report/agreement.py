"""When do a Koopman method and its baseline agree? Overlap and accuracy gaps per pruning time and amount.

The paper's claims are equivalences (KMP = GMP once training has converged, KGP ≈ GGP); here they are measured:
for each pruning time and compression, the share of removed weights the two masks have in common and the accuracy
difference of runs paired by seed, right after pruning and after refinement. The *agreement time* is the earliest
pruning time from which every later one meets the criterion at every compression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from koopsweep.report.collect import Row, number
from koopsweep.report.labels import group_title, level, level_label, step_label
from koopsweep.report.stats import group, mean_std

PAIRS = (("kmp", "gmp"), ("kgp", "ggp"))
MIN_OVERLAP = 0.99  # share of removed weights in common
MAX_GAP = 0.002  # accuracy difference (0.2 points)


@dataclass(frozen=True)
class Cell:
    """Mean, std and count over seeds of one figure at one (pruning time, amount)."""

    mean: float
    std: float
    n: int

    def text(self, scale: float) -> str:
        digits = 2 if scale != 1 else 4
        value = f"{self.mean * scale:.{digits}f}"
        return value if self.n == 1 else f"{value} ± {self.std * scale:.{digits}f}"


@dataclass
class Agreement:
    """Overlap and gaps of one method against its reference within one group."""

    method: str
    reference: str
    times: list[tuple[float, str]]  # (epoch, label)
    levels: list[tuple[float, str]]  # (amount, label)
    overlap: dict[tuple[float, float], Cell]
    gap_pruned: dict[tuple[float, float], Cell]
    gap_final: dict[tuple[float, float], Cell]

    @property
    def refined(self) -> bool:
        """Whether any pair was refined; runs never refined (schedule.finetune=0it) are judged right after pruning."""
        return bool(self.gap_final)

    def agrees_at(self, epoch: float) -> bool:
        for amount, _ in self.levels:
            o, p, f = (table.get((epoch, amount)) for table in (self.overlap, self.gap_pruned, self.gap_final))
            if o is None or p is None or (f is None and self.refined):
                return False
            if o.mean < MIN_OVERLAP or abs(p.mean) > MAX_GAP or (f is not None and abs(f.mean) > MAX_GAP):
                return False
        return True

    def agreement_time(self) -> tuple[float, str] | None:
        """The earliest pruning time from which this and every later time agree; None if the last does not."""
        found = None
        for epoch, label in reversed(self.times):
            if not self.agrees_at(epoch):
                break
            found = (epoch, label)
        return found


def _cell(xs: Sequence[float]) -> Cell | None:
    stats = mean_std(list(xs))
    return None if stats is None else Cell(*stats)


def measure(rows: Sequence[Row], method: str, reference: str) -> Agreement | None:
    """The Agreement of ``method`` against ``reference`` among ``rows`` (one group), or None without pairs."""
    mine = [r for r in rows if r["method"] == method and level(r) is not None and number(r["prune_epoch"])]
    theirs = {(r["trunk_id"], r["prune_at"], level(r)): r for r in rows if r["method"] == reference}
    if not mine or not theirs:
        return None
    overlap: dict[tuple[float, float], list[float]] = {}
    gaps: dict[str, dict[tuple[float, float], list[float]]] = {"pruned_acc": {}, "final_acc": {}}
    times, levels = {}, {}
    for r in mine:
        key = (float(r["prune_epoch"]), float(level(r)))
        times[key[0]] = step_label(r)
        levels[key[1]] = level_label(r)
        share = number(r.get(f"overlap_{reference}"))
        if share is not None:
            overlap.setdefault(key, []).append(share)
        other = theirs.get((r["trunk_id"], r["prune_at"], level(r)))
        for column, table in gaps.items():
            a, b = number(r[column]), None if other is None else number(other[column])
            if a is not None and b is not None:
                table.setdefault(key, []).append(a - b)
    if not any(gaps["pruned_acc"].values()):
        return None

    def cells(table: dict[tuple[float, float], list[float]]) -> dict[tuple[float, float], Cell]:
        return {k: c for k, v in table.items() if (c := _cell(v)) is not None}

    return Agreement(
        method,
        reference,
        sorted(times.items()),
        sorted(levels.items()),
        cells(overlap),
        cells(gaps["pruned_acc"]),
        cells(gaps["final_acc"]),
    )


def markdown(title: str, agreement: Agreement) -> list[str]:
    """The section of summary.md: the verdict, then overlap and both gaps as time × compression tables."""
    a = agreement
    name = f"{a.method.upper()} vs {a.reference.upper()}"
    when = a.agreement_time()
    stages = "right after pruning and after refinement" if a.refined else "right after pruning (no run was refined)"
    criterion = (
        f"overlap ≥ {100 * MIN_OVERLAP:g} % and |Δ accuracy| ≤ {100 * MAX_GAP:g} points {stages}, at every compression"
    )
    verdict = (
        f"agree from **{when[1]}** on ({criterion}, at that and every later pruning time)"
        if when
        else f"do not agree at the last pruning time ({criterion})"
    )
    out = ["", f"## Agreement: {title}, {name}", "", f"{name}: {verdict}."]
    header = ["pruned at", *(label for _, label in a.levels)]
    tables = [
        ("Overlap of the removed sets (%)", a.overlap, 100.0),
        (f"{name} accuracy right after pruning (points)", a.gap_pruned, 100.0),
        (f"{name} accuracy after refinement (points)", a.gap_final, 100.0),
    ]
    for heading, table, scale in tables if a.refined else tables[:2]:
        lines = [
            [
                label,
                *((table[(epoch, amount)].text(scale) if (epoch, amount) in table else "–") for amount, _ in a.levels),
            ]
            for epoch, label in a.times
        ]
        out += [
            "",
            f"{heading}, mean ± std over seeds:",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
            *("| " + " | ".join(x) + " |" for x in lines),
        ]
    return out


def agreement_sections(rows: Sequence[Row], keys: Sequence[str]) -> list[str]:
    """Every (group, pair) with runs at 2+ pruning times, as summary.md sections."""
    out: list[str] = []
    for key, cell in group(rows, keys).items():
        if len({r["prune_epoch"] for r in cell}) < 2:
            continue
        for method, reference in PAIRS:
            found = measure(cell, method, reference)
            if found is not None:
                out += markdown(group_title(keys, key), found)
    return out
