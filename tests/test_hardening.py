"""Issue 23's table, line by line: each case rerun as the audit ran it gives one clear line or the correct result.

The run-level cases share one tiny reference run (module fixture); every other case is checked where it is decided
(the store's records, the config checks, the report's reader), so the file adds a few seconds to the suite.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from koopsweep import failpoints
from koopsweep.artifacts import load_checked
from koopsweep.atomic import HOST, remove_stale_temps
from koopsweep.cli import main
from koopsweep.config.checks import check_config
from koopsweep.config.compose import compose_config
from koopsweep.errors import DIVERGED_EXIT_CODE, ConfigError
from koopsweep.report.collect import collect
from koopsweep.store.store import Store
from koopsweep.train.run import run_experiment

TINY = [
    "dataset=synthetic",
    "dataset.source.train=128",
    "dataset.source.test=64",
    "dataset.batch_size=32",
    "schedule.train=2ep",
    "schedule.finetune=1ep",
    "schedule.eval_every=4it",
    "pruner=gmp",
    "pruner.fraction=0.5",
    "logger=none",
    "threads=1",
    "progress=false",
]


@pytest.fixture(autouse=True)
def _no_stale_log_handlers() -> None:
    """Hydra's job logging, set up by an earlier in-process run, may still point at a stream pytest has closed since;
    a library logging through it (matplotlib's first font cache) would print a logging traceback into stderr."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(getattr(handler, "stream", None), "closed", False):
            root.removeHandler(handler)


def _compare(results: dict) -> dict:
    """What must equal an uninterrupted run: every metric but timings and who trained the trunk."""
    return {k: v for k, v in results["metrics"].items() if not k.startswith(("time/", "trunk/"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One uninterrupted tiny run: its store and its results.json."""
    root = tmp_path_factory.mktemp("reference")
    cfg = compose_config([*TINY, f"paths.root_dir={root}", f"paths.output_dir={root / 'run'}"])
    return root / "store", run_experiment(cfg)


def _run(tmp_path: Path, store: Path, *extra: str) -> dict:
    cfg = compose_config([*TINY, *extra, f"paths.root_dir={tmp_path}", f"paths.store_dir={store}"])
    cfg.paths.output_dir = str(tmp_path / f"run-{time.monotonic_ns()}")
    return run_experiment(cfg)


def _latest_results(root: Path) -> dict:
    found = sorted(root.rglob("results.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(found[-1].read_text())


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("koopsweep: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


@contextlib.contextmanager
def fault(match: str, point: str = "write", error: int = errno.ENOSPC, nth: int = 1) -> Iterator[None]:
    """Raise ``error`` at the ``nth`` ``point`` of a durable write whose path contains ``match``."""
    seen = [0]

    def hook(at: str, path: Path) -> None:
        if at == point and match in str(path):
            seen[0] += 1
            if seen[0] == nth:
                raise OSError(error, os.strerror(error), str(path))

    remove = failpoints.install(hook)
    try:
        yield
    finally:
        remove()


# --- 1, 2, 11 and the spec: the trunk's own files --------------------------------------------------------------------


def test_line01_an_edited_dense_evaluation_is_dropped_and_measured_again(tmp_path: Path, caplog) -> None:
    trunk = Store(tmp_path).trunk("t", {"seed": 0})
    trunk.save_eval("it79-a", {"acc": 0.9495, "loss": 0.1608})
    log = tmp_path / "trunks" / "t" / "evals.jsonl"
    log.write_text(log.read_text().replace("0.9495", "0.1234"))
    assert trunk.cached_eval("it79-a") is None
    assert caplog.text.count("checksum mismatch") == 1
    trunk.save_eval("it79-a", {"acc": 0.9495, "loss": 0.1608})  # measured again, kept again
    assert trunk.cached_eval("it79-a") == {"acc": 0.9495, "loss": 0.1608}


@pytest.mark.parametrize(
    ("name", "line", "why"),
    [
        ("evals.jsonl", "[1, 2]", "a JSON list"),
        ("evals.jsonl", '{"key": "it79-a", "loss": 0.1}', "no checksum"),
        ("evals.jsonl", '{"key": "it79-a", "acc": 0.9, "lo', "cut short"),
        ("curves.jsonl", "7", "a JSON int"),
    ],
)
def test_line02_a_record_that_is_not_a_record_is_dropped_with_one_warning(tmp_path, caplog, name, line, why) -> None:
    trunk = Store(tmp_path).trunk("t", {"seed": 0})
    trunk.append_curve({"iteration": 4, "train/loss": 2.0, "eval/test_acc": 0.5})
    trunk.save_eval("it79-b", {"acc": 0.5, "loss": 1.0})
    with open(tmp_path / "trunks" / "t" / name, "a") as handle:
        handle.write(line + "\n")
    assert trunk.cached_eval("it79-b") == {"acc": 0.5, "loss": 1.0}
    assert [r["iteration"] for r in trunk.curve(until=100)] == [4]
    (warning,) = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert why in warning and f"dropped 1 damaged record(s) of {name}" in warning


@pytest.mark.slow
def test_lines01_02_11_a_damaged_trunk_still_gives_the_uninterrupted_numbers(tmp_path, reference, caplog) -> None:
    """On a copy of the reference store: an edited evaluation, records that are no records, a spec.json rewritten
    by hand and a temporary file a killed writer left; the same run again gives the same numbers, repairs all."""
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    (trunk,) = (store / "trunks").iterdir()
    evals = trunk / "evals.jsonl"
    record = json.loads(evals.read_text().splitlines()[0])
    evals.write_text(evals.read_text().replace(repr(record["acc"]), "0.1234"))
    with open(evals, "a") as handle:
        handle.write("[1, 2]\n")
    with open(trunk / "curves.jsonl", "a") as handle:
        handle.write("7\n")
    (trunk / "spec.json").write_text('{"seed": 99}')
    orphan = trunk / "states" / f".it-000000004.pt~{HOST}~{2**22 + 7}~x1y2.tmp"  # no such pid
    orphan.write_bytes(b"half a state")
    again = _run(tmp_path, store)
    assert _compare(again) == _compare(reference[1])
    assert again["metrics"]["dense/test_acc"] == record["acc"]
    assert not orphan.exists()
    assert json.loads((trunk / "spec.json").read_text())["seed"] == 0
    assert "checksum mismatch" in caplog.text and "spec.json" in caplog.text


def test_line11_temporary_files_of_writers_that_are_gone_are_removed_under_the_lock(tmp_path: Path) -> None:
    trunk = Store(tmp_path).trunk("t", {"seed": 0})
    states = tmp_path / "trunks" / "t" / "states"
    states.mkdir()
    dead = states / f".it-000000079.pt~{HOST}~{2**22 + 11}~abc.tmp"
    alive = states / f".it-000000080.pt~{HOST}~{os.getpid()}~abc.tmp"  # this process is still writing it
    foreign = states / ".it-000000081.pt~otherhost~12~abc.tmp"  # another host: only once it is a day old
    legacy = states / ".it-000000082.pt.k2j3h4.tmp"  # koopsweep < 0.3 named no writer
    for path in (dead, alive, foreign, legacy):
        path.write_bytes(b"x")
    old = time.time() - 2 * 24 * 3600
    os.utime(legacy, (old, old))
    with trunk.lock():
        pass
    assert [p.name for p in sorted(states.iterdir())] == [alive.name, foreign.name]
    assert remove_stale_temps(states) == 0


# --- 3, 6, 13: numbers and command lines refused before training -----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=1e39", "optimizer.lr=1e+39 overflows fp32"),
        ("optimizer.weight_decay=1e39", "optimizer.weight_decay=1e+39 overflows fp32"),
        ("optimizer.lr=inf", "optimizer.lr=inf is not a finite number"),
        ("optimizer.lr=nan", "optimizer.lr=nan is out of range"),
        ("schedule.gamma=inf", "schedule.gamma=inf is not a finite number"),
        ("optimizer.lr=1e-50", "optimizer.lr=1e-50 is 0 in fp32"),
        ("pruner.fraction=0.000001", "pruner.fraction=1e-06 removes no weight"),
        ("pruner.fraction=0.9999999", "removes every one of the 265,200 prunable weights"),
        ("pruner.compression=1.000001", "pruner.compression=1 removes no weight"),
    ],
)
def test_lines03_06_numbers_that_cannot_work_are_refused(default_cfg, override: str, message: str) -> None:
    cfg = copy.deepcopy(default_cfg)
    key, value = override.split("=")
    OmegaConf.update(cfg, key, float(value))
    with pytest.raises(ConfigError, match=message.replace("+", r"\+").replace("(", r"\(")):
        check_config(cfg)


@pytest.fixture(scope="module")
def default_cfg() -> DictConfig:
    """`koopsweep`'s own config, composed once (each case changes one value of a copy and checks it)."""
    return compose_config(["logger=none"])


def test_line03_a_learning_rate_of_1e39_is_one_line_before_anything_is_written(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["logger=none", "optimizer.lr=1e39"])
    assert exit_info.value.code == 2
    assert _error_line(capsys).startswith("koopsweep: error: optimizer.lr=1e+39 overflows fp32 (largest 3.4e+38)")
    assert not (tmp_path / "store").exists() and not (tmp_path / "outputs").exists()
    compose_config(["logger=none", "optimizer.lr=1e39", "precision=fp64"])  # fp64 holds it


def test_line06_a_fraction_of_zero_still_runs_dense_on_purpose() -> None:
    assert compose_config(["logger=none", "pruner=gmp", "pruner.fraction=0"]).pruner.fraction == 0


def test_line13_an_override_that_does_not_parse_says_how_to_quote_it(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["logger=none", "paths.store_dir=/data/a b/ü"])
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert "cannot parse the override 'paths.store_dir=/data/a b/ü'" in line
    assert "'paths.store_dir=\"/data/a b/ü\"'" in line
    assert compose_config(["logger=none", 'paths.store_dir="/data/a b/ü"']).paths.store_dir == "/data/a b/ü"


# --- 5: a user's YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("pruner:\n  fraction: 0.5\n   bad: [1, 2\n", "line 4, column 7: mapping values are not allowed here"),
        ("pruner:\n  fraction: 0.5\n  fraction: 0.6\n", "line 4, column 3: found duplicate key fraction"),
        ("pruner:\n  fraction: ${nosuch.key}\n", "pruner.fraction: Interpolation key 'nosuch.key' not found"),
    ],
)
def test_line05_an_error_in_a_users_experiment_is_one_line_with_its_place(tmp_path, capsys, text, where) -> None:
    folder = tmp_path / "myconf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("# @package _global_\n" + text)
    with pytest.raises(SystemExit) as exit_info:
        main(["-cd", str(tmp_path / "myconf"), "experiment=broken", "logger=none"])
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert where in line
    assert "broken.yaml" in line or "Interpolation" in line


def test_line05_a_config_file_that_is_not_text_is_one_line(tmp_path, capsys) -> None:
    folder = tmp_path / "myconf" / "experiment"
    folder.mkdir(parents=True)
    (folder / "binary.yaml").write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(SystemExit):
        main(["-cd", str(tmp_path / "myconf"), "experiment=binary", "logger=none"])
    assert _error_line(capsys).endswith("binary.yaml is not UTF-8 text (invalid start byte at byte 0)")


# --- 4, 12: the machine and the store's shape -------------------------------------------------------------------------


def test_line04_a_full_disk_is_one_line_a_failed_record_and_a_sound_store(tmp_path, capsys) -> None:
    """ENOSPC at the first trunk state: one line naming it, results.json says failed and why, the store holds only
    verified files."""
    store = tmp_path / "store"
    with fault("/states/", "write", errno.ENOSPC), pytest.raises(SystemExit) as exit_info:
        main([*TINY, f"paths.store_dir={store}"])
    assert exit_info.value.code == 2
    line = _error_line(capsys)
    assert line.startswith("koopsweep: error: cannot write ") and "/states/it-000000000.pt: No space left" in line
    failed = _latest_results(tmp_path / "outputs")
    assert failed["status"] == "failed" and "No space left on device" in failed["error"]
    assert not _temps(store)
    for artifact in store.rglob("*.pt"):
        load_checked(artifact)
    # the same command on a roomy disk then gives the uninterrupted numbers: tests/test_failpoints.py (slow)


@pytest.mark.parametrize("where", ["lock", "unwritable", pytest.param("state", marks=pytest.mark.slow)])
def test_line12_a_store_of_the_wrong_shape_is_one_line_naming_the_path(tmp_path, capsys, where, request) -> None:
    from koopsweep.store.ids import trunk_id

    store = tmp_path / "store"
    argv = [*TINY, f"paths.store_dir={store}"]
    trunk = store / "trunks" / trunk_id(compose_config(argv))
    trunk.mkdir(parents=True)
    if where == "lock":
        (trunk / "lock").mkdir()
        expect = f"{trunk / 'lock'}: Is a directory: a folder stands where koopsweep keeps a file: remove that folder"
    elif where == "unwritable":  # what a read-only trunk folder does to its writer (modes do not bind root)
        expect = f"cannot write {trunk}/spec.json: Permission denied: make it writable for this user"
    else:
        shutil.copytree(request.getfixturevalue("reference")[0], store, dirs_exist_ok=True)
        argv.append("schedule.prune_at=8it")  # the end of training: read from its state file
        state = trunk / "states" / "it-000000008.pt"
        state.unlink()
        state.mkdir()
        expect = f"{state}: Is a directory"
    with contextlib.ExitStack() as stack:
        if where == "unwritable":
            stack.enter_context(fault(str(trunk), "write", errno.EACCES))
        stack.enter_context(pytest.raises(SystemExit))
        main(argv)
    assert expect in _error_line(capsys)


# --- 7: divergence ---------------------------------------------------------------------------------------------------


def test_line07_a_diverged_run_says_where_and_exits_with_its_own_code(tmp_path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*TINY, "optimizer.lr=1e3"])
    assert exit_info.value.code == DIVERGED_EXIT_CODE
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("koopsweep:")]
    assert line.startswith("koopsweep: training diverged at iteration ") and "in dense training (loss nan)" in line
    diverged = _latest_results(tmp_path / "outputs")
    assert diverged["status"] == "diverged" and diverged["metrics"]["run/diverged_at"] > 0
    from koopsweep.cli import _in_a_sweep

    assert not _in_a_sweep()
    monkeypatch.setenv("WANDB_SWEEP_ID", "abc123")  # under a W&B agent: a result of the sweep, exit 0
    assert _in_a_sweep()


