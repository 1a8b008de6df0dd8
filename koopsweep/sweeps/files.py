"""Where a sweep file comes from: a path the user gives, or a sweep shipped with koopsweep, by name.

The paper's sweeps ship inside the wheel (``koopsweep/sweep_files/``, from the repository's ``sweeps/``), so an
installed koopsweep runs ``koopsweep sweep local smoke`` from any directory, with no checkout. Lookup order:

1. an existing file at the given path (relative to the current directory): your own sweep, or ``sweeps/smoke.yaml``
   in a checkout;
2. otherwise a bare name (``smoke`` or ``smoke.yaml``, no folder) is a shipped sweep;
3. otherwise one line that names the shipped sweeps.
"""

from __future__ import annotations

from pathlib import Path

from koopsweep.errors import ConfigError

SUFFIXES = (".yaml", ".yml")


def sweeps_dir() -> Path:
    """The shipped sweep files: inside the installed package (wheel) or beside it (checkout, editable install)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "sweep_files", here.parent / "sweeps"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise FileNotFoundError(f"koopsweep's sweep files are missing (looked in {here} and {here.parent})")


def shipped_sweeps() -> dict[str, Path]:
    """Name -> file of every shipped sweep, sorted by name."""
    try:
        folder = sweeps_dir()
    except FileNotFoundError:
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _bare_name(text: str) -> str | None:
    """``smoke`` for ``smoke`` or ``smoke.yaml``; None for anything with a folder in it."""
    if not text or "/" in text or "\\" in text:
        return None
    for suffix in SUFFIXES:
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def resolve_sweep(arg: str | Path) -> Path:
    """The sweep file ``arg`` means (see the module docstring); raise ConfigError with one line when there is none."""
    text = str(arg)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.exists():
        raise ConfigError(f"sweep {text}: is not a file (give a sweep file or the name of a shipped sweep)")
    shipped = shipped_sweeps()
    name = _bare_name(text)
    if name is not None and name in shipped:
        return shipped[name]
    known = ", ".join(shipped) or "none: koopsweep's sweep files are missing from this installation"
    guess = _bare_name(path.name)
    hint = f"; for the shipped one, give its name: {guess}" if guess in shipped and guess != name else ""
    raise ConfigError(f"sweep {text!r} not found: not a file here, nor a shipped sweep ({known}){hint}")
