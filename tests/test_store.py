"""The trunk/branch store: ids, reuse, bit-exact branches and resume, locking, corruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from koopsweep.artifacts import load_checked
from koopsweep.config.compose import compose_config
from koopsweep.store import trunk_id
from koopsweep.train.run import run_experiment

REPO = Path(__file__).resolve().parent.parent


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checked(out / "model.pt")


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class TestTrunkIds:
    def test_changes_with_what_decides_the_dense_run(self):
        base = trunk_id(compose_config([], check=False))
        assert trunk_id(compose_config(["seed=1"], check=False)) != base
        assert trunk_id(compose_config(["optimizer.lr=0.2"], check=False)) != base
        assert trunk_id(compose_config(["model=mnistnet"], check=False)) != base
        assert trunk_id(compose_config(["dataset.batch_size=64"], check=False)) != base

    def test_unchanged_by_pruning_and_finetuning(self):
        base = trunk_id(compose_config([], check=False))
        for override in [
            "pruner=kmp" if (REPO / "conf/pruner/kmp.yaml").exists() else "pruner=random",
            "pruner.fraction=0.3",
            "schedule.prune_at=1ep",
            "schedule.finetune=3ep",
            "schedule.finetune_lr=0.001",
            "koopman.window=200it",
            "dataset.eval_batch_size=10",
            "logger=none",
        ]:
            assert trunk_id(compose_config([override], check=False)) == base, override

    def test_a_new_option_at_its_default_keeps_old_ids(self, monkeypatch):
        from dataclasses import field, make_dataclass

        from koopsweep.config import schema
        from koopsweep.store import ids

        base = trunk_id(compose_config([], check=False))
        extended = make_dataclass(
            "OptimizerConfig", [("dampening", float, field(default=0.0))], bases=(schema.OptimizerConfig,)
        )
        from omegaconf import OmegaConf

        cfg = OmegaConf.create(OmegaConf.to_container(compose_config([], check=False)))
        cfg.optimizer.dampening = 0.0
        monkeypatch.setitem(ids.TRUNK_FIELDS, "optimizer", (extended, (*ids.TRUNK_FIELDS["optimizer"][1], "dampening")))
        assert trunk_id(cfg) == base
        cfg.optimizer.dampening = 0.5
        assert trunk_id(cfg) != base


def test_zero_fraction_branch_reproduces_the_dense_run_bit_for_bit(make_cfg, tiny):
    branch = run_experiment(make_cfg([*tiny, "pruner.fraction=0", "schedule.prune_at=1ep"], out="branch"))
    dense = run_experiment(
        make_cfg(
            [*tiny, "pruner=none", "schedule.finetune=0it", "schedule.train=2ep", "store.reuse=false"], out="dense"
        )
    )
    assert branch["iterations"]["end"] == dense["iterations"]["end"]
    assert branch["metrics"]["final/test_acc"] == dense["metrics"]["final/test_acc"]
    assert branch["metrics"]["final/test_loss"] == dense["metrics"]["final/test_loss"]
    assert _same_weights(Path(branch["config"]["paths"]["output_dir"]), Path(dense["config"]["paths"]["output_dir"]))


def test_second_run_reuses_the_trunk_and_matches_a_run_without_reuse(make_cfg, tiny):
    first = run_experiment(make_cfg([*tiny, "pruner.fraction=0.5"], out="a"))
    second = run_experiment(make_cfg([*tiny, "pruner.fraction=0.9"], out="b"))
    fresh = run_experiment(make_cfg([*tiny, "pruner.fraction=0.9", "store.reuse=false"], out="c"))
    assert first["metrics"]["trunk/reused_iterations"] == 0
    assert second["metrics"]["trunk/reused_iterations"] == second["iterations"]["prune_at"]
    assert fresh["metrics"]["trunk/reused_iterations"] == 0
    for key in ("dense/test_acc", "pruned/test_loss", "final/test_loss"):
        assert second["metrics"][key] == fresh["metrics"][key]


def test_a_reused_cell_evaluates_only_what_is_its_own(make_cfg, tiny, monkeypatch):
    """The dense evaluation at t comes from the trunk, the final one is the last period's: no state twice."""
    from koopsweep.train import session as run_module

    calls: list[int] = []
    original = run_module.evaluate

    def counting(model, x, y, batch_size):
        calls.append(1)
        return original(model, x, y, batch_size)

    monkeypatch.setattr(run_module, "evaluate", counting)
    cut = [*tiny, "schedule.prune_at=1ep", "pruner=gmp"]  # 8 it/epoch, evaluations every 4 it
    first = run_experiment(make_cfg([*cut, "pruner.fraction=0.5"], out="a"))
    trained = len(calls)
    second = run_experiment(make_cfg([*cut, "pruner.fraction=0.9"], out="b"))
    assert trained == 5  # dense at 4 and 8 (reused as the dense result), pruned at 8, fine-tuning at 12 and 16
    assert len(calls) - trained == 3  # pruned at 8, fine-tuning at 12 and 16 (= final)
    for key in ("dense/test_acc", "dense/test_loss"):
        assert second["metrics"][key] == first["metrics"][key]


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_koopman_run_keeps_a_few_vectors_not_its_window(make_cfg, tiny, tmp_path):
    """The window is fitted under the lock, θ* and ĝ cached, the snapshots dropped; KGP then needs no window."""
    cut = [*tiny, "schedule.prune_at=1ep"]
    dense = run_experiment(make_cfg([*cut, "pruner=gmp"], out="gmp"))
    trunk = tmp_path / "store" / "trunks" / dense["trunk_id"]
    before = _tree_bytes(trunk)
    kmp = run_experiment(make_cfg([*cut, "pruner=kmp"], out="kmp"))
    assert not (trunk / "windows").exists()  # recorded in memory: no snapshot ever written
    fits = list((trunk / "fits").glob("*.pt"))
    assert len(fits) == 1
    numel = kmp["metrics"]["params/prunable"]
    grown = _tree_bytes(trunk) - before
    states = _tree_bytes(trunk / "states")
    assert grown - states < 3 * 4 * numel + 200_000  # θ* and ĝ in float32, the summary, a state at the window start
    kgp = run_experiment(make_cfg([*cut, "pruner=kgp"], out="kgp"))
    assert kgp["metrics"]["trunk/reused_iterations"] == kgp["iterations"]["prune_at"]  # cached fit: no re-recording
    assert kgp["koopman"]["eigenvalue"] == kmp["koopman"]["eigenvalue"]


