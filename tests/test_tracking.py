"""Tracker: mode resolution, offline runs in tmp dirs, disabled no-ops, spectrum PNG, the model artifact."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from koopsweep.errors import ConfigError
from koopsweep.tracking import RESOLVED_CONFIG_KEY, Tracker, flatten_config, resolve_mode

_WANDB_VARS = (
    "WANDB_API_KEY",
    "WANDB_IDENTITY_TOKEN_FILE",
    "WANDB_BASE_URL",
    "WANDB_MODE",
    "WANDB_SWEEP_ID",
    "WANDB_RUN_ID",
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "CI",
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """One isolated HOME/cache/config for the module: wandb's service keeps the environment it first saw."""
    root = tmp_path_factory.mktemp("wandb_home")
    with pytest.MonkeyPatch.context() as mp:
        for var in _WANDB_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("HOME", str(root))
        mp.setenv("NETRC", str(root / "no-netrc"))
        for var, sub in (
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_CONFIG_HOME", "config"),
            ("WANDB_CACHE_DIR", "cache/wandb"),
            ("WANDB_CONFIG_DIR", "config/wandb"),
            ("WANDB_DATA_DIR", "data"),
            ("WANDB_DIR", "stray"),
        ):
            mp.setenv(var, str(root / sub))
        mp.setenv("WANDB_DISABLE_GIT", "true")
        mp.chdir(root)
        yield root


@pytest.fixture
def wandb_offline(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Undo conftest's WANDB_MODE=disabled (which the Tracker honours) for the few tests that write offline runs."""
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(sandbox / "stray"))
    return sandbox


def _records(run_folder: Path) -> list[Any]:
    """Decode the offline transaction log (LevelDB log format of protobuf Records): no reader ships with 0.31."""
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = run_folder.glob("run-*.wandb")
    data, pos, chunks, out = log.read_bytes(), 7, [], []
    if len(data) < 7:
        return out
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:
            pos += 32768 - pos % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):  # a record still being written
            break
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(b"".join(chunks))
            out.append(record)
            chunks = []
        elif kind == 0:
            break
    return out