# --- 9, 10: the report ------------------------------------------------------------------------------------------------


def _results_file(folder: Path, payload: object) -> Path:
    folder.mkdir(parents=True)
    path = folder / "results.json"
    path.write_text(json.dumps(payload))
    return path


def test_line09_a_malformed_results_json_is_skipped_and_never_displaces_a_valid_run(tmp_path: Path) -> None:
    valid = {"status": "finished", "pruner": "gmp", "branch_id": "b1", "metrics": {"final/test_acc": 0.9}}
    _results_file(tmp_path / "a", valid)
    time.sleep(0.01)
    _results_file(tmp_path / "b", {**valid, "metrics": [1, 2, 3]})  # newer, same branch
    _results_file(tmp_path / "c", {**valid, "status": 5})
    _results_file(tmp_path / "d", {**valid, "iterations": {"prune_at": "ten"}})
    collection = collect([tmp_path])
    assert [row["final_acc"] for row in collection.rows] == [0.9]
    reasons = sorted(why for _, why in collection.unreadable)
    assert reasons == [
        "iterations.prune_at is 'ten', not a count",
        "metrics is a list, not an object",
        "status 5 is not one of finished, diverged, preempted, failed",
    ]


@pytest.mark.slow
def test_line10_a_redraw_that_fails_while_writing_runs_csv_leaves_the_report_whole(tmp_path, capsys) -> None:
    rows = [
        {"status": "finished", "pruner": m, "branch_id": f"b{i}", "metrics": {"final/test_acc": 0.5 + i / 100}}
        for i, m in enumerate(["gmp", "kmp", "gmp"])
    ]
    for i, payload in enumerate(rows):
        _results_file(tmp_path / "runs" / str(i), payload)
    report = tmp_path / "report"
    main(["report", str(tmp_path / "runs"), "--out", str(report)])
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    capsys.readouterr()

    real = Path.open

    def cut(path: Path, mode: str = "r", *args, **kwargs):  # the disk fails in the middle of runs.csv
        handle = real(path, mode, *args, **kwargs)
        if path.name == "runs.csv" and "w" in mode:
            handle.write("experiment,model\n")
            handle.close()
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return handle

    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as exit_info:
        patch.setattr(Path, "open", cut)
        main(["report", str(report)])
    assert exit_info.value.code == 2
    assert "runs.csv: Input/output error" in _error_line(capsys)
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []
    main(["report", str(report)])
    assert "wrote" in capsys.readouterr().out and (report / "runs.csv").read_bytes() == before["runs.csv"]


