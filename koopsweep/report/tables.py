"""runs.csv (one row per run, for any other tool) and summary.md (mean ± std over seeds, the figures, the failures)."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from pathlib import Path

from koopsweep.report.agreement import agreement_sections
from koopsweep.report.collect import Collection, Row
from koopsweep.report.figures import FigureResult
from koopsweep.report.labels import group_title, level, level_label, time_label
from koopsweep.report.stats import group, mean_std, one_per, values
from koopsweep.report.style import method_style

# (column, header, scale): the per-cell statistics of summary.md; accuracies and overlaps in %.
SUMMARY_STATS: tuple[tuple[str, str, float], ...] = (
    ("compression", "compression (×)", 1.0),
    ("pruned_acc", "acc. before refinement (%)", 100.0),
    ("final_acc", "acc. after refinement (%)", 100.0),
    ("overlap_gmp", "overlap with GMP (%)", 100.0),
    ("overlap_ggp", "overlap with GGP (%)", 100.0),
)


def write_csv(rows: Sequence[Row], columns: Sequence[str], path: Path) -> Path:
    """Every run as one line; empty cells for missing values."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    return path


def mean_pm_std(rows: Sequence[Row], column: str, scale: float = 1.0) -> str:
    """'97.12 ± 0.15' over the rows (seeds), the bare mean for one run, '–' when none has the value."""
    stats = mean_std(values(rows, column))
    if stats is None:
        return "–"
    digits = 2 if scale != 1.0 or stats[0] >= 10 else 3
    mean = f"{stats[0] * scale:.{digits}f}"
    return mean if stats[2] == 1 else f"{mean} ± {stats[1] * scale:.{digits}f}"


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(x) + " |" for x in lines)]


def results_tables(rows: Sequence[Row], keys: Sequence[str]) -> list[str]:
    """One section per group and pruning time: a line per (method, fraction) with mean ± std over seeds."""
    stats = [s for s in SUMMARY_STATS if values(rows, s[0])]
    out: list[str] = []
    for key, cell in group(rows, [*keys, "prune_epoch"]).items():
        it = cell[0]["prune_at"]
        out += ["", f"## {group_title(keys, key[:-1])}, {time_label(cell)}" + (f", iteration {it}" if it else ""), ""]
        dense = one_per(cell, "trunk_id")
        out.append(f"Dense network: test accuracy {mean_pm_std(dense, 'dense_acc', 100)} % (n = {len(dense)} trunks).")
        lines = []
        for (method, _), runs in group([{**r, "level": level(r)} for r in cell], ["method", "level"]).items():
            fraction = mean_std(values(runs, "fraction"))
            frac = "–" if fraction is None else f"{fraction[0]:.4g}"
            cols = [mean_pm_std(runs, column, scale) for column, _, scale in stats]
            lines.append([method_style(str(method))["label"], level_label(runs[0]), frac, *cols, str(len(runs))])
        out += ["", *_table(["method", "amount", "fraction removed", *(h for _, h, _ in stats), "n"], lines)]
    return out


def describe_counts(collection: Collection) -> str:
    """'25 runs (24 finished, 1 diverged)'."""
    counts = collection.status_counts()
    parts = [f"{counts.get('finished', 0)} finished"]
    parts += [f"{n} {status}" for status, n in sorted(counts.items()) if status != "finished"]
    return f"{len(collection.rows)} runs ({', '.join(parts)})"


def summary_markdown(collection: Collection, keys: Sequence[str], figures: Sequence[FigureResult]) -> str:
    """The whole summary.md: provenance, figures (embedded) and skipped ones, result tables, failures."""
    roots = ", ".join(f"`{r.name if r.is_absolute() else r.as_posix()}`" for r in collection.roots)
    lines = [
        "# koopsweep report",
        "",
        f"Made {time.strftime('%Y-%m-%d %H:%M:%S')} from {collection.files} {collection.source} under {roots}.",
        "",
        f"- {describe_counts(collection)}; only finished runs enter tables and figures",
        f"- unreadable files skipped: {len(collection.unreadable)}",
        f"- older results of re-run cells ignored (same branch id): {len(collection.superseded)}",
        f"- grouped by: {', '.join(keys) or 'nothing'}; mean ± sample std over the n runs (seeds) of each cell",
        "",
        "## Figures",
        "",
    ]
    for fig in figures:
        if fig.path is None:
            lines.append(f"- skipped **{fig.name}**: {fig.note}")
        elif fig.path.suffix == ".pdf":
            lines.append(f"- [{fig.name}]({fig.path.name}): {fig.note}")
        else:
            lines += [f"**{fig.name}**: {fig.note}", "", f"![{fig.name}]({fig.path.name})", ""]
    finished = [r for r in collection.rows if r["status"] == "finished"]
    lines += agreement_sections(finished, keys)
    lines += results_tables(finished, keys)
    others = [r for r in collection.rows if r["status"] != "finished"]
    if others:
        lines += ["", "## Runs that did not finish", ""]
        rows = [
            [
                str(r["status"]),
                str(r["experiment"]),
                str(r["method"]),
                str(r["fraction"]),
                str(r["prune_step"]),
                str(r["seed"]),
                f"`{r['path']}`",
            ]
            for r in others
        ]
        lines += _table(["status", "experiment", "method", "fraction", "pruned at", "seed", "path"], rows)
    if collection.unreadable:
        lines += [
            "",
            "## Unreadable files",
            "",
            *(f"- `{collection.shown(p)}`: {why}" for p, why in collection.unreadable),
        ]
    return "\n".join(lines) + "\n"
