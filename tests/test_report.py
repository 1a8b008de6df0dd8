"""``koopsweep report`` on a synthetic sweep: runs.csv values, seed means in summary.md, figures, skips, errors."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import statistics
import struct
from pathlib import Path

import pytest

from koopsweep.commands.report import main
from koopsweep.errors import ConfigError

METHODS, FRACTIONS, EPOCHS, SEEDS = ("gmp", "kmp"), (0.5, 0.75, 0.9), (1, 2), (0, 1)
TOTAL, PRUNABLE, PER_EPOCH = 10_000, 9_000, 100
FIGURES = (
    "accuracy_vs_compression",
    "overlap_vs_time",
    "accuracy_vs_time",
    "accuracy_gap_vs_time",
    "koopman_vs_time",
    "spectrum_complex_plane",
)


def accuracies(method: str, fraction: float, epoch: int, seed: int) -> tuple[float, float, float]:
    """(dense, pruned, final): later pruning and fewer removed weights hurt less; KMP a little worse."""
    dense = 0.90 + 0.01 * epoch + 0.01 * seed
    drop = fraction * (0.3 if epoch == 1 else 0.1) + (0.02 if method == "kmp" else 0.0)
    return dense, dense - drop, dense - drop / 4


def result(method: str, fraction: float, epoch: int, seed: int, status: str = "finished") -> dict:
    dense, pruned, final = accuracies(method, fraction, epoch, seed)
    nonzero = TOTAL - round(fraction * PRUNABLE)
    metrics = {
        "dense/test_acc": dense, "dense/test_loss": 0.3, "pruned/test_acc": pruned, "pruned/test_loss": 0.5,
        "final/test_acc": final, "final/test_loss": 0.35, "params/total": TOTAL, "params/prunable": PRUNABLE,
        "params/nonzero": nonzero, "mask/sparsity": fraction, "mask/compression": TOTAL / nonzero,
        "overlap/gmp": 1.0 if method == "gmp" else 0.7 + 0.05 * epoch + 0.1 * fraction + 0.01 * seed,
    }  # fmt: skip
    if method == "kmp":
        metrics |= {"koopman/eigenvalue_re": 1 + 10.0 ** (-epoch - 1), "koopman/eigenvalue_im": 0.0,
                    "koopman/distance_to_1": 10.0 ** (-epoch - 1) * (1 + seed), "koopman/rank": 50 + epoch,
                    "koopman/imag_ratio": 1e-12}  # fmt: skip
    koopman = None
    if method == "kmp":
        chosen = 1 + 10.0 ** (-epoch - 1)
        koopman = {
            "eigenvalue": {"re": chosen, "im": 0.0},
            "spectrum": {"re": [chosen, 0.9, 0.5, 0.5, -0.2], "im": [0.0, 0.0, 0.3, -0.3, 0.0]},
        }
    return {
        "status": status, "pruner": method, "fraction": fraction, "trunk_id": f"trunk{seed}",
        "branch_id": f"{method}-{fraction}-{epoch}-{seed}",
        "iterations": {"per_epoch": PER_EPOCH, "prune_at": epoch * PER_EPOCH, "end": (epoch + 1) * PER_EPOCH},
        "metrics": metrics, "layer_sparsity": {}, "koopman": koopman,
        "config": {"experiment_name": "synth", "seed": seed, "model": {"name": "mnistnet"},
                   "dataset": {"name": "mnist"}, "schedule": {"prune_at": f"{epoch}ep"},
                   "pruner": {"name": method, "fraction": fraction}, "optimizer": {"name": "sgd", "lr": 0.05}},
    }  # fmt: skip


def write(path: Path, payload: dict | str, age_s: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    if age_s:
        os.utime(path, (path.stat().st_mtime - age_s,) * 2)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 finished runs (2 methods × 3 fractions × 2 times × 2 seeds), a diverged, a broken and a superseded file."""
    root = tmp_path_factory.mktemp("outputs")
    job = 0
    for method in METHODS:
        for epoch in EPOCHS:
            for fraction in FRACTIONS:
                for seed in SEEDS:
                    run = result(method, fraction, epoch, seed)
                    write(root / method / f"t{epoch}" / str(job) / "results.json", run)
                    job += 1
    diverged = result("kmp", 0.9, 1, 5, status="diverged")
    del diverged["metrics"]["final/test_acc"]
    write(root / "kmp" / "t1" / "diverged" / "results.json", diverged)
    write(root / "gmp" / "broken" / "results.json", '{"status": "finished", "metr')
    # an older, preempted copy of a cell that was resumed into a new folder: must not be counted twice
    write(root / "gmp" / "t1" / "old" / "results.json", result("gmp", 0.5, 1, 0, status="preempted"), age_s=3600)
    return root