def _offline_state(run_folder: Path) -> dict[str, Any]:
    """Run id, config, summary and exit code of an offline run, read back from its files.

    wandb-core writes the log asynchronously: `finish()` can return before the file is flushed, so poll briefly.
    """
    deadline = time.monotonic() + 10.0
    while True:
        records = _records(run_folder)
        kinds = {rec.WhichOneof("record_type") for rec in records}
        if {"run", "exit"} <= kinds or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    state: dict[str, Any] = {"config": {}, "summary": {}, "exit_code": None, "preempting": False}
    for rec in records:
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            state["id"] = rec.run.run_id
            state["group"], state["job_type"], state["tags"] = rec.run.run_group, rec.run.job_type, list(rec.run.tags)
            state["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            state["config"].update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "summary":
            for u in rec.summary.update:
                state["summary"][u.key or u.nested_key[0]] = json.loads(u.value_json)
        elif kind == "exit":
            state["exit_code"] = rec.exit.exit_code
        elif kind == "preempting":
            state["preempting"] = True
    return state


def test_resolve_mode_rules(tmp_path: Path) -> None:
    no_key = {"HOME": str(tmp_path), "NETRC": str(tmp_path / "missing")}
    mode, reason = resolve_mode("auto", no_key, consult_wandb=False)
    assert mode == "offline" and "API key" in reason
    assert resolve_mode("online", no_key, consult_wandb=False)[0] == "offline"  # never a login prompt
    assert resolve_mode("auto", {**no_key, "WANDB_API_KEY": "k" * 40}, consult_wandb=False) == ("online", None)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "p" * 40 + "\n")
    netrc.chmod(0o600)
    assert resolve_mode("auto", {**no_key, "NETRC": str(netrc)}, consult_wandb=False) == ("online", None)
    key = {**no_key, "WANDB_API_KEY": "k" * 40}
    assert resolve_mode("online", {**key, "WANDB_MODE": "disabled"})[0] == "disabled"  # env lowers
    assert resolve_mode("offline", {**key, "WANDB_MODE": "online"})[0] == "offline"  # env never raises
    assert resolve_mode("auto", {**no_key, "WANDB_MODE": "dryrun"}, consult_wandb=False) == ("offline", None)
    with pytest.raises(ConfigError, match="logger.mode"):
        resolve_mode("onlien", no_key)
    with pytest.raises(ConfigError, match="WANDB_MODE"):
        resolve_mode("auto", {**no_key, "WANDB_MODE": "cloud"})
    assert flatten_config({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}


def test_disabled_writes_nothing_and_is_a_noop(sandbox: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with Tracker.start("disabled", "koopsweep", None, "n", "g", "train", ["t"], run_dir, {"a": {"b": 1}}) as t:
        assert (t.mode, t.offline_dir, t.url, t.run_id) == ("disabled", None, None, None)
        t.log({"loss": 1.0}, step=0)
        t.summary({"acc": 0.5})
        t.log_table("overlap", ["fraction", "overlap"], [[0.5, 1.0]])
    assert t.finished and not run_dir.exists() and not (sandbox / "stray").exists()
    with pytest.raises(RuntimeError, match="after finish"):
        t.log({"loss": 0.0})
    with pytest.raises(ConfigError, match="tags"):
        Tracker.start("disabled", "p", tags=["x" * 65], run_dir=run_dir)
    with pytest.raises(ConfigError, match="run id"):
        Tracker.start("disabled", "p", run_dir=run_dir, run_id="a/b")


def test_spectrum_png_highlights_chosen_eigenvalue(sandbox: Path, tmp_path: Path) -> None:
    import matplotlib.image

    from koopsweep.report.spectrum import save_run_spectrum

    lam = np.concatenate([0.6 * np.exp(1j * np.linspace(0.3, 2.8, 9)), [0.999 + 0.0j, 0.2 - 0.1j]])
    path, caption = save_run_spectrum(tmp_path, lam, chosen_index=9, step=7)
    with pytest.raises(IndexError):
        save_run_spectrum(tmp_path, lam, chosen_index=11)
    assert path == tmp_path / "figures" / "koopman_spectrum_step7.png" and "|λ-1| = 1.00e-03" in caption
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    rgb = matplotlib.image.imread(path)[..., :3]
    red = np.all(np.abs(rgb - np.array([0xD6, 0x27, 0x28]) / 255) < 0.05, axis=-1)  # tab:red star
    width = rgb.shape[1]
    # left panel, the whole disk: the star at λ ≈ 1 sits right of the disk's centre (its legend entry is lower left)
    assert red[:, int(width * 0.3) : int(width * 0.5)].sum() > 20
    assert red[:, int(width * 0.5) :].sum() > 20  # right panel, zoomed on λ = 1


def test_cells_pruning_from_one_fit_draw_its_spectrum_once(tmp_path: Path, monkeypatch) -> None:
    from koopsweep.report import spectrum

    drawn: list[str] = []
    draw = spectrum._draw_run_spectrum
    monkeypatch.setattr(
        spectrum, "_draw_run_spectrum", lambda lam, chosen, caption: drawn.append(caption) or draw(lam, chosen, caption)
    )
    lam = np.array([0.5 + 0.5j, 0.5 - 0.5j, 0.9999 + 0.0j, 0.3 + 0.0j])
    first, _ = spectrum.save_run_spectrum(tmp_path / "kmp-2x", lam, chosen_index=2, step=40)
    second, _ = spectrum.save_run_spectrum(tmp_path / "kmp-64x", lam.copy(), chosen_index=2, step=40)
    assert len(drawn) == 1 and first.read_bytes() == second.read_bytes()  # the same fit: drawn once, same figure
    other, _ = spectrum.save_run_spectrum(tmp_path / "other", lam * 0.99, chosen_index=2, step=40)
    assert len(drawn) == 2 and other.read_bytes() != first.read_bytes()  # another fit is drawn afresh


def test_auto_without_key_goes_offline_and_runs_stay_separate(
    wandb_offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg1 = {"model": {"name": "mnistnet"}, "pruner": {"fraction": 0.5}}
    first = Tracker.start("auto", "koopsweep", None, "one", "g1", "branch", ["a"], tmp_path / "r1", cfg1)
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.startswith("koopsweep:")]
    assert first.mode == "offline" and first.offline_dir is not None and first.url is None
    assert len(lines) == 1 and f"wandb sync {first.offline_dir}" in lines[0], lines
    assert first.offline_dir.parent == tmp_path / "r1" / "wandb"
    first.log({"loss": 2.0}, step=0)
    first.log_table("overlap", ["fraction", "overlap"], [[0.5, 0.97]])
    from koopsweep.report.spectrum import save_run_spectrum

    png, caption = save_run_spectrum(tmp_path / "r1", np.array([0.5 + 0.5j, 1.0 + 0.0j]), chosen_index=1, step=0)
    first.log_image("koopman/spectrum", png, caption, iteration=0)
    assert png.is_file()
    # A second Hydra job in the same process, while the first was (wrongly) left open: it gets finished as failed.
    cfg2 = {"model": {"name": "resnet20"}, "pruner": {"fraction": 0.9}}
    r2 = tmp_path / "r2"
    with Tracker.start("offline", "koopsweep", None, "two", "g2", "trunk", [], r2, cfg2, run_id="fixed-2") as second:
        second.summary({"acc": 0.91})
    assert first.finished and second.run_id == "fixed-2" and first.run_id != second.run_id
    assert first.offline_dir != second.offline_dir and second.offline_dir.is_dir()
    s1, s2 = _offline_state(first.offline_dir), _offline_state(second.offline_dir)
    assert (s1["id"], s2["id"]) == (first.run_id, "fixed-2")
    assert s1["config"][RESOLVED_CONFIG_KEY] == cfg1 and s1["config"]["pruner.fraction"] == 0.5
    assert s2["config"][RESOLVED_CONFIG_KEY] == cfg2 and s2["config"]["model.name"] == "resnet20"
    assert (s1["group"], s1["job_type"], s1["tags"]) == ("g1", "branch", ["a"])
    assert s1["summary"]["run/status"] == "failed" and s1["exit_code"] == 1
    assert "abandoned" in s1["summary"]["run/error"]
    assert s2["summary"]["run/status"] == "finished" and s2["summary"]["acc"] == 0.91 and s2["exit_code"] == 0


def test_failing_body_finishes_run_as_failed(wandb_offline: Path, tmp_path: Path) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        Tracker.start("offline", "koopsweep", run_dir=tmp_path, resolved_config={"seed": 0}) as t,
    ):
        t.log({"loss": 1.0}, step=3)
        1 / 0  # noqa: B018
    assert t.finished
    state = _offline_state(t.offline_dir)
    assert state["summary"]["run/status"] == "failed" and state["exit_code"] == 1
    assert state["summary"]["run/error"].startswith("ZeroDivisionError") and state["summary"]["loss"] == 1.0


def test_preempted_run_is_marked_for_requeue(wandb_offline: Path, tmp_path: Path) -> None:
    t = Tracker.start("offline", "koopsweep", run_dir=tmp_path, resolved_config={}, run_id="resume-me")
    t.finish("preempted", exit_code=143)
    t.finish("finished")  # idempotent: the first status stays
    state = _offline_state(t.offline_dir)
    assert state["summary"]["run/status"] == "preempted" and state["preempting"] and state["exit_code"] == 143
    with pytest.raises(ValueError, match="status"):
        t.finish("crashed")


def test_unreachable_server_falls_back_to_offline_within_bounded_wait(
    wandb_offline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API key and no server (a closed loopback port): the run goes on offline, same id, one line, ≤ 15 s."""
    import socket

    from koopsweep.tracking import tracker as wandb_run

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("WANDB_API_KEY", "0123456789abcdef" * 2 + "01234567")
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    monkeypatch.setattr(wandb_run, "_unreachable", [], raising=False)
    start = time.monotonic()
    tracker = Tracker.start(
        "auto", "koopsweep", run_dir=tmp_path / "run", resolved_config={"seed": 0}, run_id="unreachable-1"
    )
    waited = time.monotonic() - start
    with tracker:
        tracker.log({"loss": 1.0}, step=0)
    out = capsys.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.startswith("koopsweep:")]
    assert tracker.mode == "offline" and tracker.run_id == "unreachable-1"
    assert waited <= 15.0, f"waited {waited:.1f} s for the unreachable server"
    assert len(lines) == 1 and "unreachable" in lines[0] and f"wandb sync {tracker.offline_dir}" in lines[0]
    state = _offline_state(tracker.offline_dir)
    assert state["id"] == "unreachable-1" and state["summary"]["run/status"] == "finished" and state["exit_code"] == 0
    # the next job of the same process does not wait for the server again
    start = time.monotonic()
    second = Tracker.start("auto", "koopsweep", run_dir=tmp_path / "run2", resolved_config={}, run_id="unreachable-2")
    with second:
        assert second.mode == "offline"
    assert time.monotonic() - start < 8.0


def test_runs_of_other_experiments_or_groups_never_share_a_wandb_run_id(make_cfg, monkeypatch, tmp_path: Path) -> None:
    """The branch id leaves out experiment_name and logger.group; the W&B run id must not (else uploads merge)."""
    from omegaconf import OmegaConf

    from koopsweep.store import branch_id
    from koopsweep.tracking import run_identity

    seen: list[str] = []
    variants = [
        [],
        ["experiment_name=other", "logger.group=mine"],
        ["logger.group=mine"],
        ["experiment_name=other"],
        ["schedule.eval_every=2ep"],
    ]
    cfgs = [make_cfg(v, out=f"v{i}") for i, v in enumerate(variants)]
    cfgs.append(make_cfg(["threads=2", "logger.mode=offline"], out="rerun"))  # the first command again, elsewhere
    for cfg in cfgs:
        seen.append(run_identity(cfg, OmegaConf.to_container(cfg, resolve=True), "trunk", branch_id(cfg)).run_id)
    assert len({branch_id(cfg) for cfg in cfgs}) == 1  # one cell of the grid: the numbers are the same
    assert len(set(seen[:-1])) == len(variants)  # but five different W&B runs
    assert seen[-1] == seen[0]  # and the same command resumes its own run


def test_a_run_plots_itself_dense_drop_and_recovery_declared_metrics_and_tables(
    wandb_offline: Path, make_cfg, tiny, tmp_path: Path
) -> None:
    """A real run, offline: eval/test_acc has a row at the pruning iteration before and after pruning, every curve
    is declared against train/iteration with its summaries, and the mask comes as two tables."""
    from koopsweep.train.run import run_experiment

    cfg = make_cfg([*tiny, "pruner=gmp", "pruner.fraction=0.95", "schedule.prune_at=1ep", "logger.mode=offline"])
    results = run_experiment(cfg)
    (folder,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    _offline_state(folder)  # waits for the log to be complete
    records = _records(folder)
    rows = []
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            rows.append(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item}
            )
    t = results["iterations"]["prune_at"]
    at_t = [r["eval/test_acc"] for r in rows if r.get("train/iteration") == t and "eval/test_acc" in r]
    m = results["metrics"]
    assert at_t[-2:] == [m["dense/test_acc"], m["pruned/test_acc"]]  # the drop, at the same x
    curves = [r for r in rows if "eval/test_acc" in r]
    assert [r["train/iteration"] for r in curves] == sorted(r["train/iteration"] for r in curves)
    defined = {}
    for rec in records:
        if rec.WhichOneof("record_type") == "metric":
            name = rec.metric.name or rec.metric.glob_name
            defined[name] = (
                rec.metric.step_metric,
                [s for s in ("min", "max", "last") if getattr(rec.metric.summary, s)],
            )
    assert defined["eval/*"][0] == "train/iteration" and defined["train/*"][0] == "train/iteration"
    assert defined["eval/test_acc"] == ("train/iteration", ["max", "last"])
    table = {key: value for r in rows for key, value in r.items() if key.startswith("tables/")}
    assert table["tables/layer_sparsity/_type"] == table["tables/overlap/_type"] == "table-file"
    assert table["tables/layer_sparsity/nrows"] == len(results["layer_sparsity"])  # one row per prunable tensor
    assert table["tables/overlap/nrows"] == 1  # GMP's mask against GMP
    state = _offline_state(folder)
    assert state["summary"]["run/status"] == "finished" and state["summary"]["mask/sparsity"] == pytest.approx(
        0.95, 1e-3
    )


def _artifacts(folder: Path) -> list[Any]:
    _offline_state(folder)  # waits for the log to be complete
    return [rec.artifact for rec in _records(folder) if rec.WhichOneof("record_type") == "artifact"]


def test_a_finished_run_logs_its_model_and_masks_as_one_model_artifact(
    wandb_offline: Path, make_cfg, tiny, tmp_path: Path
) -> None:
    """Offline, as it will be synced: type model, a collection per trunk, the cell's alias, the record's numbers."""
    from koopsweep.train.run import run_experiment

    cfg = make_cfg([*tiny, "pruner=kmp", "pruner.compression=4", "schedule.prune_at=1ep", "logger.mode=offline"])
    results = run_experiment(cfg)
    (folder,) = (Path(cfg.paths.output_dir) / "wandb").glob("offline-run-*")
    (model,) = [a for a in _artifacts(folder) if a.type == "model"]
    step = results["iterations"]["prune_at"]
    assert model.name == f"lenet_300_100-synthetic-seed0-{results['trunk_id']}"
    assert sorted(model.aliases) == sorted([f"kmp-4x-t{step}", "latest"])
    assert sorted(entry.path for entry in model.manifest.contents) == [
        "masks.pt",
        "masks.pt.sha256",
        "model.pt",
        "model.pt.sha256",
        "results.json",
    ]
    meta, m = json.loads(model.metadata), results["metrics"]
    assert (meta["method"], meta["compression_target"], meta["prune_at"]) == ("kmp", 4.0, step)
    assert meta["final/test_acc"] == m["final/test_acc"] and meta["pruned/test_acc"] == m["pruned/test_acc"]
    assert (meta["trunk_id"], meta["branch_id"]) == (results["trunk_id"], results["branch_id"])


def test_an_artifact_that_cannot_be_logged_never_fails_the_run(
    wandb_offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from koopsweep.tracking.model_artifact import compression_label

    with Tracker.start("offline", "koopsweep", run_dir=tmp_path, resolved_config={}) as tracker:
        assert not tracker.log_artifact("m", "model", [tmp_path / "gone.pt"], {"method": "kmp"}, ["kmp-16x-t5"])
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("koopsweep:")]
    assert len(lines) == 1 and lines[0].startswith("koopsweep: warning: W&B artifact m not logged")
    state = _offline_state(tracker.offline_dir)
    assert state["summary"]["run/status"] == "finished" and state["exit_code"] == 0
    assert compression_label({"compression_target": 16.0}) == "16"
    assert compression_label({"compression_target": None, "metrics": {"mask/compression": 4.9012}}) == "4.9"
