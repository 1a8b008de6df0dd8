"""Find every results.json under some folders and flatten each into one row of runs.csv.

Reading is forgiving (a broken file is reported and skipped, a missing metric is an empty cell) because a report
is usually made while a sweep is still running or after some jobs died.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from koopsweep.report.schema import results_problem

Row = dict[str, Any]

# (column, key in results["metrics"]); accuracies and losses stay as stored (accuracy in [0, 1]).
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("sparsity", "mask/sparsity"),
    ("compression", "mask/compression"),
    ("dense_acc", "dense/test_acc"),
    ("dense_loss", "dense/test_loss"),
    ("pruned_acc", "pruned/test_acc"),
    ("pruned_loss", "pruned/test_loss"),
    ("final_acc", "final/test_acc"),
    ("final_loss", "final/test_loss"),
    ("overlap_gmp", "overlap/gmp"),
    ("overlap_ggp", "overlap/ggp"),
    ("koopman_eigenvalue_re", "koopman/eigenvalue_re"),
    ("koopman_eigenvalue_im", "koopman/eigenvalue_im"),
    ("koopman_distance_to_1", "koopman/distance_to_1"),
    ("koopman_rank", "koopman/rank"),
    ("koopman_imag_ratio", "koopman/imag_ratio"),
    ("koopman_residual", "koopman/residual"),
    ("koopman_fixed_point_distance", "koopman/fixed_point_distance"),
    ("koopman_amplitude_share", "koopman/amplitude_share"),
    ("koopman_reconstruction_error", "koopman/reconstruction_error"),
    ("koopman_spectral_radius", "koopman/spectral_radius"),
    ("koopman_unstable_modes", "koopman/unstable_modes"),
    ("params_total", "params/total"),
    ("params_nonzero", "params/nonzero"),
    ("flops_speedup", "flops/speedup"),
    ("time_total_s", "time/total_s"),
)

# results.json of runs made before the metric names were unified (docs/logging.md) used these
LEGACY_KEYS = {"mask/sparsity": "sparsity", "mask/compression": "compression"}

COLUMNS: tuple[str, ...] = (
    "experiment", "model", "dataset", "seed", "method", "fraction", "compression_target",
    *(c for c, _ in METRIC_COLUMNS[:2]),
    "prune_at", "prune_epoch", "prune_step", "end_iteration",
    *(c for c, _ in METRIC_COLUMNS[2:]),
    "status", "trunk_id", "branch_id", "path",
)  # fmt: skip


@dataclass
class Collection:
    """The rows read, and what was left out: unreadable files and older copies of the same run."""

    roots: list[Path]
    files: int = 0
    rows: list[Row] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    superseded: list[Path] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    spectra: list[Row] = field(default_factory=list)
    source: str = "results.json"
    base: Path | None = None  # the folder row paths are relative to (None: they were read from a runs.csv)

    def shown(self, path: Path | str) -> str:
        """A path as the report writes it: relative to the inputs, never the machine's absolute folder."""
        return relative_path(path, self.base) if self.base is not None else Path(path).name

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[str(row["status"])] = counts.get(str(row["status"]), 0) + 1
        return counts


def number(value: Any) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN, booleans)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def dotted(tree: Any, path: str) -> Any:
    """``tree["a"]["b"]`` for ``"a.b"``; None where a level is missing."""
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _kept(value: Any) -> int | float | None:
    """A metric as stored (counts stay integers), or None when it is not a finite number."""
    return value if number(value) is not None else None


def input_base(paths: Sequence[Path]) -> Path:
    """The folder a report's paths are relative to: the one folder given, or the common parent of all inputs."""
    folders = [str(p.resolve() if p.is_dir() else p.resolve().parent) for p in paths]
    return Path(os.path.commonpath(folders))


def relative_path(path: Path | str, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX separators), so a report's copy on another machine names no private
    folder."""
    return Path(os.path.relpath(path, base)).as_posix()


def find_results(paths: Iterable[Path]) -> list[Path]:
    """Every results.json under the folders (or the files themselves), each once, in path order."""
    found: set[Path] = set()
    for path in paths:
        if path.is_file():
            found.add(path.resolve())
        else:
            found.update(p.resolve() for p in path.rglob("results.json") if p.is_file())
    return sorted(found)


def drop_unrefined_final(row: Row) -> Row:
    """A run that ended where it pruned (``schedule.finetune=0it``) was never refined: its "final" metrics are the
    pruned network's again, so they are blanked rather than drawn as "after refinement"."""
    end, prune_at = number(row.get("end_iteration")), number(row.get("prune_at"))
    if end is not None and prune_at is not None and end == prune_at:
        row["final_acc"] = row["final_loss"] = None
    return row


