"""The paper's figures (and the training-dynamics ones of koopsweep.report.dynamics_figures) from the rows of
runs.csv; each is drawn only when its data exist, otherwise says why not.

Every builder takes the finished rows, the Koopman spectra and the ``--group-by`` keys (a ``Data``) and returns a
figure, or a one-line reason. Amounts are ShrinkBench's compression targets where runs set ``pruner.compression``
(the paper's x axis), else the fraction of prunable weights removed; pruning times sit on a logarithmic axis so that
50 iterations and 20 epochs read on one figure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from koopsweep.report.agreement import MAX_GAP, MIN_OVERLAP
from koopsweep.report.collect import Row, number
from koopsweep.report.dynamics_figures import koopman_predictors, spectral_distance_matrix, spectral_distance_vs_time
from koopsweep.report.figure_data import DEFAULT_LABELS, Built, Data
from koopsweep.report.labels import TIME_AXIS, group_title, level, level_label, time_label, time_ticks
from koopsweep.report.plot import figure_of_blocks, line_with_band, panel_grid, panel_list, save
from koopsweep.report.spectrum import draw_spectrum, near_one
from koopsweep.report.stats import Curve, curve, group, mean_std, one_per, values
from koopsweep.report.style import DENSE, RC, gap_axis, log2_axis, method_style, time_axis

STAGES = (("pruned_acc", "right after pruning"), ("final_acc", "after refinement"))
ACC_AXIS = "test accuracy (%)"
GAP_PAIRS = (("kmp", "gmp"), ("kgp", "ggp"))  # a Koopman method and the baseline it is claimed to match
MAX_TIMES_PER_COMPRESSION_FIGURE = 3  # groups pruned at more times are shown against time instead
SPECTRUM_TIMES = 4  # pruning times shown in the complex plane per group
PERCENT = (0.0, 100.0)  # accuracies and overlaps in %: their bands stop at the range


@dataclass(frozen=True)
class FigureResult:
    """A figure written (path set, note says what it shows) or skipped (path None, note says why)."""

    name: str
    path: Path | None
    note: str


# ----------------------------------------------------------------------------------------------------- helpers
def _with_level(rows: Sequence[Row]) -> list[Row]:
    return [{**r, "level": level(r)} for r in rows if level(r) is not None]


def _has_accuracy(row: Row) -> bool:
    return number(row["pruned_acc"]) is not None or number(row["final_acc"]) is not None


def stages(rows: Sequence[Row]) -> tuple[tuple[str, str], ...]:
    """The accuracy stages drawn: "after refinement" only where some run was refined (schedule.finetune=0it runs
    have none, koopsweep.report.collect.drop_unrefined_final), so a figure of unrefined runs has no empty row."""
    shown = tuple(s for s in STAGES if any(number(r.get(s[0])) is not None for r in rows))
    return shown or STAGES[:1]


def _not_refined(ax: Axes, rows: Sequence[Row], column: str, title: str) -> bool:
    """Where no run of a panel has ``column`` (an unrefined group beside refined ones), say so instead of axes."""
    if any(number(r.get(column)) is not None for r in rows):
        return False
    ax.set_title(title)
    ax.text(0.5, 0.5, "not refined here\n(schedule.finetune=0it)", ha="center", va="center", color="0.4",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    return True


def _pruned(rows: Sequence[Row]) -> list[Row]:
    return [r for r in rows if r["method"] != "none" and level(r) and number(r["prune_epoch"])]


def _timed_panels(groups: dict[tuple[Any, ...], list[Row]]) -> dict[tuple[Any, ...], list[Row]]:
    """Only the panels with at least two pruning times: a curve over time needs a timing sweep."""
    return {k: v for k, v in groups.items() if len({r["prune_epoch"] for r in v}) >= 2}


def _single_time(rows: Sequence[Row]) -> str:
    times = sorted({r["prune_epoch"] for r in rows if r["prune_epoch"] is not None})
    shown = ", ".join(f"{t:.3g}" for t in times[:4]) + (" …" if len(times) > 4 else "")
    return f"needs 2+ pruning times within one group, each group has one (at {shown} ep): run a timing sweep"


def _level_colours(rows: Sequence[Row]) -> Callable[[float], Any]:
    levels = sorted(set(values(rows, "level")))
    cmap = matplotlib.colormaps["viridis"]
    return lambda v: cmap(0.85 * levels.index(v) / max(len(levels) - 1, 1))


def _label_time_axis(ax: Axes, rows: Sequence[Row]) -> None:
    time_axis(ax, time_ticks(rows))
    ax.set_xlabel(TIME_AXIS)


# ----------------------------------------------------------------------------------------------------- figures
def accuracy_vs_compression(data: Data) -> Built:
    """Paper, converged networks: accuracy of each method against compression, before and after refinement."""
    usable = [r for r in _with_level(_pruned(data.rows)) if _has_accuracy(r)]
    if not usable:
        return "no finished pruned run with an amount removed and an accuracy"
    keys = data.keys
    shown = {
        k: v
        for k, v in group(usable, keys).items()
        if len({r["prune_epoch"] for r in v}) <= MAX_TIMES_PER_COMPRESSION_FIGURE
    }
    if not shown:
        return (
            f"every group was pruned at more than {MAX_TIMES_PER_COMPRESSION_FIGURE} times: see accuracy_vs_time "
            "and accuracy_gap_vs_time"
        )
    cells = group([r for rows in shown.values() for r in rows], [*keys, "prune_epoch"])
    titles = [f"{group_title(keys, key[:-1])}, {time_label(cell)}" for key, cell in cells.items()]
    drawn = stages([r for rows in shown.values() for r in rows])
    fig, axes = panel_grid(len(cells), len(drawn), "Test accuracy vs compression (mean ± std over seeds)", titles)
    for ax_row, cell in zip(axes, cells.values()):
        dense = mean_std(values(one_per(cell, "trunk_id"), "dense_acc"))
        by_target = all(number(r["compression_target"]) for r in cell)
        x = "level" if by_target else "compression"
        for ax, (column, stage) in zip(ax_row, drawn):
            if _not_refined(ax, cell, column, stage):
                continue
            for (method,), runs in group(cell, ["method"]).items():
                line = curve(runs, "level", x, column, scale=100)
                if line is not None:
                    line_with_band(ax, line, bounds=PERCENT, **method_style(method))
            if dense:
                ax.axhline(100 * dense[0], label="dense network", **DENSE)
            log2_axis(ax, max(values(cell, x)))
            ax.set_title(stage)
            ax.set_xlabel("compression (total / non-zero params)" + (", target" if by_target else ""))
            ax.set_ylabel(ACC_AXIS)
    return fig


def _reference(row: Row) -> str:
    """The baseline a run's mask is compared with: GGP for gradient methods (they report it), else GMP."""
    return "ggp" if number(row["overlap_ggp"]) is not None else "gmp"


