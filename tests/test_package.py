"""koopsweep as an installed package: sweeps by name or path, launcher plugins, --version, and the wheel itself."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import koopsweep
from koopsweep.cli import main
from koopsweep.errors import ConfigError
from koopsweep.sweeps import launcher_plugins as launchers
from koopsweep.sweeps.files import resolve_sweep, shipped_sweeps, sweeps_dir
from koopsweep.sweeps.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
NAMES = [
    "converged_mnistnet",
    "converged_resnet20",
    "converged_resnet20_cpu",
    "fcn_width",
    "fig1_mnistnet",
    "fig1_mnistnet_cluster",
    "fig1_mnistnet_long",
    "fig1_resnet20",
    "fig1_resnet20_cluster",
    "fig1_resnet56",
    "smoke",
    "timing_kgp",
    "timing_kmp",
    "timing_resnet20",
]
SMOKE = """\
method: grid
parameters:
  pruner.fraction: {values: [0.5, 0.9]}
command: ["${env}", "koopsweep", "experiment=smoke_sweep", "${args_no_hyphens}"]
"""


# --- sweeps by name or path ---------------------------------------------------------------------------------------


def test_shipped_sweeps_are_the_checkouts_sweep_files():
    assert sweeps_dir() == REPO / "sweeps"  # a checkout: the folder beside the package
    assert list(shipped_sweeps()) == NAMES


@pytest.mark.parametrize("arg", ["smoke", "smoke.yaml", "smoke.yml"])
def test_a_bare_name_is_a_shipped_sweep(arg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_sweep(arg) == REPO / "sweeps" / "smoke.yaml"
    assert load_spec(arg).name == "smoke"


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.yaml").write_text(SMOKE)
    assert resolve_sweep("smoke.yaml") == Path("smoke.yaml")  # the user's own file in the current directory
    assert load_spec("smoke.yaml").parameters == {"pruner.fraction": [0.5, 0.9]}
    assert resolve_sweep("smoke") == REPO / "sweeps" / "smoke.yaml"  # no file named exactly 'smoke' here
    mine = tmp_path / "mine" / "grid.yaml"
    mine.parent.mkdir()
    mine.write_text(SMOKE)
    assert resolve_sweep(str(mine)) == mine
    monkeypatch.chdir(REPO)
    assert resolve_sweep("sweeps/smoke.yaml") == Path("sweeps/smoke.yaml")


def test_an_unknown_sweep_is_one_line_naming_the_shipped_ones(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "validate", "smok"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        f"koopsweep: error: sweep 'smok' not found: not a file here, nor a shipped sweep ({', '.join(NAMES)})\n"
    )


def test_a_missing_path_to_a_shipped_sweep_says_to_give_its_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no sweeps/ folder here, as in an installed koopsweep
    with pytest.raises(ConfigError, match=r"not a file here.*; for the shipped one, give its name: smoke$"):
        resolve_sweep("sweeps/smoke.yaml")
    with pytest.raises(ConfigError, match="is not a file"):
        resolve_sweep(str(tmp_path))


# --- launcher plugins ---------------------------------------------------------------------------------------------


def test_the_launcher_plugins_of_the_dev_install_are_found():
    assert launchers.installed(launchers.JOBLIB)
    assert launchers.installed(launchers.SUBMITIT)


def _block(monkeypatch: pytest.MonkeyPatch, plugin: launchers.Plugin) -> None:
    """Make the plugin unimportable, as when it is not installed (None in sys.modules blocks an import)."""
    monkeypatch.setitem(sys.modules, plugin.module, None)
    assert not launchers.installed(plugin)


def test_jobs_without_the_joblib_launcher_names_the_pip_command(monkeypatch, capsys):
    _block(monkeypatch, launchers.JOBLIB)
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "local", "smoke", "--jobs", "2", "--threads", "1", "--dry-run"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "koopsweep: error: --jobs 2 needs Hydra's joblib launcher, which is not installed: "
        "pip install hydra-joblib-launcher\n"
    )
    main(["sweep", "local", "smoke", "--jobs", "1", "--dry-run"])  # one job runs in-process: no plugin needed
    assert "hydra/launcher" not in capsys.readouterr().out


def test_slurm_without_the_submitit_launcher_names_the_pip_command(monkeypatch, capsys):
    _block(monkeypatch, launchers.SUBMITIT)
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "slurm", "smoke", "--dry-run"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        "koopsweep: error: koopsweep sweep slurm needs Hydra's submitit launcher, which is not installed: "
        'pip install "koopsweep[slurm]"\n'
    )


# --- --version ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--version"], ["model=mnistnet", "--version"]])
def test_version_is_koopsweeps_with_its_dependencies(argv, capsys):
    main(argv)
    first, second = capsys.readouterr().out.splitlines()
    assert first == f"koopsweep {koopsweep.__version__} ({Path(koopsweep.__file__).resolve().parent})"
    for name in ("torch", "hydra-core", "wandb"):
        assert f"{name} {metadata.version(name)}" in second
    assert not first.startswith("Hydra")


# --- the wheel ----------------------------------------------------------------------------------------------------


def _yaml_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.yaml")}


def test_the_wheel_runs_sweeps_by_name_without_the_source_tree(tmp_path):
    """Build the wheel, install it alone into a folder, and run it from elsewhere with only that folder on the path."""
    dist, target, work = tmp_path / "dist", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)], check=True, timeout=120
    )
    (wheel,) = dist.glob("koopsweep-*.whl")
    assert wheel.name.startswith(f"koopsweep-{koopsweep.__version__}-")  # the version comes from __init__.py

    names = set(zipfile.ZipFile(wheel).namelist())
    conf = {n.removeprefix("koopsweep/conf/") for n in names if n.startswith("koopsweep/conf/") and n.endswith(".yaml")}
    expected = {n for n in _yaml_files(REPO / "conf") if not n.startswith("local/")}  # local/ is git-ignored
    assert conf == expected
    assert {n for n in names if n.startswith("koopsweep/sweep_files/")} == {
        f"koopsweep/sweep_files/{name}.yaml" for name in NAMES
    }
    assert not [n for n in names if n.startswith(("tests/", "docker/", "bench/", "conf/", "sweeps/"))]

    subprocess.run(
        [*pip, "install", "--no-deps", "--no-compile", "--target", str(target), str(wheel)], check=True, timeout=120
    )
    env = {**os.environ, "PYTHONPATH": str(target), "KOOPSWEEP_ROOT": str(work), "OMP_NUM_THREADS": "1"}

    def run(*argv: str) -> str:
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    probe = (
        "import koopsweep, koopsweep.config as c, koopsweep.sweeps.files as f;"
        "print(koopsweep.__file__); print(c.conf_dir()); print(f.sweeps_dir())"
    )
    package, conf_dir, sweeps = (Path(line) for line in run(sys.executable, "-c", probe).splitlines())
    installed = target / "koopsweep"
    assert package == installed / "__init__.py"
    assert conf_dir == installed / "conf"
    assert sweeps == installed / "sweep_files"

    out = run(sys.executable, "-m", "koopsweep", "sweep", "validate", "smoke")
    size, table = out.splitlines()[:2]
    assert size == "smoke: 8 runs in the grid; checking them"  # said before anything is composed
    assert table.startswith(f"{installed / 'sweep_files' / 'smoke.yaml'}: 8 runs, 1 trunk")
    assert str(REPO) not in out

    version = run(str(target / "bin" / "koopsweep"), "--version")  # the console script
    assert version.startswith(f"koopsweep {koopsweep.__version__} ({installed})\n")
