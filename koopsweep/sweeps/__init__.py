"""W&B sweep files run anywhere: checked and composed point by point, expanded as W&B does, launched by Hydra.

spec (load and check a file) -> grid (W&B's expansion, Hydra's comma sweep) -> agent (the agent's command line)
-> points (compose every point, trunk ids) -> plan (launch order, proof that Hydra's jobs equal the grid)
-> launch (local joblib / SLURM submitit multiruns, `wandb.sweep`).
"""

from koopsweep.sweeps.spec import SweepSpec, load_spec

__all__ = ["SweepSpec", "load_spec"]