def test_a_window_over_the_memory_budget_is_recorded_to_disk_and_dropped(make_cfg, tiny, tmp_path, monkeypatch):
    from koopsweep.train import koopman_recording

    monkeypatch.setattr(koopman_recording, "memory_budget", lambda device: 1000)  # bytes: far too few
    kmp = run_experiment(make_cfg([*tiny, "schedule.prune_at=1ep", "pruner=kmp"], out="kmp"))
    trunk = tmp_path / "store" / "trunks" / kmp["trunk_id"]
    assert (trunk / "windows").is_dir() and not any((trunk / "windows").rglob("*.bin"))  # written, fitted, dropped
    assert kmp["koopman"]["rank"] >= 2


def test_a_dropped_window_is_recorded_again_bit_for_bit(make_cfg, tiny, tmp_path):
    """Another fit of a dropped window re-records it from the state at its start: the same snapshots exactly."""
    cut = [*tiny, "schedule.prune_at=1ep", "pruner=kmp"]
    first = run_experiment(make_cfg(cut, out="first"))  # records, fits, drops
    again = run_experiment(make_cfg([*cut, "koopman.delays=1", "store.keep_windows=true"], out="again"))
    assert again["metrics"]["trunk/reused_iterations"] < again["iterations"]["prune_at"]  # trained the window again
    fresh_cfg = make_cfg([*cut, "koopman.delays=1", "store.keep_windows=true"], out="fresh")
    with open_dict(fresh_cfg):
        fresh_cfg.paths.store_dir = str(tmp_path / "fresh_store")
    fresh = run_experiment(fresh_cfg)

    def chunk_hashes(root: Path) -> list[str]:
        manifest = next(root.rglob("manifest.json"))
        return [c["sha256"] for c in json.loads(manifest.read_text())["chunks"]]

    store = tmp_path / "store" / "trunks" / again["trunk_id"]
    assert chunk_hashes(store) == chunk_hashes(tmp_path / "fresh_store")
    assert fresh["metrics"]["trunk/reused_iterations"] == 0  # recorded on the way from iteration 0
    assert again["metrics"]["final/test_loss"] == fresh["metrics"]["final/test_loss"]
    assert first["metrics"]["dense/test_loss"] == again["metrics"]["dense/test_loss"]


