"""The container images without a container engine: pins, layers, build context, the code layer's install, compose.

No docker runs here. What these tests do instead: check the pins against pyproject.toml, replay the Dockerfiles' COPY
instructions on a build context filtered by .dockerignore (as the Docker builder would send it) and build the wheel
from the result, as the image's code layer does.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cpu"]
_spec = importlib.util.spec_from_file_location("docker_requirements", REPO / "docker" / "requirements.py")
image_requirements = importlib.util.module_from_spec(_spec)  # docker/requirements.py, which the Dockerfiles run
_spec.loader.exec_module(image_requirements)

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _pins() -> dict[str, str]:
    lines = (REPO / "docker" / "constraints.txt").read_text().splitlines()
    pins = [line.split("==") for line in lines if line and not line.startswith("#")]
    return {image_requirements.canonical(name): version for name, version in pins}


def _instructions(dockerfile: Path) -> list[str]:
    """Instructions with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


# --- pins -----------------------------------------------------------------------------------------------------------


def test_requirements_are_pyprojects_dependencies_slurm_extra_and_build_backend():
    expected = [
        *PROJECT["project"]["dependencies"],
        *PROJECT["build-system"]["requires"],
        *PROJECT["project"]["optional-dependencies"]["slurm"],
    ]
    assert image_requirements.requirements(REPO / "pyproject.toml", ["slurm"]) == expected


def test_every_image_requirement_is_pinned_within_pyprojects_range():
    pins = _pins()
    for line in image_requirements.requirements(REPO / "pyproject.toml", ["slurm"]):
        req = Requirement(line)
        name = image_requirements.canonical(req.name)
        if image_requirements.image_pinned(name):
            assert name not in pins  # the Dockerfiles pin torch themselves
            continue
        assert name in pins, f"{name} has no pin in docker/constraints.txt: regenerate it (see its header)"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside pyproject's {req.specifier}"


def test_pins_are_what_the_tests_run_with():
    """constraints.txt is the environment the suite passes in: refresh it when a dependency moves."""
    for name in ("hydra-core", "omegaconf", "wandb", "numpy", "matplotlib", "hydra-joblib-launcher"):
        assert _pins()[name] == metadata.version(name), name


def test_cpu_image_torch_is_the_tested_torch():
    args = dict(re.findall(r"^ARG (TORCH\w*)=(\S+)$", (REPO / "docker" / "Dockerfile.cpu").read_text(), re.M))
    assert args["TORCH"] == metadata.version("torch").split("+")[0]
    assert args["TORCHVISION"] == metadata.version("torchvision").split("+")[0]
    assert image_requirements.installed(["torch"]) == [f"torch=={metadata.version('torch')}"]


# --- the Dockerfiles ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_are_a_layer_before_the_code(dockerfile):
    steps = _instructions(dockerfile)
    deps = next(i for i, s in enumerate(steps) if "pip install -r requirements.txt -c constraints.txt" in s)
    code = next(i for i, s in enumerate(steps) if s.startswith("COPY koopsweep"))
    copied_before = [s for s in steps[:deps] if s.startswith("COPY")]
    assert copied_before == ["COPY pyproject.toml docker/requirements.py docker/constraints.txt ./"]
    assert deps < code
    assert "--no-deps" in next(s for s in steps[code:] if "pip install" in s)  # the code layer adds no dependency


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_non_root_user_with_volumes_and_no_secret(dockerfile):
    steps = _instructions(dockerfile)
    assert steps[-1] == 'CMD ["--version"]'
    assert 'ENTRYPOINT ["python", "-m", "koopsweep.container"]' in steps
    users = [s for s in steps if s.startswith("USER ")]
    assert users == ["USER ${KOOPSWEEP_UID}:${KOOPSWEEP_UID}"]
    assert "ARG KOOPSWEEP_UID=10001" in steps
    assert 'VOLUME ["/work/data", "/work/store", "/work/outputs", "/work/wandb"]' in steps
    for step in steps:
        if step.startswith(("ENV", "ARG")):
            assert not re.search(r"KEY|TOKEN|SECRET|PASSWORD|NETRC", step.split(" ", 1)[1].upper()), step