def overlap_vs_time(data: Data) -> Built:
    """Paper, timing experiments: how much of KMP's (KGP's) removed set GMP (GGP) also removes, over training."""
    usable = [
        {**r, "reference": _reference(r)}
        for r in _with_level(_pruned(data.rows))
        if r["method"] != _reference(r) and number(r[f"overlap_{_reference(r)}"]) is not None
    ]
    if not usable:
        return "no run reports a mask overlap (methods other than gmp/ggp, with pruner.compare=true)"
    panels = _timed_panels(group(usable, [*data.keys, "method", "reference"]))
    if not panels:
        return _single_time(usable)
    colour = _level_colours(usable)
    fig, axes = panel_list(len(panels), "Mask overlap vs pruning time (mean ± std over seeds)", max_cols=2)
    for ax, (key, panel) in zip(axes, panels.items()):
        method, reference = key[-2], key[-1]
        for (amount,), runs in group(panel, ["level"]).items():
            line = curve(runs, "prune_epoch", "prune_epoch", f"overlap_{reference}", scale=100)
            if line is not None:
                line_with_band(ax, line, bounds=PERCENT, color=colour(amount), marker="o", label=level_label(runs[0]))
        ax.axhline(
            100 * MIN_OVERLAP, color="0.5", linestyle=":", linewidth=1.2, label=f"{100 * MIN_OVERLAP:g} % overlap"
        )
        ax.set_title(f"{group_title(data.keys, key[:-2])}\n{method.upper()} mask vs {reference.upper()} mask")
        _label_time_axis(ax, panel)
        ax.set_ylabel(f"removed weights shared with {reference.upper()} (%)")
    return fig


