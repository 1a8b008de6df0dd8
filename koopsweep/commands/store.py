"""``koopsweep store list | inspect ID | curve ID… | gc``: look into the trunk store, read its dense training curves,
and clean it (dry run by default)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from koopsweep.errors import ConfigError
from koopsweep.store.ids import spec_field
from koopsweep.store.store import BRANCH_STATE, Store
from koopsweep.store.trunk import Trunk


def default_store_dir() -> Path:
    """``paths.store_dir`` of the default config (honours KOOPSWEEP_STORE_DIR / KOOPSWEEP_ROOT)."""
    from koopsweep.config.compose import compose_config

    return Path(compose_config([], check=False).paths.store_dir)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _describe(trunk: Trunk) -> dict:
    spec, problem = trunk.read_spec()
    seed = spec.get("seed")
    return {
        "id": trunk.id,
        "model": spec_field(spec, "model", "_target_"),
        "dataset": spec_field(spec, "dataset", "name"),
        "seed": seed if isinstance(seed, (int, str)) or seed is None else "?",
        "spec_problem": problem,
        "states": trunk.state_iterations(),
        "windows": [p.name for p in trunk.window_dirs()],
        "fits": trunk.fit_keys(),
        "bytes": trunk.size_bytes(),
        "last_used": trunk.last_used(),
        "spec": spec,
    }


def _trunks(store: Store) -> list[Trunk]:
    return [store.open_trunk(folder) for folder in store.trunk_dirs()]


def cmd_list(store: Store) -> None:
    trunks = [_describe(t) for t in _trunks(store)]
    if not trunks:
        print(f"no trunks in {store.root}")
        return
    print(f"{'trunk':16}  {'model':12} {'dataset':10} {'seed':>4}  {'states (it)':24} {'windows':>7}  {'size':>9}")
    for t in trunks:
        states = ",".join(map(str, t["states"][-4:])) + ("…" if len(t["states"]) > 4 else "")
        print(
            f"{t['id']:16}  {t['model'][:12]:12} {t['dataset'][:10]:10} {t['seed']!s:>4}  {states[:24]:24} "
            f"{len(t['windows']):>7}  {_human(t['bytes']):>9}"
            + (f"  ({t['spec_problem']})" if t["spec_problem"] else "")
        )
    print(f"{len(trunks)} trunk(s), {_human(sum(t['bytes'] for t in trunks))} in {store.root}")


def _one_trunk(store: Store, trunk_id: str) -> Trunk:
    matches = [t for t in _trunks(store) if t.id.startswith(trunk_id)]
    if len(matches) != 1:
        raise ConfigError(
            f"{len(matches)} trunks in {store.root} start with '{trunk_id}': give more of the id "
            "(`koopsweep store list` shows them)"
        )
    return matches[0]


def cmd_inspect(store: Store, trunk_id: str) -> None:
    info = _describe(_one_trunk(store, trunk_id))
    info["last_used"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["last_used"]))
    print(json.dumps(info, indent=2))


def cmd_curve(store: Store, trunk_ids: Sequence[str], csv_path: Path | None, plot_path: Path | None) -> None:
    """Print each trunk's stored dense curve; optionally write all of them as one CSV and one figure."""
    from koopsweep.report import trunk_curves

    curves = [trunk_curves.read_curve(_one_trunk(store, trunk_id)) for trunk_id in trunk_ids]
    empty = [c.trunk_id for c in curves if not c.rows]
    if empty:
        raise ConfigError(
            f"trunk {', '.join(empty)} has no readable evaluations in curves.jsonl: not trained yet (train it "
            "first), or its records were dropped as the line above says"
        )
    print("\n\n".join(trunk_curves.table(c) for c in curves))
    if csv_path is not None:
        print(f"wrote {trunk_curves.write_csv(curves, csv_path)}")
    if plot_path is not None:
        print(f"wrote {trunk_curves.plot(curves, plot_path)}")


def gc_candidates(store: Store, older_than_days: float | None, everything: bool, windows: bool = False) -> list[Path]:
    """What ``gc`` removes: leftover temp files, orphaned branch checkpoints and private trunks, old trunks, and
    with ``windows`` the recorded snapshot windows (cached fits stay; a new fit records its window again)."""
    now = time.time()
    found = [p for p in store.root.rglob(".*.tmp")] if store.root.is_dir() else []
    found += [b for b in store.branch_dirs() if everything or not any(b.rglob(BRANCH_STATE))]
    for trunk in _trunks(store):
        if everything or (older_than_days is not None and now - trunk.last_used() > older_than_days * 86400):
            found.append(trunk.path)
        elif windows:
            found += trunk.window_dirs()
    return found


def cmd_gc(store: Store, older_than_days: float | None, everything: bool, windows: bool, apply: bool) -> None:
    """Remove (or list) the candidates, each under its trunk's lock: what a running job holds is skipped."""
    from koopsweep.store.lock import describe, try_hold

    done, total = 0, 0
    for path in gc_candidates(store, older_than_days, everything, windows):
        with contextlib.ExitStack() as held:
            holders = (held.enter_context(try_hold(lock)) for lock in store.locks_of(path))
            busy = next((who for who in holders if who is not None), None)
            if busy is not None:
                print(f"skipping {path.relative_to(store.root)}: in use, locked by {describe(busy)}")
                continue
            total += _size(path) if path.is_dir() else path.stat().st_size
            done += 1
            print(f"{'removing' if apply else 'would remove'} {path.relative_to(store.root)}")
            if apply:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    verb = "freed" if apply else "would free"
    print(f"{done} item(s), {verb} {_human(total)}" + ("" if apply else "; add --apply to delete"))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="koopsweep store", description=__doc__)
    parser.add_argument("--store", type=Path, default=None, help="store folder (default: paths.store_dir)")
    sub = parser.add_subparsers(dest="verb", required=True)
    sub.add_parser("list", help="one line per trunk")
    inspect = sub.add_parser("inspect", help="everything about one trunk")
    inspect.add_argument("trunk_id")
    curve = sub.add_parser("curve", help="the dense training curves of one or more trunks (table, CSV, figure)")
    curve.add_argument("trunk_ids", nargs="+", metavar="trunk_id", help="trunk ids or unique prefixes")
    curve.add_argument("--csv", type=Path, default=None, help="also write the curves to this CSV file")
    curve.add_argument("--plot", type=Path, default=None, help="also draw them (test accuracy, loss, lr) to this image")
    gc = sub.add_parser("gc", help="remove temp files, orphaned branches and old trunks (dry run unless --apply)")
    gc.add_argument("--older-than", type=float, default=None, metavar="DAYS", help="also trunks unused for DAYS")
    gc.add_argument("--all", action="store_true", help="remove every trunk and branch")
    gc.add_argument("--windows", action="store_true", help="also the recorded snapshot windows (fits stay cached)")
    gc.add_argument("--apply", action="store_true", help="really delete")
    args = parser.parse_args(list(argv))
    store = Store(args.store or default_store_dir())
    if args.verb == "list":
        cmd_list(store)
    elif args.verb == "inspect":
        cmd_inspect(store, args.trunk_id)
    elif args.verb == "curve":
        cmd_curve(store, args.trunk_ids, args.csv, args.plot)
    else:
        cmd_gc(store, args.older_than, args.all, args.windows, args.apply)