# --- the build context and the code layer ---------------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus **) as a regex over a relative posix path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def _context(root: Path) -> set[str]:
    """The files of ``root`` that the Docker builder sends: the last matching pattern decides, and a pattern that
    matches a folder applies to everything in it (moby's MatchesOrParentMatches)."""
    rules = []
    for line in (root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negated = line.startswith("!")
            rules.append((negated, _regex(line.lstrip("!").strip("/"))))
    sent = set()
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        excluded = False
        for negated, regex in rules:
            if any(regex.match(c) for c in candidates):
                excluded = not negated
        if not excluded:
            sent.add(rel)
    return sent


def _copy(context: Path, sources: list[str], dest: Path) -> None:
    """Docker's COPY: a file to dest/ (by name) or to dest; a folder's contents into dest."""
    for source in sources:
        path = context / source
        assert path.exists(), f"COPY {source}: not in the build context (.dockerignore?)"
        if path.is_dir():
            shutil.copytree(path, dest, dirs_exist_ok=True)
        else:
            target = dest / path.name if len(sources) > 1 or str(dest).endswith("/") else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


JUNK = [
    "outputs/runs/x/results.json",
    "store/trunks/abc/spec.json",
    "multirun/x.yaml",
    "wandb/debug.log",
    "data/MNIST/raw/t10k",
    ".venv/bin/python",
    ".env",
    ".git/config",
    "conf/local/default.yaml",
    "koopsweep/__pycache__/cli.cpython-311.pyc",
    "bench/results/x.json",
    "tests/test_cli.py",
]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_build_context_holds_what_the_image_copies_and_nothing_local(dockerfile, tmp_path):
    """Replay the COPY steps on the context .dockerignore lets through, then the code layer's install (as a wheel)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for item in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(REPO / item, checkout / item)
    for item in ("conf", "sweeps", "koopsweep", "docker"):
        shutil.copytree(REPO / item, checkout / item, ignore=shutil.ignore_patterns("__pycache__", "local"))
    for junk in JUNK:  # what a working checkout also holds
        (checkout / junk).parent.mkdir(parents=True, exist_ok=True)
        (checkout / junk).write_text("local\n")

    sent = _context(checkout)
    assert not sent & set(JUNK)
    context = tmp_path / "context"
    for rel in sent:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / rel, context / rel)

    src = tmp_path / "src"  # WORKDIR /src
    src.mkdir()
    for step in _instructions(dockerfile):
        if step.startswith("COPY "):
            *sources, dest = step.split()[1:]
            _copy(context, sources, src / dest if dest != "./" else src)
    printed = subprocess.run(
        [sys.executable, "requirements.py", "pyproject.toml", "slurm"],
        cwd=src,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert printed == image_requirements.requirements(REPO / "pyproject.toml", ["slurm"])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            ".",
        ],
        cwd=src,
        check=True,
        timeout=120,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"koopsweep/container.py", "koopsweep/conf/config.yaml", "koopsweep/sweep_files/smoke.yaml"} <= names
    assert not any("local/default.yaml" in n or n.endswith(".pyc") for n in names)


# --- compose --------------------------------------------------------------------------------------------------------


def test_compose_runs_agents_that_share_one_store_volume():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"agent", "agent-cpu"}
    for service in services.values():
        assert service["init"] is True
        assert service["command"].split()[0] == "agent"
        assert "store:/work/store" in service["volumes"]
        assert service["environment"]["WANDB_API_KEY"].startswith("${WANDB_API_KEY:?")  # from the shell, at run time
        assert (REPO / "docker" / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert services["agent"]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "all"
    assert set(compose["volumes"]) == {"store", "data", "outputs", "wandb"}