def accuracy_vs_time(data: Data) -> Built:
    """Paper, timing experiments: accuracy of each method against when it pruned; a column per compression."""
    usable = [r for r in _with_level(_pruned(data.rows)) if _has_accuracy(r)]
    if not usable:
        return "no finished pruned run with an accuracy"
    groups = _timed_panels(group(usable, data.keys))
    if not groups:
        return _single_time(usable)
    drawn = stages(usable)
    blocks = []
    for key, rows in groups.items():
        levels = group(rows, ["level"])
        blocks.append((group_title(data.keys, key), len(drawn), len(levels)))
    fig, block_axes = figure_of_blocks("Test accuracy vs pruning time (mean ± std over seeds)", blocks)
    for axes, rows in zip(block_axes, groups.values()):
        for col, cell in enumerate(group(rows, ["level"]).values()):
            trunks = [r for runs in group(cell, ["prune_epoch"]).values() for r in one_per(runs, "trunk_id")]
            dense = curve(trunks, "prune_epoch", "prune_epoch", "dense_acc", scale=100)
            for row_index, (column, stage) in enumerate(drawn):
                ax = axes[row_index][col]
                if _not_refined(ax, cell, column, f"{level_label(cell[0])}, {stage}"):
                    continue
                for (method,), runs in group(cell, ["method"]).items():
                    line = curve(runs, "prune_epoch", "prune_epoch", column, scale=100)
                    if line is not None:
                        line_with_band(ax, line, bounds=PERCENT, **method_style(method))
                if dense is not None:
                    ax.plot(dense.x, dense.mean, label="dense network at pruning time", **DENSE)
                ax.set_title(f"{level_label(cell[0])}, {stage}")
                _label_time_axis(ax, rows)
                if col == 0:
                    ax.set_ylabel(ACC_AXIS)
    return fig


def _gap_curve(method_rows: Sequence[Row], reference_rows: Sequence[Row], column: str) -> Curve | None:
    """method − reference accuracy (points) of runs paired by trunk (seed), pruning time and amount."""
    ref = {(r["trunk_id"], r["prune_at"], r["level"]): number(r[column]) for r in reference_rows}
    paired = []
    for r in method_rows:
        other = ref.get((r["trunk_id"], r["prune_at"], r["level"]))
        mine = number(r[column])
        if other is not None and mine is not None:
            paired.append({**r, "gap": mine - other})
    return curve(paired, "prune_epoch", "prune_epoch", "gap", scale=100) if paired else None


def accuracy_gap_vs_time(data: Data) -> Built:
    """The pre-convergence story in one figure: KMP − GMP (KGP − GGP) accuracy, per compression, over training."""
    usable = [r for r in _with_level(_pruned(data.rows)) if _has_accuracy(r)]
    panels = []
    for key, rows in _timed_panels(group(usable, data.keys)).items():
        for method, reference in GAP_PAIRS:
            mine = [r for r in rows if r["method"] == method]
            theirs = [r for r in rows if r["method"] == reference]
            if mine and theirs:
                panels.append((key, method, reference, mine, theirs))
    if not panels:
        return "needs KMP and GMP (or KGP and GGP) runs at the same 2+ pruning times and amounts"
    titles = [f"{group_title(data.keys, key)}: {m.upper()} − {ref.upper()}" for key, m, ref, _, _ in panels]
    drawn = stages(usable)
    title = "Accuracy difference vs pruning time (mean ± std over seeds)"
    fig, axes = panel_grid(len(panels), len(drawn), title, titles)
    colour = _level_colours([r for *_, mine, theirs in panels for r in (*mine, *theirs)])
    for ax_row, (_, method, reference, mine, theirs) in zip(axes, panels):
        for ax, (column, stage) in zip(ax_row, drawn):
            if _not_refined(ax, mine, column, stage):
                continue
            for (amount,), runs in group(mine, ["level"]).items():
                line = _gap_curve(runs, [r for r in theirs if r["level"] == amount], column)
                if line is not None:
                    line_with_band(ax, line, color=colour(amount), marker="o", label=level_label(runs[0]))
            ax.axhline(0, color="0.3", linewidth=1.0)
            ax.axhspan(-100 * MAX_GAP, 100 * MAX_GAP, color="0.85", alpha=0.5, linewidth=0, label="±0.2 points")
            gap_axis(ax)
            ax.set_title(stage)
            _label_time_axis(ax, [*mine, *theirs])
            ax.set_ylabel(f"{method.upper()} − {reference.upper()} accuracy (points)")
    return fig