def test_a_corrupt_chunk_in_a_kept_window_is_recorded_again(make_cfg, tiny, tmp_path, caplog):
    """A complete window whose chunk rotted on disk: one warning, the window recorded again, the same numbers."""
    cut = [*tiny, "schedule.prune_at=1ep", "pruner=kmp", "store.keep_windows=true"]
    first = run_experiment(make_cfg(cut, out="first"))
    window = next((tmp_path / "store" / "trunks" / first["trunk_id"] / "windows").iterdir())
    manifest = json.loads((window / "manifest.json").read_text())
    chunk = window / manifest["chunks"][0]["file"]
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 0xFF  # in the snapshot data: sizes and header still agree with the manifest
    chunk.write_bytes(bytes(data))
    again = run_experiment(make_cfg([*cut, "koopman.delays=1"], out="again"))  # another fit of the same window
    assert caplog.text.count("recording the window again") == 1
    assert again["status"] == "finished"
    assert again["metrics"]["trunk/reused_iterations"] < again["iterations"]["prune_at"]  # trained the window again
    rerecorded = json.loads((window / "manifest.json").read_text())
    assert [c["sha256"] for c in rerecorded["chunks"]] == [c["sha256"] for c in manifest["chunks"]]
    fresh_cfg = make_cfg([*cut, "koopman.delays=1"], out="fresh")
    with open_dict(fresh_cfg):
        fresh_cfg.paths.store_dir = str(tmp_path / "fresh_store")
    assert again["metrics"]["final/test_loss"] == run_experiment(fresh_cfg)["metrics"]["final/test_loss"]


def test_corrupt_state_is_detected_and_rebuilt(make_cfg, tiny, tmp_path, caplog):
    first = run_experiment(make_cfg(tiny, out="a"))
    states = sorted((tmp_path / "store" / "trunks" / first["trunk_id"] / "states").glob("it-*.pt"))
    target = states[-1]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    second = run_experiment(make_cfg(tiny, out="b"))
    assert "corrupt" in caplog.text
    assert second["metrics"]["trunk/reused_iterations"] < second["iterations"]["prune_at"]
    assert second["metrics"]["final/test_loss"] == first["metrics"]["final/test_loss"]
    assert load_checked(target) is not None  # rebuilt and verified


def test_diverged_run_ends_with_status_diverged(make_cfg, tiny):
    results = run_experiment(make_cfg([*tiny, "optimizer.lr=1e6", "pruner.fraction=0.5"]))
    assert results["status"] == "diverged"
    assert "run/diverged_at" in results["metrics"]


def _koopsweep(args: list[str], tmp_path: Path, stop_at: int | None = None, env_extra: dict | None = None):
    """Run koopsweep in a subprocess; with ``stop_at`` it sends itself SIGTERM right after that iteration."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from koopsweep.train.loop import Trainer
        stop_at = {stop_at!r}
        original = Trainer.step
        def step(self):
            if stop_at is not None and self.iteration + 1 == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)
            return original(self)
        Trainer.step = step
        from koopsweep.cli import main
        main(sys.argv[1:])
        """
    )
    env = {
        **os.environ,
        "KOOPSWEEP_ROOT": str(tmp_path),
        "WANDB_MODE": "disabled",
        "OMP_NUM_THREADS": "1",
        **(env_extra or {}),
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240
    )


def _results_in(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["dense", "finetune"])
def test_sigterm_then_rerun_resumes_bit_exact(tmp_path, tiny, phase):
    import random

    args = ["logger=none", "threads=1", *tiny, "pruner.fraction=0.5", "schedule.prune_at=1ep"]
    ipe = 8  # 512 samples / batch 64
    rng = random.Random(0 if phase == "dense" else 1)
    stop_at = rng.randint(2, ipe - 1) if phase == "dense" else rng.randint(ipe + 2, 2 * ipe - 1)
    stopped = _koopsweep([*args, "hydra.run.dir=out/stopped"], tmp_path, stop_at=stop_at)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert json.loads((tmp_path / "out/stopped/results.json").read_text())["status"] == "preempted"
    resumed = _koopsweep([*args, "hydra.run.dir=out/resumed"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = _koopsweep([*args, "hydra.run.dir=out/clean", "store.reuse=false"], tmp_path / "clean_root")
    assert clean.returncode == 0, clean.stderr[-2000:]
    r = json.loads((tmp_path / "out/resumed/results.json").read_text())
    c = json.loads((tmp_path / "clean_root/out/clean/results.json").read_text())
    assert r["status"] == "finished"
    assert r["metrics"]["final/test_loss"] == c["metrics"]["final/test_loss"]
    assert _same_weights(tmp_path / "out/resumed", tmp_path / "clean_root/out/clean")


@pytest.mark.slow
def test_three_concurrent_runs_train_their_trunk_once(tmp_path, tiny):
    env = {**os.environ, "KOOPSWEEP_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "koopsweep",
                "logger=none",
                "threads=1",
                *tiny,
                f"pruner.fraction={f}",
                f"hydra.run.dir=out/{i}",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, f in enumerate((0.3, 0.6, 0.9))
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
    results = _results_in(tmp_path / "out")
    reused = sorted(r["metrics"]["trunk/reused_iterations"] for r in results)
    prune_at = results[0]["iterations"]["prune_at"]
    assert reused == [0, prune_at, prune_at]
    assert len({r["metrics"]["dense/test_loss"] for r in results}) == 1
