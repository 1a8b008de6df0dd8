"""The container image's entrypoint: ``docker run IMAGE [ARGS]`` runs ``koopsweep ARGS``, or another program.

- no arguments, a Hydra override (``model=mnistnet``), an option (``--version``, ``-m``) or a koopsweep subcommand
  (``sweep``, ``agent``, ``store``, ``report``): ``koopsweep ARGS``. ``agent SWEEP`` is the multi-box mode: one
  ``wandb agent`` per visible GPU (koopsweep.sweeps.gpu_agents).
- anything else that is a program on PATH (``bash``, ``wandb sync ...``, ``python``): that program, so the image
  also serves for debugging and for uploading offline runs without ``--entrypoint``.

The chosen program replaces this process (exec), so it receives ``docker stop``'s SIGTERM itself; run the image with
``--init`` (compose: ``init: true``) so that a minimal init reaps orphans and forwards signals as PID 1.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence

from koopsweep.commands import COMMANDS


def is_koopsweep(argv: Sequence[str], which: Callable[[str], str | None] = shutil.which) -> bool:
    """Whether ``argv`` is a koopsweep command line rather than another program's."""
    if not argv:
        return True
    first = argv[0]
    if first in COMMANDS or first.startswith(("-", "+", "~")) or "=" in first:
        return True
    return which(first) is None  # not a program: let koopsweep say what is wrong with it


def command(argv: Sequence[str], which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The command the container runs for ``argv``."""
    if is_koopsweep(argv, which):
        return [sys.executable, "-m", "koopsweep", *argv]
    return list(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Exec the command for ``argv`` (default: this process's arguments)."""
    args = command(sys.argv[1:] if argv is None else argv)
    sys.stdout.flush()
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
