"""`koopsweep dashboard`: the W&B workspace of a sweep, checked offline (fake entity, no server, no network).

The panels are checked twice: on the wandb_workspaces objects (what a user of the library would inspect) and on
the serialized model, the JSON that `Workspace.save()` uploads (what the W&B app will read).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from koopsweep.cli import main
from koopsweep.tracking.sweep_workspace import (
    DashboardTarget,
    build_workspace,
    definition,
    panels,
    summary_text,
    target_from_sweep,
)

REPO = Path(__file__).resolve().parent.parent

TIMING_KGP = DashboardTarget(
    name="timing_kgp",
    description="KGP vs GGP",
    entity="fake-entity",
    project="fake-project",
    groups=("timing_kgp",),
    methods=("kgp", "ggp"),
    runs=324,
    gradient=True,
    koopman=True,
    timing=True,
)
CONVERGED = replace(
    TIMING_KGP,
    name="converged_mnistnet",
    groups=("converged_mnistnet",),
    methods=("kmp", "gmp"),
    runs=36,
    gradient=False,
    timing=False,
)


def needs_workspaces() -> None:
    pytest.importorskip("wandb_workspaces", reason='pip install "koopsweep[dashboards]"')


@pytest.fixture
def timing() -> object:
    needs_workspaces()
    return build_workspace(TIMING_KGP)


@pytest.fixture
def converged() -> object:
    needs_workspaces()
    return build_workspace(CONVERGED)


def section_names(workspace) -> list[str]:
    return [s.name for s in workspace.sections]


def scatter(workspace, x: str, y: str):
    """The scatter plot of summary y against summary x, exactly one."""
    found = [p for p in panels(workspace) if type(p).__name__ == "ScatterPlot" and (p.x.name, p.y.name) == (x, y)]
    assert len(found) == 1, f"{len(found)} scatter plots of {y} vs {x}"
    return found[0]


def line(workspace, y: str):
    found = [p for p in panels(workspace) if type(p).__name__ == "LinePlot" and p.y == [y]]
    assert len(found) == 1
    return found[0]


def of_type(workspace, kind: str) -> list:
    return [p for p in panels(workspace) if type(p).__name__ == kind]


def spec_panels(data: dict) -> list[dict]:
    """Every panel of a serialized workspace (the JSON `save()` uploads)."""
    return [p for s in data["spec"]["section"]["panelBankConfig"]["sections"] for p in s["panels"]]


# --- the panels ------------------------------------------------------------------------------------------------


def test_sections_follow_the_sweep(timing, converged):
    assert section_names(timing) == [
        "Accuracy vs compression",
        "Pruning time",
        "Training curves",
        "Koopman",
        "Runs by trunk",
    ]
    assert "Pruning time" not in section_names(converged)  # one pruning time: nothing to plot against it
    no_koopman = build_workspace(replace(CONVERGED, koopman=False, methods=("gmp", "random")))
    assert "Koopman" not in section_names(no_koopman)


def test_accuracy_against_compression_is_summary_vs_summary_on_a_log_axis(timing):
    from wandb_workspaces.reports.v2 import SummaryMetric

    for y in ("final/test_acc", "pruned/test_acc", "overlap/gmp", "overlap/ggp"):
        panel = scatter(timing, "mask/compression", y)
        assert isinstance(panel.x, SummaryMetric) and isinstance(panel.y, SummaryMetric)
        assert panel.log_x is True


def test_overlap_and_accuracy_against_pruning_time(timing, converged):
    for y in ("overlap/gmp", "overlap/ggp", "final/test_acc", "pruned/test_acc", "koopman/distance_to_1"):
        assert scatter(timing, "run/prune_epoch", y).log_x is True
    assert not [p for p in panels(converged) if getattr(getattr(p, "x", None), "name", None) == "run/prune_epoch"]


def test_ggp_overlap_only_for_gradient_methods(timing, converged):
    def ys(workspace):
        return {p.y.name for p in of_type(workspace, "ScatterPlot")}

    assert "overlap/ggp" in ys(timing)
    assert "overlap/ggp" not in ys(converged)
    assert "summary:overlap/ggp" not in converged.runset_settings.pinned_columns


def test_curves_against_the_iteration_grouped_by_method(timing):
    from wandb_workspaces.reports.v2 import Config

    for y in ("eval/test_acc", "eval/test_loss", "train/loss"):
        panel = line(timing, y)
        assert panel.x == "train/iteration"
        assert panel.groupby == Config("pruner.name.value")  # the flat key pruner.name, not nested pruner.value.name
        assert (panel.groupby_aggfunc, panel.groupby_rangefunc) == ("mean", "stderr")
        assert panel.max_runs_to_show == 324
    assert timing.settings.x_axis == "train/iteration"
    assert timing.settings.max_runs == 324


def test_spectrum_media_and_runs_by_trunk(timing):
    from wandb_workspaces.reports.v2 import Config

    (media,) = of_type(timing, "MediaBrowser")
    assert media.media_keys == ["koopman/spectrum"]
    (bars,) = [p for p in of_type(timing, "BarPlot") if p.groupby == Config("trunk_id.value")]
    assert [m.name for m in bars.metrics] == ["final/test_acc"]
    assert len(of_type(timing, "RunComparer")) == 1
    assert sorted(p.table_name for p in of_type(timing, "WeavePanelSummaryTable")) == [
        "koopman/eigenvalues",
        "tables/layer_sparsity",
        "tables/overlap",
    ]


def test_spectral_panels_compare_every_runs_eigenvalues(timing):
    """The eigenvalue tables the Koopman runs log, drawn together in W&B's scatter (re against im)."""
    (chart,) = of_type(timing, "CustomChart")
    assert chart.chart_name == "wandb/scatter/v0" and chart.chart_fields == {"x": "re", "y": "im"}
    assert chart.query == {"summaryTable": {"tableKey": "koopman/eigenvalues"}}
    for y in ("koopman/spectral_gap", "koopman/near_one_share"):
        assert scatter(timing, "run/prune_epoch", y).log_x
    assert "chart=wandb/scatter/v0 table=koopman/eigenvalues x=re, y=im" in summary_text(timing)


