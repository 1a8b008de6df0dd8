"""`koopsweep store list | inspect | gc` on a real store."""

from __future__ import annotations

import json

import pytest

from koopsweep.commands.store import main as store_main
from koopsweep.errors import ConfigError
from koopsweep.train.run import run_experiment


@pytest.fixture
def store(make_cfg, tiny, tmp_path):
    run_experiment(make_cfg([*tiny, "pruner=kmp", "store.keep_windows=true"]))
    return tmp_path / "store"


def test_list_and_inspect(store, capsys):
    store_main(["--store", str(store), "list"])
    out = capsys.readouterr().out
    assert "LeNet300100" in out and "synthetic" in out and "1 trunk(s)" in out
    trunk = next((store / "trunks").iterdir()).name
    store_main(["--store", str(store), "inspect", trunk[:6]])
    out = capsys.readouterr().out
    assert f'"id": "{trunk}"' in out and '"windows": [' in out
    with pytest.raises(ConfigError, match="give more of the id"):
        store_main(["--store", str(store), "inspect", "zzz"])


def test_gc_is_a_dry_run_until_apply(store, capsys):
    trunk = next((store / "trunks").iterdir())
    (trunk / ".half-written.tmp").write_bytes(b"x")
    store_main(["--store", str(store), "gc", "--windows"])
    out = capsys.readouterr().out
    assert "would remove" in out and "windows/" in out and ".half-written.tmp" in out
    assert (trunk / "windows").is_dir() and any((trunk / "windows").iterdir())
    store_main(["--store", str(store), "gc", "--windows", "--apply"])
    assert not any((trunk / "windows").iterdir())
    assert not (trunk / ".half-written.tmp").exists()
    assert (trunk / "states").is_dir()  # the trunk itself stays
    store_main(["--store", str(store), "gc", "--all", "--apply"])
    assert not any((store / "trunks").iterdir())


@pytest.mark.parametrize(
    ("garbage", "problem"),
    [
        ("{not json", "spec.json unreadable"),
        ("[1, 2]", "spec.json holds a list"),
        ("", "spec.json unreadable"),
        ('{"model": 3, "dataset": ["x"], "seed": {"a": 1}}', None),  # an object, but not a spec: fields shown as ?
    ],
)
def test_a_garbage_spec_does_not_break_list_or_inspect(tmp_path, capsys, garbage, problem):
    trunk = tmp_path / "store" / "trunks" / "0123456789abcdef"
    (trunk / "states").mkdir(parents=True)
    (trunk / "spec.json").write_text(garbage)
    store_main(["--store", str(tmp_path / "store"), "list"])
    out = capsys.readouterr().out
    assert "0123456789abcdef  ?" in out and "1 trunk(s)" in out and (problem is None or problem in out)
    store_main(["--store", str(tmp_path / "store"), "inspect", "0123"])
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == "0123456789abcdef" and info["model"] == "?" and info["seed"] in (None, "?")
    assert info["spec_problem"] == problem or info["spec_problem"].startswith(problem)


def test_curve_prints_writes_and_draws_the_stored_dense_evaluations(store, tmp_path, capsys):
    trunk = next((store / "trunks").iterdir())
    stored = [json.loads(line) for line in (trunk / "curves.jsonl").read_text().splitlines()]
    evaluated = [r for r in stored if "eval/test_acc" in r]
    assert evaluated  # the tiny run evaluates at least once
    csv_path, png = tmp_path / "curve.csv", tmp_path / "curve.png"
    store_main(["--store", str(store), "curve", trunk.name[:6], "--csv", str(csv_path), "--plot", str(png)])
    out = capsys.readouterr().out
    assert f"trunk {trunk.name}: LeNet300100 seed 0" in out
    last = evaluated[-1]
    assert f"{100 * last['eval/test_acc']:.2f}" in out and str(last["iteration"]) in out
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "trunk,label,iteration,epoch,lr,train_loss,test_acc,test_loss"
    assert len(lines) == 1 + len({r["iteration"] for r in stored})
    assert f",{last['iteration']}," in lines[-1] and lines[-1].startswith(trunk.name)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_of_an_unknown_or_untrained_trunk_is_one_line(tmp_path):
    empty = tmp_path / "store" / "trunks" / "0123456789abcdef"
    (empty / "states").mkdir(parents=True)
    (empty / "spec.json").write_text('{"model": {"_target_": "koopsweep.models.LeNet300100"}, "seed": 0}')
    with pytest.raises(ConfigError, match="has no readable evaluations in curves.jsonl"):
        store_main(["--store", str(tmp_path / "store"), "curve", "0123"])
    with pytest.raises(ConfigError, match="0 trunks .* start with 'ffff'"):
        store_main(["--store", str(tmp_path / "store"), "curve", "ffff"])


def test_a_curve_label_names_the_values_a_trunk_id_leaves_at_their_default():
    """Trunk specs omit defaults (so new options keep old ids); a label for people must still say 10ep."""
    from koopsweep.config.compose import compose_config
    from koopsweep.config.schema import OptimizerConfig
    from koopsweep.report.trunk_curves import _spec_label
    from koopsweep.store.ids import spec_field, trunk_spec

    overrides = ["model=resnet20", "dataset=synthetic", "schedule.train=10ep", "schedule.lr_schedule=cosine"]
    spec = trunk_spec(compose_config(overrides))
    assert "train" not in spec["schedule"] and "pretrained" not in spec["model"]
    assert _spec_label(spec) == "ResNet20 seed 0, 10ep cosine"
    assert spec_field({"optimizer": {}}, "optimizer", "lr") == str(OptimizerConfig().lr)  # left out: the default
    assert spec_field(spec, "model", "pretrained") == "?" and spec_field({"seed": 0}, "nosuch", "key") == "?"