def flatten(data: dict[str, Any], path: Path, extra: Sequence[str] = ()) -> Row:
    """One results.json as a flat row; ``extra`` names config keys (``optimizer.lr``) to copy as columns."""
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else {}
    its = data.get("iterations") if isinstance(data.get("iterations"), dict) else {}
    prune_at, per_epoch = number(its.get("prune_at")), number(its.get("per_epoch"))
    step = dotted(cfg, "schedule.prune_at")
    row: Row = {
        "experiment": cfg.get("experiment_name"),
        "model": dotted(cfg, "model.name"),
        "dataset": dotted(cfg, "dataset.name"),
        "seed": cfg.get("seed"),
        "method": data.get("pruner") or dotted(cfg, "pruner.name"),
        "fraction": _kept(data.get("fraction", dotted(cfg, "pruner.fraction"))),
        "compression_target": _kept(data.get("compression_target", dotted(cfg, "pruner.compression"))),
        "prune_at": None if prune_at is None else int(prune_at),
        "prune_epoch": round(prune_at / per_epoch, 4) if prune_at is not None and per_epoch else None,
        "prune_step": None if dotted(cfg, "schedule") is None else ("end" if step is None else str(step)),
        "end_iteration": its.get("end"),
        "status": data.get("status", "unknown"),
        "trunk_id": data.get("trunk_id"),
        "branch_id": data.get("branch_id"),
        "path": str(path),
    }
    for column, key in METRIC_COLUMNS:
        row[column] = _kept(metrics.get(key, metrics.get(LEGACY_KEYS.get(key, ""))))
    row.update({key: dotted(cfg, key) for key in extra})
    return drop_unrefined_final({column: row.get(column) for column in (*COLUMNS, *extra)})


