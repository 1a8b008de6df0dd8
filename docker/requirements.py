"""koopsweep's runtime requirements for the container images, read from pyproject.toml (standard library only).

The images install dependencies in a layer of their own, before the code is copied, so that editing the code does
not reinstall them. That layer sees only pyproject.toml; this prints its dependencies (and the extras asked for),
one per line, for ``pip install -r``, with the versions pinned by ``-c docker/constraints.txt``; and the build
backend (hatchling), so that the code layer installs with ``--no-build-isolation`` from pinned versions, offline.

    python docker/requirements.py pyproject.toml slurm > /tmp/requirements.txt

``--installed torch torchvision`` prints ``torch==VERSION`` lines for what is installed (the base image's torch,
kept by passing them as constraints). ``--lock`` prints the pins instead: every distribution that those requirements
pull in, at the version installed in the current environment, except torch, torchvision and the CUDA wheels, which
each image pins itself. Run it in the environment the test suite passed in to refresh docker/constraints.txt.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

import tomllib

# Pinned by each image itself (the GPU base image's torch, the CPU index's +cpu builds), never by constraints.txt.
IMAGE_PINNED = ("torch", "torchvision", "triton")
HEADER = """\
# Versions the container images install (pip install -c docker/constraints.txt): the environment the test suite
# passed in. torch and torchvision are pinned by each Dockerfile itself. Regenerate in such an environment with
#   python docker/requirements.py --lock pyproject.toml slurm > docker/constraints.txt"""


def canonical(name: str) -> str:
    """PEP 503 normalised name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: Path, extras: Iterable[str] = ()) -> list[str]:
    """The project's dependencies, those of the given extras and its build backend, as written in pyproject.toml."""
    toml = tomllib.loads(pyproject.read_text())
    project = toml["project"]
    found = [*project["dependencies"], *toml["build-system"]["requires"]]
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"requirements.py: no extra {extra!r} in {pyproject} (known: {', '.join(optional)})")
        found += optional[extra]
    return found


def image_pinned(name: str) -> bool:
    """Whether the image pins this distribution itself (torch and the CUDA wheels that come with it)."""
    name = canonical(name)
    return name in IMAGE_PINNED or name.startswith(("nvidia-", "cuda-"))


def lock(roots: Iterable[str]) -> list[str]:
    """``name==version`` for every installed distribution these requirements need, recursively (markers honoured),
    except the image-pinned ones (whose own dependencies, sympy and the like, are pinned)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def needed(requirement: str, extras: Iterable[str]) -> bool:
        marker = Requirement(requirement).marker
        return marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras))

    seen: set[str] = set()
    pins = []
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonical(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen or name.startswith(("nvidia-", "cuda-")) or (req.marker and not needed(str(req), ())):
            continue
        seen.add(key)
        dist = metadata.distribution(req.name)
        if not image_pinned(name):
            pins.append(f"{name}=={dist.version}")
        todo += [Requirement(r) for r in dist.requires or () if needed(r, req.extras)]
    return [HEADER, *sorted(set(pins))]


def installed(names: Iterable[str]) -> list[str]:
    """``name==version`` of installed distributions: what the base image brought, to keep it (``-c``)."""
    from importlib import metadata

    return [f"{canonical(name)}=={metadata.version(name)}" for name in names]


def main(argv: list[str]) -> None:
    """``requirements.py [--lock] PYPROJECT [EXTRA ...]`` or ``requirements.py --installed NAME ...``."""
    if not argv or argv[0] in ("-h", "--help"):
        raise SystemExit(__doc__)
    if argv[0] == "--installed":
        print("\n".join(installed(argv[1:])))
    elif argv[0] == "--lock":
        print("\n".join(lock(requirements(Path(argv[1]), argv[2:]))))
    else:
        print("\n".join(requirements(Path(argv[0]), argv[1:])))


if __name__ == "__main__":
    main(sys.argv[1:])
