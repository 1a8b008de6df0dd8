"""W&B sweep files run anywhere: checked and composed point by point, expanded as W&B does, launched by Hydra.

spec (load and check a file; files: shipped sweeps by name) -> grid (W&B's expansion, Hydra's comma sweep)
-> agent_command (the command line a W&B agent runs) -> points (compose every point, trunk ids) -> plan (launch
order, proof that Hydra's jobs equal the grid) -> launch (local joblib / SLURM submitit multiruns, `wandb.sweep`;
the Hydra plugins they need checked by launcher_plugins). Beside them: requeue (a re-queued run's command line as
overrides) and gpu_agents (`koopsweep agent`: one `wandb agent` per GPU on a box).
"""

from koopsweep.sweeps.spec import SweepSpec, load_spec

__all__ = ["SweepSpec", "load_spec"]