# --- the runs: only the experiment's group ---------------------------------------------------------------------


def test_runset_is_the_experiments_group_grouped_by_trunk(timing):
    rs = timing.runset_settings
    assert rs.filters == "Metric(\"Group\") == 'timing_kgp'"
    assert [g.name for g in rs.groupby] == ["trunk_id.value"]
    for wanted in (
        "config:trunk_id.value",
        "config:pruner.name.value",
        "summary:final/test_acc",
        "summary:overlap/gmp",
        "summary:run/prune_epoch",
        "summary:run/status",
    ):
        assert wanted in rs.pinned_columns


def test_several_groups_and_other_groupings():
    needs_workspaces()
    two = build_workspace(replace(TIMING_KGP, groups=("a", "b")), group_runs_by="method")
    assert two.runset_settings.filters == "Metric(\"Group\") in ['a', 'b']"
    assert [g.name for g in two.runset_settings.groupby] == ["pruner.name.value"]
    assert build_workspace(TIMING_KGP, group_runs_by="none").runset_settings.groupby == []


def test_serialized_definition_is_what_the_app_reads(timing):
    data = json.loads(json.dumps(definition(timing)))  # plain JSON, as --json writes it
    assert (data["entity"], data["project"], data["displayName"]) == ("fake-entity", "fake-project", "timing_kgp")
    section = data["spec"]["section"]
    runset = section["runSets"][0]
    assert runset["filters"]["filters"] == [
        {"key": {"section": "run", "name": "group"}, "op": "=", "value": "timing_kgp", "disabled": False}
    ]
    assert runset["grouping"] == [{"section": "config", "name": "trunk_id.value"}]
    assert runset["runFeed"]["columnPinned"]["config:pruner.name.value"] is True
    assert section["settings"]["xAxis"] == "train/iteration"
    assert section["settings"]["shouldAutoGeneratePanels"] is False  # curated: no panel per logged key

    configs = [(p["viewType"], p["config"]) for p in spec_panels(data)]
    scatters = {(c["xAxis"], c["yAxis"]) for t, c in configs if t == "Scatter Plot"}
    assert ("summary:mask/compression", "summary:final/test_acc") in scatters
    assert ("summary:run/prune_epoch", "summary:overlap/gmp") in scatters
    assert all(c.get("xAxisLogScale") for t, c in configs if t == "Scatter Plot")
    curves = [c for t, c in configs if t == "Run History Line Plot"]
    grouped = {(c["xAxis"], c["groupBy"], c["aggregate"]) for c in curves}
    assert grouped == {("train/iteration", "pruner.name.value", True)}
    assert any(c["metrics"] == ["eval/test_acc"] for c in curves)
    assert [c["mediaKeys"] for t, c in configs if t == "Media Browser"] == [["koopman/spectrum"]]


