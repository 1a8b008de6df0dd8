"""A saved W&B workspace per experiment, built as code from its sweep file (``koopsweep dashboard``).

The panels mirror the paper's figures: accuracy against compression, overlap with GMP (GGP) and accuracy against
the pruning time, the test-accuracy curve through dense training, pruning and refinement, the Koopman spectra, and
the runs grouped by trunk. Everything is read from the sweep file alone (its points composed as the runs will
compose them), so a dashboard can be defined, inspected and reviewed before any run exists and without a server.

wandb-workspaces (the optional ``dashboards`` extra) imports wandb at import time and is only imported by the
functions that build a workspace, never by ``import koopsweep.tracking.sweep_workspace``.

Metric names are the ones the trainer logs to W&B (docs/logging.md): history rows at ``train/iteration``, summary
values named as in results.json, config with flat dotted keys (``pruner.name``) plus ``trunk_id``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from koopsweep.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - types only
    from types import ModuleType

    from koopsweep.sweeps.spec import SweepSpec

INSTALL = 'pip install "koopsweep[dashboards]"'
"""The one command that adds wandb-workspaces (koopsweep's ``dashboards`` extra)."""

# What the trainer logs (docs/logging.md, "What is logged where").
ITERATION = "train/iteration"
COMPRESSION = "mask/compression"
PRUNE_EPOCH = "run/prune_epoch"
SPECTRUM = "koopman/spectrum"
NEAR_ONE = "koopman/near_one_share"  # share of a run's eigenvalues within 0.01 of 1
SPECTRAL_GAP = "koopman/spectral_gap"  # |λ₂ - 1| - |λ* - 1| of a run's spectrum
EIGENVALUES = "koopman/eigenvalues"  # each Koopman run's table of eigenvalues (re, im, |λ − 1|, ...)
SCATTER_CHART = "wandb/scatter/v0"  # W&B's built-in Vega scatter, the chart the runs' own eigenvalue plots use
TABLES = ("tables/overlap", "tables/layer_sparsity")
METHOD = "pruner.name"
TRUNK = "trunk_id"

MAX_RUNS = 1000
"""Cap on runs drawn per panel: W&B draws only the first 10 by default, far fewer than a sweep's grid."""

RUN_GROUPINGS = ("trunk", "method", "none")
"""How the runs table (and every panel without a grouping of its own) groups the runs: ``--group-runs-by``."""


@dataclass(frozen=True)
class DashboardTarget:
    """What a dashboard needs to know about a sweep's runs, read from its file and its composed points."""

    name: str
    description: str
    entity: str | None
    project: str
    groups: tuple[str, ...]
    methods: tuple[str, ...]
    runs: int
    gradient: bool = False
    koopman: bool = False
    timing: bool = False
    logging_off: bool = False


# ---------------------------------------------------------------------------------------------------------------
# From a sweep file to a target
# ---------------------------------------------------------------------------------------------------------------


def _decides_identity(key: str) -> bool:
    """True for swept keys that may change a run's W&B group, project or method, so every value is composed.

    Group choices (``pruner``, ``experiment``) and top-level values (``experiment_name``, ``seed``) have no dot;
    ``logger.*`` sets project, entity and group. Other dotted keys (``pruner.compression``, ``schedule.prune_at``)
    only move a run within its group, so their first value stands for all: composing a 324-point sweep in full
    takes ~20 s, its identity sample a second or two.
    """
    return "." not in key or key.startswith("logger.")


def identity_sample(spec: SweepSpec) -> SweepSpec:
    """The sweep restricted to the first value of every key that cannot change a run's group or method."""
    from koopsweep.sweeps.spec import SweepSpec

    parameters = {k: v if _decides_identity(k) else v[:1] for k, v in spec.parameters.items()}
    return SweepSpec(spec.path, spec.raw, parameters, spec.command, spec.fixed)


def _scorer_flag(cfg: Any, flag: str) -> bool:
    """A pruner's class-level flag (``gradient_flavoured``, ``requires_koopman``), False for the dense pruner."""
    from hydra.utils import get_class

    target = cfg.pruner.get("_target_")
    return bool(target) and bool(getattr(get_class(target), flag, False))


def target_from_sweep(path: str | Path, entity: str | None = None, project: str | None = None) -> DashboardTarget:
    """Compose the sweep's points as its runs will and collect the W&B identity of its runs.

    Project and entity follow `koopsweep sweep create`: the option, then the sweep file's own ``project`` /
    ``entity``, then ``logger.project`` / ``logger.entity`` of the composed run. The W&B group of a run is
    ``logger.group``, else ``experiment_name`` (koopsweep.train.run); a sweep may span several.
    """
    from koopsweep.sweeps.points import compose_points
    from koopsweep.sweeps.spec import load_spec

    spec = load_spec(path)
    points = compose_points(identity_sample(spec))
    cfgs = [p.cfg for p in points]
    first = cfgs[0].logger
    groups = _unique(str(c.logger.group or c.experiment_name) for c in cfgs)
    return DashboardTarget(
        name=spec.name,
        description=str(spec.raw.get("description") or ""),
        entity=entity or spec.raw.get("entity") or first.get("entity") or None,
        project=str(project or spec.raw.get("project") or first.project),
        groups=tuple(groups),
        methods=tuple(_unique(str(c.pruner.name) for c in cfgs)),
        runs=math.prod(len(v) for v in spec.parameters.values()),
        gradient=any(_scorer_flag(c, "gradient_flavoured") for c in cfgs),
        koopman=any(p.needs_window for p in points),
        timing=len(spec.parameters.get("schedule.prune_at", ())) > 1,
        logging_off=all(c.logger.mode == "disabled" for c in cfgs),
    )


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------------------------------
# wandb-workspaces, imported on demand
# ---------------------------------------------------------------------------------------------------------------


def require_workspaces() -> tuple[ModuleType, ModuleType]:
    """``(wandb_workspaces.workspaces, wandb_workspaces.reports.v2)``, or one line saying how to install them."""
    try:
        import wandb_workspaces.reports.v2 as wr
        import wandb_workspaces.workspaces as ws
    except ImportError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"koopsweep dashboard needs the wandb-workspaces package ({detail}): {INSTALL}") from None
    return ws, wr