def test_line10_a_runs_csv_cut_short_is_refused_not_redrawn(tmp_path, capsys) -> None:
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "runs.csv").write_text("method,status,final_acc\ngmp,finished,0.9\nkmp,fini")
    with pytest.raises(SystemExit):
        main(["report", str(folder)])
    assert "runs.csv is cut short (row 3 does not have every column)" in _error_line(capsys)


# --- 8: grids of any size ---------------------------------------------------------------------------------------------


def _sweep_file(path: Path, parameters: dict[str, list], command: list[str] | None = None) -> Path:
    import yaml

    command = command or ["${env}", "koopsweep", "logger=none", "${args_no_hyphens}"]
    spec = {"method": "grid", "parameters": {k: {"values": v} for k, v in parameters.items()}, "command": command}
    path.write_text(yaml.safe_dump(spec))
    return path


def test_line08_a_grid_above_the_cap_is_refused_before_anything_is_composed(tmp_path, capsys) -> None:
    fractions = [round(0.1 + 0.0008 * i, 4) for i in range(1000)]
    sweep = _sweep_file(tmp_path / "big.yaml", {"pruner.fraction": fractions, "seed": list(range(1000))})
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "validate", str(sweep)])
    assert exit_info.value.code == 2 and time.perf_counter() - start < 10
    line = _error_line(capsys)
    assert "1,000,000 runs exceed the cap of 100,000" in line and "--max-runs 1000000" in line