def test_definition_loads_back_into_a_workspace(timing):
    from wandb_workspaces.workspaces import Workspace, internal

    loaded = Workspace._from_model(internal.View.model_validate(json.loads(json.dumps(definition(timing)))))
    assert section_names(loaded) == section_names(timing)
    assert len(panels(loaded)) == len(panels(timing))
    assert loaded.runset_settings.filters == timing.runset_settings.filters


def test_summary_names_every_section_panel_and_query(timing):
    text = summary_text(timing)
    assert text.startswith("workspace 'timing_kgp' in fake-entity/fake-project")
    assert "Metric(\"Group\") == 'timing_kgp'" in text
    for name in section_names(timing):
        assert f"[{name}]" in text
    assert "y=summary:overlap/gmp x=summary:run/prune_epoch log x" in text
    assert "y=eval/test_acc x=train/iteration grouped by config:pruner.name.value (mean, stderr)" in text
    assert "media=koopman/spectrum" in text
    assert len([line for line in text.splitlines() if line.startswith("    ")]) == len(panels(timing))


# --- from a sweep file ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sweep, group, methods, gradient, timing_",
    [
        ("timing_kgp", "timing_kgp", ("kgp", "ggp"), True, True),
        ("converged_mnistnet", "converged_mnistnet", ("kmp", "gmp"), False, False),
    ],
)
def test_target_of_a_shipped_sweep(sweep, group, methods, gradient, timing_):
    target = target_from_sweep(REPO / "sweeps" / f"{sweep}.yaml")
    assert (target.name, target.groups, target.methods) == (sweep, (group,), methods)
    assert (target.gradient, target.timing, target.koopman) == (gradient, timing_, True)
    assert (target.project, target.entity) == ("koopsweep", None)
    assert target.runs == (324 if timing_ else 36)


def test_target_matches_the_first_composed_point_of_the_plan():
    from koopsweep.sweeps.plan import plan_sweep

    path = REPO / "sweeps" / "smoke.yaml"
    cfg = plan_sweep(path).points[0].cfg
    target = target_from_sweep(path)
    assert target.groups == (cfg.logger.group or cfg.experiment_name,)
    assert (target.project, target.entity) == (cfg.logger.project, cfg.logger.entity)


