"""A sweep run re-queued by a W&B agent: its command line carries the run's whole W&B config; make it overrides.

When a preempted sweep run is resumed, the agent passes every key of the run's W&B config as `key=value` (wandb
issues 4237 and 9143), not only the sweep's parameters: W&B's own `_wandb`, and what koopsweep put there (see
train.run.start_tracker) — the resolved config under `hydra_cfg`, `trunk_id`, `branch_id` and the flat dotted
keys (`optimizer.lr=0.05`). The flat keys are the run's own resolved values, so as overrides they compose the same
config again, except `None` (which Hydra would read as the string "None") and `paths.output_dir`, the folder of
the interrupted invocation (the resumed one gets its own). Those are fixed; the bookkeeping keys are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from koopsweep.tracking import RESOLVED_CONFIG_KEY

# Keys of a koopsweep run's W&B config that are not config values; any of them on a command line marks a requeue.
BOOKKEEPING_KEYS = ("_wandb", RESOLVED_CONFIG_KEY, "trunk_id", "branch_id")
PER_INVOCATION_KEYS = ("paths.output_dir",)


def _key(arg: str) -> str | None:
    if arg.startswith("-") or "=" not in arg:
        return None
    return arg.split("=", 1)[0].lstrip("+~")


def is_requeued(argv: Sequence[str]) -> bool:
    """True when ``argv`` holds a W&B run config re-passed by an agent (a key no user override has)."""
    return any(_key(arg) in BOOKKEEPING_KEYS for arg in argv)


def strip_run_config(argv: Sequence[str]) -> list[str]:
    """``argv`` without the re-passed bookkeeping keys, its `None`s as `null`; unchanged unless re-queued."""
    if not is_requeued(argv):
        return list(argv)
    out = []
    for arg in argv:
        key = _key(arg)
        if key in BOOKKEEPING_KEYS or key in PER_INVOCATION_KEYS:
            continue
        if key is not None and arg.split("=", 1)[1] == "None":
            arg = f"{arg.split('=', 1)[0]}=null"
        out.append(arg)
    return out
