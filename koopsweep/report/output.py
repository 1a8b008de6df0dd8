"""A report folder replaced as a whole: built in a sibling folder, then swapped in, so that a redraw killed half-way
leaves the previous report whole (never a mix of old and new figures, never a cut runs.csv).

Files in the old folder that a report does not write (a README beside committed results) are carried over; report
files the new report no longer writes (a figure now skipped) go with the old folder. A folder that is not a report
is never replaced.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from koopsweep import failpoints
from koopsweep.atomic import current_umask, exchange_paths, process_alive
from koopsweep.errors import ConfigError
from koopsweep.report.collect import RUNS_CSV, SPECTRA_JSONL
from koopsweep.report.dynamics_tables import DISTANCES_CSV, DYNAMICS_MD, PREDICTORS_CSV
from koopsweep.report.figures import FIGURES

SUMMARY = "summary.md"
FIGURE_FORMATS = ("png", "pdf", "svg")
REPORT_FILES = frozenset(
    {
        *(RUNS_CSV, SPECTRA_JSONL, SUMMARY, DYNAMICS_MD, DISTANCES_CSV, PREDICTORS_CSV),
        *(f"{name}.{fmt}" for name, _, _ in FIGURES for fmt in FIGURE_FORMATS),
    }
)


def _is_report(folder: Path) -> bool:
    return (folder / RUNS_CSV).is_file() or (folder / SUMMARY).is_file()


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"report: --out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_report(out):
        raise ConfigError(
            f"report: --out {out} holds files but no report (no {RUNS_CSV} or {SUMMARY}), and a report replaces its "
            "folder as a whole: choose a new folder or an earlier report's"
        )


def _prefix(out: Path) -> str:
    return f".{out.name}.report-{socket.gethostname()}-"


def _remove_leftovers(out: Path) -> None:
    """Staging folders of reports killed before their swap (this host's, whose process is gone)."""
    prefix = _prefix(out)
    for path in out.parent.glob(f"{prefix}*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _carry_over(old: Path, new: Path) -> None:
    """Copy what the old folder holds besides report files into the new one."""
    if not old.is_dir():
        return
    for path in old.iterdir():
        if path.name in REPORT_FILES or (new / path.name).exists():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.copytree(path, new / path.name, symlinks=True)
        else:
            shutil.copy2(path, new / path.name, follow_symlinks=False)


def _flush(folder: Path) -> None:
    """Every file of the staged report on the disk before the swap: a power loss after it finds whole files."""
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap_in(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``: one rename when ``out`` is new, one exchange when it exists (two renames where the
    file system cannot exchange), then delete the old report."""
    if not out.exists():
        os.rename(new, out)
        return
    if not exchange_paths(new, out):
        old = new.with_name(new.name + "-old")
        os.rename(out, old)
        try:
            os.rename(new, out)
        except BaseException:
            os.rename(old, out)
            raise
        new = old
    shutil.rmtree(new, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``out`` to write a report into; it becomes ``out`` when the block succeeds, and
    is deleted (``out`` untouched) when it raises."""
    out = Path(os.path.abspath(out))
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f"{_prefix(out)}{os.getpid()}-"))
    try:
        stage.chmod(0o777 & ~current_umask())
        yield stage
        _carry_over(out, stage)
        _flush(stage)
        failpoints.hit("swap", out)
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
