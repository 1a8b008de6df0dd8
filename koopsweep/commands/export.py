"""``koopsweep export RUN_DIR [--format prune|dense|masks] [--out FILE]``: a finished run in PyTorch's formats.

Reads the run's model.pt and masks.pt (checksums verified, tensors only) and writes a plain ``torch.save`` file that
``torch.load(path, weights_only=True)`` reads without koopsweep.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

EPILOG = """formats:
  prune   torch.nn.utils.prune's layout: m.weight_orig + m.weight_mask per pruned tensor (prune.remove, sparsity
          counting and global_unstructured follow-ups work unchanged)
  dense   a plain state_dict with the removed entries 0: model.load_state_dict(torch.load(FILE, weights_only=True))
  masks   the keep-masks alone, by parameter name (bool; prune.custom_from_mask takes them)

examples:
  koopsweep export outputs/runs/default/2026-11-25_21-03-33-4f9c1a
  koopsweep export outputs/multiruns/converged_mnistnet/main/7 --format dense --out mnistnet-16x.pt
"""


def _parser():
    import argparse

    from koopsweep.commands.parsing import OneLineParser
    from koopsweep.prune.export import FORMATS

    parser = OneLineParser(
        prog="koopsweep export",
        description="Export a finished run's pruned network or masks for plain PyTorch.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run's output folder (or its results.json)")
    parser.add_argument("--format", choices=FORMATS, default="prune", help="what to write (default: prune)")
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: RUN_DIR/export/FORMAT.pt)")
    return parser


def main(argv: Sequence[str]) -> None:
    import torch

    from koopsweep.atomic import atomic_write
    from koopsweep.errors import ArtifactError, ConfigError
    from koopsweep.prune.export import export_state
    from koopsweep.runfolder import open_run

    args = _parser().parse_args(list(argv))
    run = open_run(args.run_dir)
    if run.masks is None:
        raise ConfigError(f"export: the run in {run.folder} was never pruned (pruner {run.results.get('pruner')})")
    try:
        state = export_state(args.format, run.state_dict, run.masks)
    except ValueError as exc:
        raise ArtifactError(f"export: {run.folder}: {exc}") from None
    out = args.out or run.folder / "export" / f"{args.format}.pt"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        atomic_write(out, buffer.getbuffer())
    except OSError as exc:
        raise ConfigError(f"export: cannot write {out}: {exc.strerror or exc}") from None
    kept = sum(int(m.sum()) for m in run.masks.values())
    total = sum(m.numel() for m in run.masks.values())
    size = out.stat().st_size / 1e6
    print(f"wrote {out} ({args.format}: {len(state)} tensors, {size:.2f} MB; {kept:,} of {total:,} prunable kept)")
