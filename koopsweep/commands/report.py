"""``koopsweep report [PATHS...]``: runs.csv, summary.md and the paper's figures from every results.json found.

Given a folder that holds a report's own runs.csv (and spectra.jsonl) instead of runs, it redraws that report in
place from the tables alone: committed results regenerate their figures without the runs that produced them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from koopsweep.errors import ConfigError

EPILOG = """examples:
  koopsweep report                                           # everything under ./outputs
  koopsweep report outputs/multiruns/converged_mnistnet      # KMP vs GMP against compression
  koopsweep report outputs/multiruns/timing_kmp outputs/multiruns/timing_kgp --out reports/timing --format pdf
  koopsweep report --group-by experiment,model,optimizer.lr  # any runs.csv column or config key
  koopsweep report docs/results/mnist                        # redraw a committed report from its runs.csv
  koopsweep report outputs/multiruns/fcn_width --distance-by model.kwargs.hidden,seed  # spectra by width, seed

figures: accuracy_vs_compression, overlap_vs_time, accuracy_vs_time, accuracy_gap_vs_time, koopman_vs_time,
spectrum_complex_plane, spectral_distance_matrix, spectral_distance_vs_time, koopman_predictors (see docs/report.md)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koopsweep report",
        description="Collect every results.json under the given folders into runs.csv, summary.md and figures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="folders searched recursively, or results.json files (default: outputs/, under $KOOPSWEEP_ROOT when set)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: reports/<timestamp>; a report folder given as PATH: itself)",
    )
    parser.add_argument("--format", choices=("png", "pdf", "svg"), default="png", help="figure format (png)")
    parser.add_argument(
        "--group-by",
        default="experiment,model,dataset",
        metavar="KEYS",
        help="comma-separated keys that split panels and tables: runs.csv columns or config keys "
        "such as optimizer.lr (default: experiment,model,dataset)",
    )
    parser.add_argument(
        "--distance-by",
        default="seed,prune_step",
        metavar="KEYS",
        help="comma-separated keys that label (and order) each Koopman spectrum in the spectral-distance matrix "
        "and its tables: runs.csv columns or config keys (default: seed,prune_step)",
    )
    return parser


def group_keys(text: str) -> list[str]:
    """``"model, dataset"`` → ["model", "dataset"]; each key once."""
    keys = [k.strip() for k in text.split(",") if k.strip()]
    return list(dict.fromkeys(keys))


def default_outputs() -> Path:
    """Where runs land by default (``paths.log_dir``): $KOOPSWEEP_ROOT/outputs, else outputs/ here."""
    return Path(os.environ.get("KOOPSWEEP_ROOT") or ".") / "outputs"


def _say(message: str) -> None:
    print(f"koopsweep report: {message}", file=sys.stderr)


def main(argv: Sequence[str]) -> None:
    from koopsweep.report.collect import (
        COLUMNS,
        RUNS_CSV,
        SPECTRA_JSONL,
        collect,
        is_table_folder,
        read_table,
        write_spectra,
    )
    from koopsweep.report.dynamics_tables import write_dynamics
    from koopsweep.report.figures import make_figures
    from koopsweep.report.output import SUMMARY, staged_folder
    from koopsweep.report.stats import repeated_seeds
    from koopsweep.report.tables import describe_counts, summary_markdown, write_csv

    args = _parser().parse_args(list(argv))
    for path in args.paths:
        if not path.exists():
            raise ConfigError(f"report: {path} does not exist; give folders that hold results.json files")
    paths = args.paths or [default_outputs()]
    keys = group_keys(args.group_by)
    labels = group_keys(args.distance_by)
    extra = [k for k in dict.fromkeys([*keys, *labels]) if k not in COLUMNS]
    table = len(paths) == 1 and is_table_folder(paths[0])
    if table:
        try:
            collection = read_table(paths[0], extra)
        except ValueError as error:
            raise ConfigError(f"report: {error}") from None
    else:
        collection = collect(paths, extra)
    for path, why in collection.unreadable:
        _say(f"warning: skipped unreadable {path}: {why}")
    where = ", ".join(str(p.resolve()) for p in paths)
    if not collection.rows:
        if collection.unreadable:
            raise ConfigError(f"report: none of the {collection.files} results.json under {where} could be read")
        raise ConfigError(
            f"report: no results.json under {where}; produce runs first (e.g. `koopsweep sweep local "
            "sweeps/converged_mnistnet.yaml` or `koopsweep experiment=smoke`) or pass the folders that hold them"
        )
    unknown = [k for k in extra if all(row[k] is None for row in collection.rows)]
    if unknown:
        option = "--group-by" if unknown[0] in keys else "--distance-by"
        raise ConfigError(
            f"report: {option} {unknown[0]!r} is neither a runs.csv column nor a config key of any run "
            f"(columns: {', '.join(COLUMNS[:6])}, ...; config keys look like optimizer.lr)"
        )

    superseded = len(collection.superseded)
    print(
        f"collected {describe_counts(collection)} from {collection.files} {collection.source} under {where}"
        + (f"; {superseded} older result(s) of re-run cells ignored" if superseded else "")
    )
    repeated = repeated_seeds([r for r in collection.rows if r["status"] == "finished"], keys)
    if repeated:
        joined = ",".join(keys)
        _say(
            f"warning: {repeated} cell(s) hold the same seed more than once (runs differing in a setting not in "
            f"--group-by {joined}?); they are averaged together: add it, e.g. --group-by experiment,{joined}"
        )

    out = args.out or (paths[0] if table else Path("reports") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    with staged_folder(out) as stage:  # the whole folder appears at once, or the previous report stays
        write_csv(collection.rows, [*COLUMNS, *extra], stage / RUNS_CSV)
        if collection.spectra:
            write_spectra(collection.spectra, stage / SPECTRA_JSONL)
        figures = make_figures(collection.rows, collection.spectra, stage, args.format, keys, labels)
        tables = write_dynamics(collection.rows, collection.spectra, stage, keys, labels)
        (stage / SUMMARY).write_text(summary_markdown(collection, keys, figures), encoding="utf-8")
    print(f"wrote {out / RUNS_CSV} ({len(collection.rows)} runs)")
    if collection.spectra:
        print(f"wrote {out / SPECTRA_JSONL} ({len(collection.spectra)} spectra)")
    print(f"wrote {out / SUMMARY}")
    for table in tables:
        print(f"wrote {out / table.name}")
    for fig in figures:
        print(f"wrote {out / fig.path.name} ({fig.note})" if fig.path else f"skipped {fig.name}: {fig.note}")