@pytest.fixture(scope="module")
def report(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The report of the whole sweep, made once: (out folder, stdout, stderr)."""
    out = tmp_path_factory.mktemp("report")
    stdout, stderr = io.StringIO(), io.StringIO()  # capsys is function-scoped; this fixture runs once
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        main([str(sweep), "--out", str(out)])
    return out, stdout.getvalue(), stderr.getvalue()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_runs_csv_has_one_row_per_run_with_flat_columns(report: tuple[Path, str, str], sweep: Path) -> None:
    out, stdout, _ = report
    rows = read_csv(out / "runs.csv")
    assert len(rows) == 25  # 24 finished + 1 diverged; the broken file and the superseded copy left out
    assert sorted({r["status"] for r in rows}) == ["diverged", "finished"]
    assert "1 older result(s) of re-run cells ignored" in stdout
    cell = ("kmp", "0.75", "200", "1")
    row = next(r for r in rows if (r["method"], r["fraction"], r["prune_at"], r["seed"]) == cell)
    assert float(row["compression"]) == pytest.approx(TOTAL / (TOTAL - 0.75 * PRUNABLE))
    assert (row["experiment"], row["model"], row["dataset"], row["prune_step"]) == ("synth", "mnistnet", "mnist", "2ep")
    assert float(row["prune_epoch"]) == 2.0
    assert float(row["final_acc"]) == pytest.approx(accuracies("kmp", 0.75, 2, 1)[2])
    assert float(row["overlap_gmp"]) == pytest.approx(0.885) and row["overlap_ggp"] == ""
    assert float(row["koopman_distance_to_1"]) == pytest.approx(2e-3) and row["koopman_rank"] == "52"
    assert row["path"] == "kmp/t2/21/results.json" and (sweep / row["path"]).is_file()  # relative to the input


def test_summary_gives_mean_and_std_over_seeds(report: tuple[Path, str, str]) -> None:
    out, _, _ = report
    summary = (out / "summary.md").read_text(encoding="utf-8")
    section = next(s for s in summary.split("\n## ") if s.startswith("synth / mnistnet / mnist, pruned at 1 ep"))
    finals = [100 * accuracies("gmp", 0.5, 1, seed)[2] for seed in SEEDS]
    expected = f"{statistics.mean(finals):.2f} ± {statistics.stdev(finals):.2f}"
    line = next(x for x in section.splitlines() if x.startswith("| GMP | f = 0.5 | 0.5 |"))
    assert expected in line and line.rstrip().endswith("| 2 |")
    assert "## Runs that did not finish" in summary and "diverged" in summary
    assert "## Unreadable files" in summary and "broken" in summary
    for name in FIGURES:
        assert f"![{name}]({name}.png)" in summary


def test_every_figure_is_a_readable_png(report: tuple[Path, str, str]) -> None:
    from matplotlib.image import imread

    out, stdout, _ = report
    for name in FIGURES:
        path = out / f"{name}.png"
        assert f"wrote {path}" in stdout
        width, height = png_size(path)
        assert 600 <= width <= 4000 and 400 <= height <= 6000, (name, width, height)
        assert path.stat().st_size > 20_000
        assert imread(path).shape[:2] == (height, width)


def test_unreadable_file_is_one_warning_line(report: tuple[Path, str, str]) -> None:
    _, _, stderr = report
    warnings = [line for line in stderr.splitlines() if "unreadable" in line]
    assert len(warnings) == 1 and "broken" in warnings[0] and warnings[0].startswith("koopsweep report: warning:")


def test_figures_without_data_are_skipped_with_the_reason(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main([str(sweep / "gmp" / "t1"), "--out", str(tmp_path / "r"), "--group-by", "model,dataset,optimizer.lr"])
    stdout = capsys.readouterr().out
    assert "wrote" in stdout and (tmp_path / "r" / "accuracy_vs_compression.png").is_file()
    assert "skipped overlap_vs_time: no run reports a mask overlap" in stdout
    assert "skipped accuracy_vs_time: needs 2+ pruning times" in stdout
    assert "skipped koopman_vs_time: no Koopman runs" in stdout
    assert "skipped spectrum_complex_plane: no Koopman spectra" in stdout
    assert "skipped accuracy_gap_vs_time: needs KMP and GMP" in stdout
    assert not (tmp_path / "r" / "koopman_vs_time.png").exists()
    rows = read_csv(tmp_path / "r" / "runs.csv")
    assert len(rows) == 6 and {r["optimizer.lr"] for r in rows} == {"0.05"}


def test_empty_collection_is_one_line_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    for argv in ([], ["outputs"]):  # default folder, and the same folder given
        with pytest.raises(ConfigError) as error:
            main(argv)
        message = str(error.value)
        assert "\n" not in message and str(tmp_path / "outputs") in message and "koopsweep sweep local" in message
    assert not (tmp_path / "reports").exists()  # nothing written for an empty collection


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from koopsweep.cli import main as cli

    with pytest.raises(SystemExit) as exit_:
        cli(["report", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_same_seed_twice_in_a_cell_is_warned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for experiment in ("lr_small", "lr_large"):
        run = result("gmp", 0.5, 1, 0)
        run["config"]["experiment_name"] = experiment
        write(tmp_path / "runs" / experiment / "results.json", run)
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--group-by", "model,dataset"])
    assert "1 cell(s) hold the same seed more than once" in capsys.readouterr().err
    main([str(tmp_path / "runs"), "--out", str(tmp_path / "r")])  # the default groups by experiment too
    assert "same seed" not in capsys.readouterr().err


def test_unknown_group_by_key_is_a_config_error(sweep: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--group-by 'optimiser.lr'"):
        main([str(sweep / "gmp" / "t1"), "--out", str(tmp_path), "--group-by", "model,optimiser.lr"])


def test_a_report_folder_redraws_itself_from_its_tables(
    report: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Committed results (runs.csv + spectra.jsonl, no results.json) regenerate every figure in place."""
    import shutil

    out, _, _ = report
    committed = tmp_path / "committed"
    committed.mkdir()
    for name in ("runs.csv", "spectra.jsonl"):
        shutil.copy(out / name, committed / name)
    main([str(committed)])
    stdout = capsys.readouterr().out
    assert "from 1 runs.csv under" in stdout
    for name in FIGURES:
        assert (committed / f"{name}.png").is_file(), name
    assert read_csv(committed / "runs.csv") == read_csv(out / "runs.csv")
    assert (committed / "spectra.jsonl").read_text() == (out / "spectra.jsonl").read_text()

    def tables(path: Path) -> str:  # the agreement and result tables, not the provenance lines
        text = path.read_text(encoding="utf-8")
        return text[text.index("\n## Agreement") : text.index("\n## Runs that did not finish")]

    assert tables(committed / "summary.md") == tables(out / "summary.md")


def test_agreement_time_is_the_first_time_from_which_every_later_one_agrees() -> None:
    from koopsweep.report.agreement import measure

    def row(method: str, epoch: int, seed: int, overlap: float, acc: float) -> dict:
        return {
            "method": method,
            "trunk_id": f"t{seed}",
            "prune_at": 100 * epoch,
            "prune_epoch": float(epoch),
            "prune_step": f"{epoch}ep",
            "compression_target": 4.0,
            "fraction": 0.75,
            "overlap_gmp": overlap,
            "pruned_acc": acc,
            "final_acc": acc,
        }

    rows = []
    for seed in (0, 1):
        for epoch, overlap, gap in ((1, 0.95, -0.05), (2, 0.999, -0.004), (5, 0.995, 0.001), (20, 0.9999, 0.0)):
            rows += [row("gmp", epoch, seed, 1.0, 0.9), row("kmp", epoch, seed, overlap, 0.9 + gap)]
    found = measure(rows, "kmp", "gmp")
    assert found is not None and [label for _, label in found.times] == ["1ep", "2ep", "5ep", "20ep"]
    assert found.agreement_time() == (5.0, "5ep")  # 2ep's gap (-0.4 points) is too large, later ones agree
    assert found.gap_pruned[(1.0, 4.0)].mean == pytest.approx(-0.05) and found.gap_pruned[(1.0, 4.0)].n == 2
    rows = [r for r in rows if r["prune_epoch"] != 20.0] + [row("gmp", 20, 0, 1, 0.9), row("kmp", 20, 0, 0.5, 0.9)]
    assert measure(rows, "kmp", "gmp").agreement_time() is None  # the last time disagrees: no agreement
    unrefined = [{**r, "final_acc": None} for r in rows if r["prune_epoch"] != 20.0]  # schedule.finetune=0it runs
    found = measure(unrefined, "kmp", "gmp")
    assert not found.refined and found.agreement_time() == (5.0, "5ep")  # judged right after pruning alone
    from koopsweep.report.agreement import markdown

    text = "\n".join(markdown("g", found))
    assert "right after pruning (no run was refined)" in text and "after refinement (points)" not in text


def test_summary_states_the_agreement_of_each_pair(report: tuple[Path, str, str]) -> None:
    out, _, _ = report
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Agreement: synth / mnistnet / mnist, KMP vs GMP" in summary
    assert "KMP vs GMP: do not agree at the last pruning time" in summary  # KMP is 2 points worse throughout


def test_legends_get_as_many_columns_as_fit() -> None:
    from koopsweep.report.plot import legend_columns

    assert legend_columns(["2×", "4×", "8×"], width_in=10) == 3
    long = [f"a rather long legend entry number {i}" for i in range(11)]
    assert legend_columns(long, width_in=8) < 11
    assert legend_columns(long, width_in=8) * (len(long[0]) * 0.55 * 10 / 72 + 0.9) <= 8


def test_results_written_before_the_metric_names_were_unified_still_read(tmp_path: Path) -> None:
    """Old runs named the mask's figures `sparsity` and `compression`: their rows are the same."""
    from koopsweep.report.collect import read_run

    new = result("gmp", 0.75, 1, 0)
    old = json.loads(json.dumps(new))
    old["metrics"]["sparsity"] = old["metrics"].pop("mask/sparsity")
    old["metrics"]["compression"] = old["metrics"].pop("mask/compression")
    write(tmp_path / "new" / "results.json", new)
    write(tmp_path / "old" / "results.json", old)
    row_new, _ = read_run(tmp_path / "new" / "results.json")
    row_old, _ = read_run(tmp_path / "old" / "results.json")
    assert row_old["sparsity"] == row_new["sparsity"] == 0.75
    assert row_old["compression"] == row_new["compression"] == pytest.approx(TOTAL / (TOTAL - 0.75 * PRUNABLE))


SAMPLE = Path(__file__).resolve().parent / "data" / "report_sample"
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def redraw_committed(committed: Path, tmp_path: Path) -> None:
    """Copy a committed report's data (runs.csv, spectra.jsonl) alone, redraw it, compare with what is committed.

    The tables are compared as text, exactly, on any CPU: they are means and sample deviations of the committed
    numbers (numpy sums in a fixed order, and IEEE arithmetic rounds the same under every instruction set; checked
    with numpy's SIMD dispatch limited to its baseline, NPY_DISABLE_CPU_FEATURES), rounded to the printed digits.
    """
    import re
    import shutil

    folder = tmp_path / committed.name
    folder.mkdir()
    for name in ("runs.csv", "spectra.jsonl"):
        shutil.copy(committed / name, folder / name)
    main([str(folder)])
    expected = (committed / "summary.md").read_text(encoding="utf-8")
    redrawn = (folder / "summary.md").read_text(encoding="utf-8")

    def tables(text: str) -> str:  # everything after the figure list: agreement and result tables
        figures = text.index("\n## Figures")
        return text[text.index("\n## ", figures + 1) :]

    assert tables(redrawn) == tables(expected)
    figures = re.findall(r"!\[(\w+)\]\(\1\.png\)", expected)
    assert figures and figures == re.findall(r"!\[(\w+)\]\(\1\.png\)", redrawn)
    for name in figures:
        assert (folder / f"{name}.png").stat().st_size > 10_000, name


@pytest.mark.reference
def test_a_committed_sample_of_the_mnist_results_redraws_from_its_data(tmp_path: Path) -> None:
    """tests/data/report_sample is a slice of docs/results/mnist (every experiment, a few cells)."""
    redraw_committed(SAMPLE, tmp_path)


@pytest.mark.slow
@pytest.mark.reference
@pytest.mark.parametrize("name", ["mnist", "fig1", "cifar10"])
def test_the_committed_reproductions_redraw_from_their_data(name: str, tmp_path: Path) -> None:
    redraw_committed(RESULTS / name, tmp_path)


# ------------------------------------------------------------------------------------- what a report writes
def test_paths_are_relative_to_the_inputs_and_no_written_file_names_the_machine(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    main([str(sweep / "gmp" / "t1"), str(sweep / "kmp" / "t1"), "--out", str(out)])
    rows = read_csv(out / "runs.csv")
    assert rows and all(r["path"].startswith(("gmp/t1/", "kmp/t1/")) for r in rows)  # from the inputs' parent
    assert all((sweep / r["path"]).is_file() for r in rows)
    for path in out.iterdir():
        if path.suffix in (".csv", ".md", ".jsonl"):
            text = path.read_text(encoding="utf-8")
            assert str(sweep) not in text and str(tmp_path) not in text, path.name


def test_an_older_runs_csv_with_absolute_paths_is_redrawn_with_relative_ones(
    report: tuple[Path, str, str], tmp_path: Path
) -> None:
    import shutil

    out, _, _ = report
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    shutil.copy(out / "spectra.jsonl", legacy / "spectra.jsonl")
    rows = read_csv(out / "runs.csv")
    with (legacy / "runs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "path": f"/private/grid/outputs/{r['path']}"} for r in rows)
    main([str(legacy)])
    assert [r["path"] for r in read_csv(legacy / "runs.csv")] == [r["path"] for r in rows]


def report_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_redraw_that_fails_half_way_leaves_the_previous_report_whole(
    sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from koopsweep.report import figures

    out = tmp_path / "r"
    main([str(sweep / "gmp" / "t1"), str(sweep / "kmp" / "t1"), "--out", str(out)])
    (out / "README.md").write_text("notes kept beside the report\n")
    before = report_files(out)
    original = figures.save
    calls: list[Path] = []

    def save_then_fail(figure, path: Path) -> Path:
        calls.append(original(figure, path))
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if stopped between two figures
        return calls[-1]

    monkeypatch.setattr(figures, "save", save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        main([str(sweep), "--out", str(out)])
    assert report_files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    monkeypatch.setattr(figures, "save", original)
    main([str(sweep / "gmp" / "t1"), "--out", str(out)])  # a report that now skips figures the old one drew
    assert (out / "README.md").read_text() == "notes kept beside the report\n"  # carried over
    assert not (out / "spectrum_complex_plane.png").exists() and "spectrum_complex_plane.png" in before
    assert len(read_csv(out / "runs.csv")) == 6 and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_a_redraw_killed_half_way_leaves_the_previous_report_whole(sweep: Path, tmp_path: Path) -> None:
    """SIGKILL while the figures are drawn: the old folder is untouched; the next report removes the leftover."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "r"
    main([str(sweep / "gmp" / "t1"), "--out", str(out)])
    before = report_files(out)
    marker = tmp_path / "drawing"
    script = f"""
import time
from pathlib import Path
from koopsweep.report import figures
original = figures.save
def save(figure, path):
    original(figure, path)
    Path({str(marker)!r}).touch()
    time.sleep(60)
figures.save = save
from koopsweep.commands.report import main
main([{str(sweep)!r}, "--out", {str(out)!r}])
"""
    child = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the child never drew a figure"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert report_files(out) == before
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".r.report-")]
    assert len(leftovers) == 1 and (leftovers[0] / "runs.csv").is_file()  # the cut redraw, beside the report
    main([str(sweep / "gmp" / "t1"), "--out", str(out)])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.report-")]


def test_a_folder_that_is_not_a_report_is_never_replaced(sweep: Path, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("x")
    with pytest.raises(ConfigError, match="holds files but no report"):
        main([str(sweep / "gmp" / "t1"), "--out", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_two_folders_are_exchanged_in_one_step(tmp_path: Path) -> None:
    from koopsweep.atomic import exchange_paths

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    if not exchange_paths(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this file system cannot exchange paths (the report falls back to two renames)")
    assert (tmp_path / "b" / "from_a").exists() and not any((tmp_path / "a").iterdir())


def _spectrum(experiment: str, trunk: str, seed: int, re: list[float]) -> dict:
    return {
        "experiment": experiment, "model": "resnet20", "dataset": "cifar10", "seed": seed, "trunk_id": trunk,
        "prune_at": 391, "prune_epoch": 1.0, "prune_step": "end", "chosen_re": 1.0, "chosen_im": 0.0,
        "re": re, "im": [0.0] * len(re),
    }  # fmt: skip


def test_one_time_groups_sit_side_by_side_and_a_shared_fit_is_drawn_once() -> None:
    """Fig. 1's layout: one network per group, pruned once; the unrefined copy of a grid (same trunk, same fit)
    is named beside the refined one instead of drawn again."""
    from koopsweep.report.figures import Data, spectrum_complex_plane, spectrum_picks

    keys = ("experiment", "model", "dataset")
    spectra = [
        _spectrum("fig1_resnet20", "t0", 0, [1.0, 0.9]),
        _spectrum("fig1_resnet20", "t1", 1, [1.0, 0.8]),
        _spectrum("fig1_resnet20_pruned", "t0", 0, [1.0, 0.9]),  # the same fit as the first
        _spectrum("fig1_resnet56", "t9", 0, [1.0, 0.7]),
    ]
    picks = spectrum_picks(Data([], spectra, keys))
    assert [(title.splitlines()[0], [p["trunk_id"] for p in shown]) for title, shown in picks] == [
        ("fig1_resnet20 / resnet20 / cifar10", ["t0"]),  # the lowest seed of the group
        ("fig1_resnet56 / resnet20 / cifar10", ["t9"]),
    ]
    assert picks[0][0].splitlines()[1] == "(also fig1_resnet20_pruned)"
    fig = spectrum_complex_plane(Data([], spectra, keys))
    drawn = [ax for ax in fig.axes if ax.get_visible()]
    assert len(drawn) == 4  # two groups × (whole disk, near 1)
    tops = sorted(drawn, key=lambda ax: ax.get_position().y0)[-2:]
    assert tops[0].get_position().y0 == pytest.approx(tops[1].get_position().y0)  # side by side, one row
    assert {ax.get_title().splitlines()[0] for ax in tops} == {"fig1_resnet20", "fig1_resnet56"}
    # the same fit under another seed or trunk is another spectrum: both groups keep theirs
    other = [_spectrum("a", "t0", 0, [1.0, 0.9]), _spectrum("b", "t0", 0, [1.0, 0.91])]
    assert len(spectrum_picks(Data([], other, keys))) == 2


def test_a_converged_grid_on_a_timing_grids_trunk_is_drawn_as_its_last_time() -> None:
    from koopsweep.report.figures import Data, spectrum_picks

    keys = ("experiment", "model", "dataset")
    converged = _spectrum("converged", "t0", 0, [1.0, 0.5])
    early = {**_spectrum("timing", "t0", 0, [1.0, 0.9]), "prune_at": 100, "prune_epoch": 0.25, "prune_step": "100it"}
    late = {**converged, "experiment": "timing"}
    picks = spectrum_picks(Data([], [converged, early, late], keys))
    assert len(picks) == 1 and picks[0][0] == "timing / resnet20 / cifar10\n(also converged)"
    assert [p["prune_epoch"] for p in picks[0][1]] == [0.25, 1.0]  # the timing row keeps its converged end


def test_a_fit_recomputed_from_a_window_recorded_again_is_one_spectrum(tmp_path: Path) -> None:
    """KMP and KMP (cluster) on one trunk: the cluster radius has its own fit file, so the window is recorded again
    (under another thread count its last bits differ): the same fit for the report, one spectrum. Other DMD
    settings (delays) are another fit."""
    from koopsweep.report.collect import collect

    def kmp(name: str, re2: float, delays: int) -> dict:
        run = result("kmp", 0.5, 1, 0)
        run["branch_id"] += name
        run["koopman"] |= {"snapshots": 100, "delays": delays, "rank_tol": 0.0, "max_rank": 0}
        run["koopman"]["spectrum"]["re"][1] = re2
        return run

    write(tmp_path / "a" / "results.json", kmp("plain", 0.9, 0))
    write(tmp_path / "b" / "results.json", kmp("cluster", 0.9000001, 0))
    assert [s["re"][1] for s in collect([tmp_path]).spectra] == [0.9]  # the first read
    write(tmp_path / "c" / "results.json", kmp("delayed", 0.8, 1))
    assert sorted(s["re"][1] for s in collect([tmp_path]).spectra) == [0.8, 0.9]
