"""How large a grid (a sweep file, a ``-m`` multirun) koopsweep checks and launches before it asks to be told so.

Why a cap: a typo in a range (1,000 fractions x 1,000 seeds) should be one line at once, not hours of checking and
gigabytes of job lists; a grid that large is years of CPU time for the paper's networks anyway.
"""

from __future__ import annotations

import os

from koopsweep.errors import ConfigError

MAX_RUNS = 100_000
"""The largest grid a sweep command checks unless asked for more (--max-runs, $KOOPSWEEP_MAX_RUNS): 100,000 runs
is years of CPU time for the paper's networks, and a typo in a range (1,000 x 1,000 values) should not start."""


def run_cap(asked: int | None = None) -> int:
    """The cap in force: ``asked`` (--max-runs), else $KOOPSWEEP_MAX_RUNS, else MAX_RUNS."""
    if asked is not None:
        return asked
    text = os.environ.get("KOOPSWEEP_MAX_RUNS", "").strip()
    if not text:
        return MAX_RUNS
    if not text.isdigit():
        raise ConfigError(f"KOOPSWEEP_MAX_RUNS={text!r} is not a number of runs")
    return int(text)