def config_key(name: str) -> str:
    """The backend path of a config key koopsweep logs flat (``pruner.name`` as one key, not nested dicts).

    W&B wraps every top-level config key as ``{"value": ...}``: a flat dotted key is ``pruner.name.value``. The
    library's default for ``Config("pruner.name")`` assumes a nested dict (``pruner.value.name``); a path that
    already holds ``value`` is passed through as it is, in panels and in the runs table alike.
    """
    return f"{name}.value"


def column(section: str, name: str) -> str:
    """A runs-table column id: ``summary:final/test_acc``, ``config:pruner.name.value``."""
    return f"config:{config_key(name)}" if section == "config" else f"{section}:{name}"


# ---------------------------------------------------------------------------------------------------------------
# Panels, one small builder per figure
# ---------------------------------------------------------------------------------------------------------------


def summary_scatter(wr: ModuleType, title: str, x: str, y: str, log_x: bool = True) -> Any:
    """One point per run, summary against summary: W&B line plots only take history keys on their x axis."""
    return wr.ScatterPlot(title=title, x=wr.SummaryMetric(x), y=wr.SummaryMetric(y), log_x=log_x)


def method_curves(wr: ModuleType, title: str, metric: str, runs: int) -> Any:
    """A history metric against the training iteration, mean and standard error per method."""
    return wr.LinePlot(
        title=title,
        x=ITERATION,
        y=[metric],
        groupby=wr.Config(config_key(METHOD)),
        groupby_aggfunc="mean",
        groupby_rangefunc="stderr",
        max_runs_to_show=runs,
    )