def read_run(path: Path, extra: Sequence[str] = ()) -> tuple[Row, Row | None]:
    """Parse and flatten one file, with its Koopman spectrum if any; ValueError (one line) when it is not a
    results.json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(" ".join(str(error).split())) from error
    if not isinstance(data, dict) or "status" not in data:
        raise ValueError("not a koopsweep results.json (no 'status')")
    problem = results_problem(data)  # a malformed file never becomes a row, nor displaces a valid run
    if problem is not None:
        raise ValueError(problem)
    row = flatten(data, path, extra)
    return row, spectrum_record(data, row, extra)


# What identifies a spectrum in spectra.jsonl: the fit's trunk and time, and the keys a report groups by.
SPECTRUM_KEYS: tuple[str, ...] = (
    "experiment",
    "model",
    "dataset",
    "seed",
    "trunk_id",
    "prune_at",
    "prune_epoch",
    "prune_step",
)


# The fit settings that decide the eigenvalues (θ*'s cluster radius does not): two fits of one trunk's window with
# these equal are the same fit, recomputed (a window recorded again under another thread count differs in its
# last bits, and so do the eigenvalues), and the report keeps one of them.
FIT_SETTINGS: tuple[str, ...] = ("snapshots", "delays", "rank_tol", "max_rank")


def _short(values: Iterable[Any]) -> list[float]:
    """Eigenvalue parts to 9 significant digits (|λ − 1| of a converged fit is ~1e-6: still resolved)."""
    return [float(f"{float(v):.9g}") for v in values]


def spectrum_record(data: dict[str, Any], row: Row, extra: Sequence[str] = ()) -> Row | None:
    """The DMD eigenvalues of a Koopman run and the chosen one, keyed like its row; None for other runs."""
    koopman = data.get("koopman")
    spectrum = koopman.get("spectrum") if isinstance(koopman, dict) else None
    if not isinstance(spectrum, dict) or not spectrum.get("re"):
        return None
    chosen = koopman.get("eigenvalue") or {}
    settings = [koopman.get(k) for k in FIT_SETTINGS]
    return {
        **{k: row.get(k) for k in (*SPECTRUM_KEYS, *extra)},
        "fit": "/".join(map(str, settings)) if any(v is not None for v in settings) else None,
        "chosen_re": number(chosen.get("re")),
        "chosen_im": number(chosen.get("im")),
        "re": _short(spectrum["re"]),
        "im": _short(spectrum.get("im", [0.0] * len(spectrum["re"]))),
    }


def _latest_per_run(rows: list[Row], mtimes: dict[str, float]) -> tuple[list[Row], list[Path]]:
    """One row per (experiment, branch id): a resumed run leaves its preempted results.json in an older folder."""
    best: dict[tuple[Any, Any], Row] = {}
    dropped: list[Path] = []
    for row in rows:
        key = (row["experiment"], row["branch_id"] or row["path"])
        old = best.get(key)
        rank = (row["status"] == "finished", mtimes[row["path"]])
        if old is None or rank > (old["status"] == "finished", mtimes[old["path"]]):
            if old is not None:
                dropped.append(Path(old["path"]))
            best[key] = row
        else:
            dropped.append(Path(row["path"]))
    kept = set(id(r) for r in best.values())
    return [r for r in rows if id(r) in kept], dropped


def _distinct_spectra(spectra: Iterable[Row]) -> list[Row]:
    """One spectrum per fit: (experiment, trunk, pruning time, FIT_SETTINGS), the first read; KMP and KGP runs
    share a fit. Records without settings (older spectra.jsonl) are told apart by their eigenvalues."""
    seen: dict[tuple[Any, ...], Row] = {}
    for record in spectra:
        fit = record.get("fit") or tuple(record["re"][:8])
        key = (record["experiment"], record["trunk_id"], record["prune_at"], fit)
        seen.setdefault(key, record)
    return sorted(seen.values(), key=lambda r: (str(r["experiment"]), str(r["trunk_id"]), r["prune_at"] or 0))


def collect(paths: Sequence[Path], extra: Sequence[str] = ()) -> Collection:
    """Read every results.json under ``paths``; unreadable files are listed, not fatal."""
    found = find_results(paths)
    result = Collection(roots=list(paths), files=len(found), extra_columns=list(extra))
    rows, mtimes, spectra = [], {}, {}
    for path in found:
        try:
            row, spectrum = read_run(path, extra)
        except ValueError as error:
            result.unreadable.append((path, str(error)))
            continue
        rows.append(row)
        mtimes[row["path"]] = path.stat().st_mtime
        if spectrum is not None and row["status"] == "finished":
            spectra[row["path"]] = spectrum
    result.rows, result.superseded = _latest_per_run(rows, mtimes)
    result.spectra = _distinct_spectra(spectra[r["path"]] for r in result.rows if r["path"] in spectra)
    result.base = input_base(paths)
    for row in result.rows:
        row["path"] = relative_path(row["path"], result.base)
    return result


# ------------------------------------------------------------------------------------- committed tables
RUNS_CSV, SPECTRA_JSONL = "runs.csv", "spectra.jsonl"
TEXT_COLUMNS = frozenset(
    {"experiment", "model", "dataset", "method", "prune_step", "status", "trunk_id", "branch_id", "path"}
)


def _cell(column: str, text: str) -> Any:
    """A runs.csv cell back as the value collect() wrote: '' is None, numbers are numbers, text stays text."""
    if text == "":
        return None
    if column in TEXT_COLUMNS:
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def is_table_folder(path: Path) -> bool:
    """A folder holding a committed report (runs.csv) rather than runs (results.json files)."""
    return path.is_dir() and (path / RUNS_CSV).is_file() and next(path.rglob("results.json"), None) is None


def read_table(folder: Path, extra: Sequence[str] = ()) -> Collection:
    """A Collection from a report's own runs.csv and spectra.jsonl: figures redrawn without the runs."""
    with (folder / RUNS_CSV).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("method", "status") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{folder / RUNS_CSV} is not a koopsweep runs.csv (no column {missing[0]!r})")
        lines = list(reader)
    cut = next((n for n, line in enumerate(lines, 2) if None in line or None in line.values()), None)
    if cut is not None or not (folder / RUNS_CSV).read_bytes().endswith(b"\n"):
        where = f"row {cut}" if cut is not None else "its last row"
        raise ValueError(
            f"{folder / RUNS_CSV} is cut short ({where} does not have every column): restore it (e.g. from git) "
            "before redrawing, so that no run is lost"
        )
    rows = [{k: _cell(k, v or "") for k, v in line.items()} for line in lines]
    for row in rows:
        for column in (*COLUMNS, *extra):
            row.setdefault(column, None)
        drop_unrefined_final(row)
    _portable(rows)
    spectra: list[Row] = []
    path = folder / SPECTRA_JSONL
    if path.is_file():
        spectra = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return Collection(roots=[folder], files=1, rows=rows, extra_columns=list(extra), spectra=spectra, source=RUNS_CSV)


def _portable(rows: list[Row]) -> None:
    """Absolute paths of a runs.csv written before paths were relative: made relative to their common folder."""
    absolute = [row["path"] for row in rows if isinstance(row["path"], str) and os.path.isabs(row["path"])]
    if not absolute:
        return
    base = Path(os.path.commonpath([os.path.dirname(p) for p in absolute]))
    for row in rows:
        if isinstance(row["path"], str) and os.path.isabs(row["path"]):
            row["path"] = relative_path(row["path"], base)


def write_spectra(spectra: Sequence[Row], path: Path) -> Path:
    """spectra.jsonl: one Koopman spectrum per line (what the spectrum figure needs, and nothing else)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in spectra), encoding="utf-8")
    return path