def write_sweep(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_swept_experiment_names_and_sweep_level_project(tmp_path):
    path = write_sweep(
        tmp_path,
        """\
        name: mine
        project: sweep-project
        method: grid
        parameters:
          experiment_name: {values: [first, second]}
          pruner: {values: [gmp]}
          pruner.fraction: {values: [0.5, 0.9]}
        command: [koopsweep, experiment=smoke_sweep, "${args_no_hyphens}"]
        """,
    )
    target = target_from_sweep(path)
    assert (target.groups, target.methods, target.koopman, target.project) == (
        ("first", "second"),
        ("gmp",),
        False,
        "sweep-project",
    )
    forced = target_from_sweep(path, entity="e", project="p")
    assert (forced.entity, forced.project) == ("e", "p")


def test_logger_group_wins_over_the_experiment_name(tmp_path):
    path = write_sweep(
        tmp_path,
        """\
        name: grouped
        method: grid
        parameters:
          pruner: {values: [gmp]}
        command: [koopsweep, experiment=smoke_sweep, logger.group=my-group, logger.entity=team, "${args_no_hyphens}"]
        """,
    )
    target = target_from_sweep(path)
    assert (target.groups, target.entity) == (("my-group",), "team")


# --- the command ------------------------------------------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_command_prints_the_summary_by_default(capsys):
    needs_workspaces()
    assert run_cli(["dashboard", "smoke", "--entity", "fake-entity"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("workspace 'smoke' in fake-entity/koopsweep")
    assert "Metric(\"Group\") == 'smoke_sweep'" in out
    assert "[Pruning time]" in out and "[Koopman]" in out


def test_command_writes_the_definition(tmp_path, capsys):
    needs_workspaces()
    out_file = tmp_path / "dash.json"
    argv = [
        "dashboard",
        str(REPO / "sweeps" / "smoke.yaml"),
        "--json",
        str(out_file),
        "--project",
        "fake-project",
        "--entity",
        "fake-entity",
        "--name",
        "My dashboard",
        "--group-runs-by",
        "method",
    ]
    assert run_cli(argv) == 0
    data = json.loads(out_file.read_text())
    assert (data["entity"], data["project"], data["displayName"]) == ("fake-entity", "fake-project", "My dashboard")
    runset = data["spec"]["section"]["runSets"][0]
    assert runset["filters"]["filters"][0]["value"] == "smoke_sweep"
    assert runset["grouping"] == [{"section": "config", "name": "pruner.name.value"}]
    assert capsys.readouterr().out.strip() == f"wrote the definition of workspace 'My dashboard' to {out_file}"


def one_line_error(capsys, argv: list[str]) -> str:
    assert run_cli(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("koopsweep: error: "), captured.err
    return lines[0]


def test_unknown_sweep_is_one_line(capsys):
    line_ = one_line_error(capsys, ["dashboard", "no_such_sweep"])
    assert "'no_such_sweep' not found" in line_ and "timing_kmp" in line_


def test_missing_package_says_how_to_install_it(capsys, monkeypatch):
    for name in [m for m in sys.modules if m.startswith("wandb_workspaces")] + ["wandb_workspaces"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import wandb_workspaces...` now raises ImportError
    line_ = one_line_error(capsys, ["dashboard", "smoke"])
    assert "wandb-workspaces" in line_ and line_.endswith('pip install "koopsweep[dashboards]"')


def test_save_offline_is_one_line_and_touches_no_server(capsys, monkeypatch):
    needs_workspaces()
    import wandb

    monkeypatch.setattr(wandb, "Api", lambda *a, **k: pytest.fail("no server call offline"))
    line_ = one_line_error(capsys, ["dashboard", "smoke", "--save"])
    assert "cannot save a W&B workspace offline (WANDB_MODE=disabled)" in line_ and "--json PATH" in line_


def test_unwritable_json_is_one_line(tmp_path, capsys):
    needs_workspaces()
    line_ = one_line_error(capsys, ["dashboard", "smoke", "--json", str(tmp_path / "missing" / "d.json")])
    assert "cannot write" in line_


def test_importing_koopsweep_does_not_import_wandb_workspaces():
    code = (
        "import sys, koopsweep.cli, koopsweep.commands, koopsweep.commands.dashboard\n"
        "import koopsweep.tracking.sweep_workspace\n"
        "assert 'wandb_workspaces' not in sys.modules, 'imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_dashboards_extra():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["dashboards"] == ["wandb-workspaces>=0.4"]
    assert "wandb-workspaces>=0.4" in extras["dev"]