def koopman_vs_time(data: Data) -> Built:
    """The fit over training: |λ* − 1|, the distance from θ(t) to the Koopman fixed point θ*, and the kept rank."""
    usable = [r for r in data.rows if number(r["koopman_distance_to_1"]) is not None and number(r["prune_epoch"])]
    if not usable:
        return "no Koopman runs (kmp, kgp) among the finished runs"
    fits = [c[0] for c in group(usable, [*data.keys, "trunk_id", "prune_at"]).values()]  # one fit per trunk, time
    panels = _timed_panels(group(fits, data.keys))
    if not panels:
        return _single_time(fits)
    fig, axes = panel_list(3, "Koopman fit vs pruning time (mean ± std over seeds)", max_cols=3)
    cmap = matplotlib.colormaps["tab10"]
    shown = (
        ("koopman_distance_to_1", "chosen eigenvalue: |λ* − 1|", True),
        ("koopman_fixed_point_distance", "‖θ* − θ(t)‖ / ‖θ(t)‖", True),
        ("koopman_rank", "kept DMD rank (modes)", False),
    )
    for i, (key, panel) in enumerate(panels.items()):
        style = {"color": cmap(i % 10), "marker": "o", "label": group_title(data.keys, key)}
        for ax, (column, _, log_y) in zip(axes, shown):
            line = curve(panel, "prune_epoch", "prune_epoch", column)
            if line is not None:
                line_with_band(ax, line, log_y=log_y, **style)
    for ax, (_, title, log_y) in zip(axes, shown):
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title)
        _label_time_axis(ax, fits)
    axes[2].yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _spread(items: Sequence[Any], count: int) -> list[Any]:
    """``count`` items evenly spread from first to last."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def _fit_identity(record: Row) -> tuple[Any, ...]:
    """What makes two spectra records the same fit: the trunk, the window's end and the eigenvalues."""
    return (record.get("trunk_id"), record.get("prune_at"), tuple(record["re"]), tuple(record["im"]))


def spectrum_picks(data: Data) -> list[tuple[str, list[Row]]]:
    """Per group (title), the spectra shown: the lowest seed at up to SPECTRUM_TIMES pruning times. A group whose
    every spectrum another group shows already (experiments sharing a trunk: the same runs with and without
    refinement, the converged end of a timing grid) is not drawn again; the group that shows them names it."""
    chosen: list[tuple[str, list[Row]]] = []
    for key, records in group(data.spectra, data.keys).items():
        times = group(records, ["prune_epoch"]).values()
        picked = [min(recs, key=lambda r: (r.get("seed") is None, r.get("seed"))) for recs in times]
        chosen.append((group_title(data.keys, key), _spread(picked, SPECTRUM_TIMES)))
    fits = [{_fit_identity(r) for r in picks} for _, picks in chosen]
    kept: dict[int, list[str]] = {}  # index of a group drawn -> titles of the groups it stands for
    for i in sorted(range(len(chosen)), key=lambda i: -len(fits[i])):  # the widest first; ties in input order
        host = next((k for k in kept if fits[i] <= fits[k]), None)
        if host is None:
            kept[i] = []
        else:
            kept[host].append(chosen[i][0])
    return [(_with_also(chosen[i][0], kept[i]), chosen[i][1]) for i in sorted(kept)]


def _with_also(title: str, others: Sequence[str]) -> str:
    """``title`` and, on a line of its own, the groups it also stands for, named by what differs from it."""
    mine = title.split(" / ")
    short = [" / ".join(p for i, p in enumerate(o.split(" / ")) if i >= len(mine) or p != mine[i]) for o in others]
    return title + (f"\n(also {', '.join(sorted(short))})" if short else "")