def test_line08_each_value_is_checked_once_and_combinations_only_where_checks_meet(tmp_path) -> None:
    """compression 150 is reachable for LeNet-300-100 but not for MnistNet: only the combination fails, and the
    feasibility check reads both axes, so the combination is checked; the seed meets no other axis."""
    from koopsweep.sweeps.plan import plan_sweep

    sweep = _sweep_file(
        tmp_path / "mixed.yaml",
        {"model": ["lenet_300_100", "mnistnet"], "pruner.compression": [2, 150], "seed": [0, 1]},
        ["${env}", "koopsweep", "logger=none", "pruner=gmp", "dataset=synthetic", "${args_no_hyphens}"],
    )
    with pytest.raises(ConfigError, match=r"run 7 \(model=mnistnet pruner.compression=150 seed=0\): pruner.compres"):
        plan_sweep(sweep)


@pytest.mark.slow
def test_line08_a_10000_point_grid_is_checked_in_seconds_as_a_full_compose_would(tmp_path, capsys) -> None:
    from koopsweep.sweeps.plan import plan_sweep
    from koopsweep.sweeps.points import compose_points

    lrs = [round(0.001 * (i + 1), 4) for i in range(100)]
    fractions = [round(0.1 + 0.008 * i, 4) for i in range(100)]
    sweep = _sweep_file(tmp_path / "g.yaml", {"pruner.fraction": fractions, "optimizer.lr": lrs})
    start = time.perf_counter()
    main(["sweep", "validate", str(sweep)])
    assert time.perf_counter() - start < 60  # about 7 s on a loaded 2-core machine; 10,000 full composes: 20 min
    assert capsys.readouterr().out.startswith(f"{sweep}: 10,000 runs in the grid; checking them\n")
    small = _sweep_file(
        tmp_path / "s.yaml",
        {"pruner": ["kmp", "gmp"], "pruner.fraction": [0.5, 0.9], "seed": [0, 1], "schedule.prune_at": ["1ep", "2ep"]},
    )
    fast, exact = plan_sweep(small).points, compose_points(plan_sweep(small).spec, exact=True)
    assert [(p.values, p.argv, p.trunk, p.needs_window) for p in fast] == [
        (p.values, p.argv, p.trunk, p.needs_window) for p in exact
    ]


def test_a_pinned_conf_folder_without_configs_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KOOPSWEEP_CONF_DIR", str(tmp_path / "conf"))  # `sweep local` sets it to its copy of conf/
    with pytest.raises(SystemExit) as exit_info:
        main(["logger=none"])
    assert exit_info.value.code == 2
    assert _error_line(capsys) == (
        f"koopsweep: error: KOOPSWEEP_CONF_DIR={tmp_path / 'conf'}: no config.yaml there; "
        "unset it to use koopsweep's conf/"
    )