def compression_section(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> Any:
    """The converged figure: accuracy after refinement and right after pruning, and mask overlaps, vs compression."""
    panels = [
        summary_scatter(wr, "final accuracy (after refinement) vs compression", COMPRESSION, "final/test_acc"),
        summary_scatter(wr, "accuracy right after pruning vs compression", COMPRESSION, "pruned/test_acc"),
        summary_scatter(wr, "mask overlap with GMP vs compression", COMPRESSION, "overlap/gmp"),
    ]
    if target.gradient:
        panels.append(summary_scatter(wr, "mask overlap with GGP vs compression", COMPRESSION, "overlap/ggp"))
    return ws.Section(name="Accuracy vs compression", panels=panels, is_open=True)


def timing_section(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> Any:
    """The pre-convergence figures: overlap with GMP (GGP) and accuracy against the pruning time in epochs."""
    panels = [summary_scatter(wr, "mask overlap with GMP vs pruning time (epochs)", PRUNE_EPOCH, "overlap/gmp")]
    if target.gradient:
        panels.append(summary_scatter(wr, "mask overlap with GGP vs pruning time (epochs)", PRUNE_EPOCH, "overlap/ggp"))
    panels += [
        summary_scatter(wr, "final accuracy vs pruning time (epochs)", PRUNE_EPOCH, "final/test_acc"),
        summary_scatter(wr, "accuracy right after pruning vs pruning time (epochs)", PRUNE_EPOCH, "pruned/test_acc"),
    ]
    return ws.Section(name="Pruning time", panels=panels, is_open=True)


def curves_section(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> Any:
    """Per-iteration curves: the extra evaluation at the pruning iteration shows dense -> drop -> recovery."""
    runs = _panel_runs(target)
    panels = [
        method_curves(wr, "test accuracy: dense, pruned, refined", "eval/test_acc", runs),
        method_curves(wr, "test loss", "eval/test_loss", runs),
        method_curves(wr, "training loss", "train/loss", runs),
    ]
    return ws.Section(name="Training curves", panels=panels, is_open=True)


def spectral_panels(wr: ModuleType) -> list[Any]:
    """Every run's eigenvalues in one complex plane (a colour per run, from the ``koopman/eigenvalues`` tables they
    log), and the tables themselves: spectra compared where the runs are."""
    return [
        wr.CustomChart(
            query={"summaryTable": {"tableKey": EIGENVALUES}},
            chart_name=SCATTER_CHART,
            chart_fields={"x": "re", "y": "im"},
            chart_strings={"title": "Koopman eigenvalues of the visible runs (complex plane)"},
            layout=wr.Layout(w=12, h=10),
        ),
        wr.WeavePanelSummaryTable(table_name=EIGENVALUES, layout=wr.Layout(w=12, h=10)),
    ]


def koopman_section(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> Any:
    """The Koopman spectra (one image per run, every run's eigenvalues in one plane), how close the chosen
    eigenvalue is to 1, and the spectral scalars."""
    panels: list[Any] = [
        wr.MediaBrowser(
            title="Koopman spectrum (eigenvalues, unit circle, chosen one starred)",
            media_keys=[SPECTRUM],
            gallery_axis="run",
            num_columns=4,
            layout=wr.Layout(w=24, h=10),
        )
    ]
    panels += spectral_panels(wr)
    if target.timing:
        panels += [
            summary_scatter(wr, "|chosen eigenvalue - 1| vs pruning time", PRUNE_EPOCH, "koopman/distance_to_1"),
            summary_scatter(wr, "Koopman fit residual vs pruning time", PRUNE_EPOCH, "koopman/residual"),
            summary_scatter(wr, "spectral gap |λ₂ - 1| - |λ* - 1| vs pruning time", PRUNE_EPOCH, SPECTRAL_GAP),
            summary_scatter(wr, "share of eigenvalues within 0.01 of 1 vs pruning time", PRUNE_EPOCH, NEAR_ONE),
        ]
    else:
        panels.append(
            wr.BarPlot(
                title="Koopman fit per trunk",
                metrics=[wr.SummaryMetric(m) for m in ("koopman/distance_to_1", "koopman/residual", NEAR_ONE)],
                groupby=wr.Config(config_key(TRUNK)),
                groupby_aggfunc="mean",
                groupby_rangefunc="minmax",
            )
        )
    return ws.Section(name="Koopman", panels=panels, is_open=True)


def runs_section(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> Any:
    """Runs side by side per trunk (same dense run, so method differences are paired) and their logged tables."""
    panels = [
        wr.BarPlot(
            title="final accuracy per trunk (min-max over its branches)",
            metrics=[wr.SummaryMetric("final/test_acc")],
            groupby=wr.Config(config_key(TRUNK)),
            groupby_aggfunc="mean",
            groupby_rangefunc="minmax",
            max_runs_to_show=_panel_runs(target),
        ),
        wr.RunComparer(diff_only="split", layout=wr.Layout(w=16, h=10)),
    ]
    panels += [wr.WeavePanelSummaryTable(table_name=name, layout=wr.Layout(w=12, h=10)) for name in TABLES]
    return ws.Section(name="Runs by trunk", panels=panels, is_open=False)


def _panel_runs(target: DashboardTarget) -> int:
    return max(10, min(target.runs, MAX_RUNS))


# ---------------------------------------------------------------------------------------------------------------
# The workspace
# ---------------------------------------------------------------------------------------------------------------


def pinned_columns(target: DashboardTarget) -> list[str]:
    """The runs table's columns: which run (trunk, method), its pruning point, and the paper's numbers."""
    columns = [column("config", TRUNK), column("config", METHOD)]
    summaries = [COMPRESSION, "mask/fraction", PRUNE_EPOCH, "dense/test_acc", "pruned/test_acc", "final/test_acc"]
    summaries += ["overlap/gmp"] + (["overlap/ggp"] if target.gradient else []) + ["run/status"]
    return columns + [column("summary", name) for name in summaries]


def runset_settings(ws: ModuleType, target: DashboardTarget, group_runs_by: str = "trunk") -> Any:
    """Only the sweep's runs (its W&B group or groups), grouped in the runs table by trunk, method or not at all."""
    group = ws.Metric("Group")
    only = group == target.groups[0] if len(target.groups) == 1 else group.isin(list(target.groups))
    if group_runs_by not in RUN_GROUPINGS:
        raise ConfigError(f"--group-runs-by {group_runs_by!r}: choose one of {', '.join(RUN_GROUPINGS)}")
    keys = {"trunk": [TRUNK], "method": [METHOD], "none": []}[group_runs_by]
    return ws.RunsetSettings(
        filters=[only],
        groupby=[ws.Config(config_key(k)) for k in keys],
        pinned_columns=pinned_columns(target),
    )


def sections(ws: ModuleType, wr: ModuleType, target: DashboardTarget) -> list[Any]:
    """The sections that fit the sweep: pruning-time panels only when it varies the pruning time, and so on."""
    built = [compression_section(ws, wr, target)]
    if target.timing:
        built.append(timing_section(ws, wr, target))
    built.append(curves_section(ws, wr, target))
    if target.koopman:
        built.append(koopman_section(ws, wr, target))
    built.append(runs_section(ws, wr, target))
    return built


def build_workspace(target: DashboardTarget, name: str | None = None, group_runs_by: str = "trunk") -> Any:
    """The wandb_workspaces Workspace for a sweep's runs: built offline, saved only by an explicit ``.save()``."""
    ws, wr = require_workspaces()
    return ws.Workspace(
        entity=target.entity or "",
        project=target.project,
        name=name or target.name,
        sections=sections(ws, wr, target),
        settings=ws.WorkspaceSettings(x_axis=ITERATION, max_runs=_panel_runs(target)),
        runset_settings=runset_settings(ws, target, group_runs_by),
    )


def definition(workspace: Any) -> dict[str, Any]:
    """The saved view as JSON: entity, project, names and the spec string ``Workspace.save()`` would upload.

    ``spec`` is the same model ``save()`` serializes (wandb_workspaces.workspaces.internal.upsert_view2), dumped
    as an object rather than a string so that it reads and diffs.
    """
    return workspace._to_model().model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------------------------------------------
# A readable summary
# ---------------------------------------------------------------------------------------------------------------


def metric_text(value: Any) -> str:
    """``summary:final/test_acc``, ``config:pruner.name.value``, ``train/iteration``: as the definition spells it."""
    if value is None or isinstance(value, str):
        return str(value)
    kind = type(value).__name__
    prefix = {"SummaryMetric": "summary:", "Config": "config:"}.get(kind, "")
    return prefix + str(getattr(value, "name", value))


def panel_text(panel: Any) -> str:
    """One line per panel: its type, title and the query it draws (axes, metrics, grouping, media or table)."""
    kind = type(panel).__name__
    parts: list[str] = []
    title = getattr(panel, "title", None)
    if title:
        parts.append(repr(title))
    if kind in ("LinePlot", "ScatterPlot"):
        ys = panel.y if isinstance(panel.y, list) else [panel.y]
        parts.append(f"y={', '.join(metric_text(y) for y in ys)} x={metric_text(panel.x)}")
        logs = [axis for axis in ("x", "y") if getattr(panel, f"log_{axis}", None)]
        if logs:
            parts.append("log " + ",".join(logs))
    elif kind == "BarPlot":
        parts.append("metrics=" + ", ".join(metric_text(m) for m in panel.metrics))
    elif kind == "MediaBrowser":
        parts.append(f"media={', '.join(panel.media_keys)} by {panel.gallery_axis or panel.mode}")
    elif kind == "WeavePanelSummaryTable":
        parts.append(f"table={panel.table_name}")
    elif kind == "CustomChart":
        fields = ", ".join(f"{k}={v}" for k, v in (panel.chart_fields or {}).items())
        table = (panel.query or {}).get("summaryTable", {}).get("tableKey")
        parts.append(f"chart={panel.chart_name} table={table} {fields}")
    elif kind == "RunComparer":
        parts.append("the visible runs' config and summary side by side")
    groupby = getattr(panel, "groupby", None)
    if groupby not in (None, "None"):
        parts.append(f"grouped by {metric_text(groupby)} ({panel.groupby_aggfunc}, {panel.groupby_rangefunc})")
    return f"{kind}: " + " ".join(parts)


def summary_text(workspace: Any, target: DashboardTarget | None = None) -> str:
    """What ``koopsweep dashboard`` prints by default: where it goes, which runs it shows, every panel's query."""
    rs = workspace.runset_settings
    entity = workspace.entity or "(your default W&B entity; --entity to choose)"
    groupby = ", ".join(metric_text(g) for g in rs.groupby) or "none"
    lines = [
        f"workspace {workspace.name!r} in {entity}/{workspace.project}",
        f"  runs: {rs.filters}",
        f"  runs table grouped by: {groupby}; columns: {', '.join(rs.pinned_columns)}",
        f"  x axis of line plots: {workspace.settings.x_axis}; up to {workspace.settings.max_runs} runs per panel",
    ]
    if target is not None and target.logging_off:
        lines.append("  note: this sweep's runs log with logger.mode=disabled: none of them reaches W&B")
    for section in workspace.sections:
        lines.append(f"  [{section.name}]")
        lines += [f"    {panel_text(p)}" for p in section.panels]
    return "\n".join(lines)


def panels(workspace: Any) -> Sequence[Any]:
    """Every panel of a workspace, in order (for tests and summaries)."""
    return [p for s in workspace.sections for p in s.panels]