def spectrum_complex_plane(data: Data) -> Built:
    """DMD eigenvalues in the complex plane at a few pruning times (lowest seed), whole disk and near λ = 1.

    Groups pruned at several times get a block each (one column per time); when every group was pruned at one
    time (Fig. 1: one network per group), the groups sit side by side, SPECTRUM_TIMES to a row."""
    spectra = [s for s in data.spectra if number(s.get("prune_epoch"))]
    if not spectra:
        return "no Koopman spectra (kmp, kgp runs; from results.json or a report's spectra.jsonl)"
    chosen = spectrum_picks(Data(data.rows, spectra, data.keys, data.labels))
    if all(len(picks) == 1 for _, picks in chosen):
        entries = [(title, picks[0]) for title, picks in chosen]
        rows = [entries[i : i + SPECTRUM_TIMES] for i in range(0, len(entries), SPECTRUM_TIMES)]
        blocks = [("", 2, len(row)) for row in rows]
    else:
        rows = [[(title, pick) for pick in picks] for title, picks in chosen]
        blocks = [(title, 2, len(picks)) for title, picks in chosen]
    fig, block_axes = figure_of_blocks(
        "Koopman spectra: the whole disk and near λ = 1\n(★ = the eigenvalue KMP chose)", blocks, panel=(3.6, 3.8)
    )
    side_by_side = all(title == "" for title, _, _ in blocks)
    for axes, row in zip(block_axes, rows):
        for col, (title, record) in enumerate(row):
            lam = np.asarray(record["re"]) + 1j * np.asarray(record["im"])
            star = complex(record.get("chosen_re") or 1.0, record.get("chosen_im") or 0.0)
            when = next(label for epoch, label in time_ticks([record]) if epoch == record["prune_epoch"])
            half = near_one(lam)
            for row_index, zoom in enumerate((None, half)):
                ax = axes[row_index][col]
                draw_spectrum(ax, lam, star, zoom)
                if zoom is None:
                    what = f"pruned at {when}, seed {record.get('seed')}\n|λ* − 1| = {abs(star - 1):.1e}"
                    if side_by_side:
                        experiment, _, rest = title.partition(" / ")  # the experiment's line, then model / data
                        ax.set_title("\n".join(p for p in (experiment, rest, what) if p), fontsize="small")
                    else:
                        ax.set_title(what)
                else:
                    ax.set_title(f"near 1 (±{half:.1e})", fontsize="small")
                    ax.tick_params(labelsize="x-small")
                    ax.xaxis.set_major_locator(MaxNLocator(3))
                if col != 0:
                    ax.set_ylabel("")
    return fig


FIGURES: tuple[tuple[str, Callable[[Data], Built], str], ...] = (
    ("accuracy_vs_compression", accuracy_vs_compression, "accuracy before/after refinement vs compression"),
    ("overlap_vs_time", overlap_vs_time, "mask overlap KMP/GMP (KGP/GGP) vs pruning time"),
    ("accuracy_vs_time", accuracy_vs_time, "accuracy before/after refinement vs pruning time"),
    ("accuracy_gap_vs_time", accuracy_gap_vs_time, "accuracy KMP − GMP (KGP − GGP) vs pruning time"),
    ("koopman_vs_time", koopman_vs_time, "Koopman |λ* − 1|, distance to θ* and rank vs pruning time"),
    ("spectrum_complex_plane", spectrum_complex_plane, "Koopman eigenvalues in the complex plane"),
    ("spectral_distance_matrix", spectral_distance_matrix, "pairwise spectral distances between Koopman spectra"),
    ("spectral_distance_vs_time", spectral_distance_vs_time, "distance to the converged spectrum, overlap, vs time"),
    ("koopman_predictors", koopman_predictors, "fit scalars vs overlap and accuracy gap, with rank correlations"),
)


def make_figures(
    rows: Sequence[Row],
    spectra: Sequence[Row],
    out: Path,
    fmt: str,
    keys: Sequence[str],
    labels: Sequence[str] = DEFAULT_LABELS,
) -> list[FigureResult]:
    """Draw every figure the finished rows allow into ``out``; the others come back with the reason."""
    data = Data([r for r in rows if r["status"] == "finished"], spectra, keys, labels)
    made = []
    for name, build, what in FIGURES:
        with matplotlib.rc_context(RC):
            figure = build(data) if data.rows or data.spectra else "no finished runs"
            if isinstance(figure, str):
                made.append(FigureResult(name, None, figure))
                continue
            made.append(FigureResult(name, save(figure, out / f"{name}.{fmt}"), what))
    return made
