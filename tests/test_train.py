"""Real (tiny) runs through the trainer: pruning, masks, determinism, every pruner, results and logging."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest
import torch

from koopsweep.artifacts import load_checked
from koopsweep.config import conf_dir
from koopsweep.prune.scorers import MagnitudeScorer
from koopsweep.train.run import run_experiment
from koopsweep.train.session import build_run


def count_to_remove(fraction: float, numel: int) -> int:
    """torch.nn.utils.prune's rounding of ``amount``, which pruner.fraction follows."""
    return int(round(fraction * numel))


PRUNERS = sorted(p.stem for p in (conf_dir() / "pruner").glob("*.yaml") if p.stem != "none")


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_hits_its_target_sparsity_exactly(make_cfg, tiny, pruner):
    fraction = 0.73
    results = run_experiment(make_cfg([*tiny, f"pruner={pruner}", f"pruner.fraction={fraction}"], out=pruner))
    m = results["metrics"]
    assert results["status"] == "finished"
    removed = round(m["mask/sparsity"] * m["params/prunable"])
    assert removed == count_to_remove(fraction, m["params/prunable"])
    assert m["mask/compression"] == pytest.approx(m["params/total"] / m["params/nonzero"])
    assert 0.0 <= m["overlap/gmp"] <= 1.0
    if pruner in ("kmp", "kgp"):
        assert m["koopman/rank"] >= 2
        assert results["koopman"]["spectrum"]["re"]
    if pruner in ("ggp", "lgp", "kgp"):
        assert 0.0 <= m["overlap/ggp"] <= 1.0


def test_compression_target_is_achieved_on_mnistnet(make_cfg):
    """ShrinkBench's compression: total / non-zero over the whole network, classifier and biases left dense."""
    results = run_experiment(
        make_cfg(
            [
                "model=mnistnet",
                "pruner=gmp",
                "pruner.compression=64",
                "dataset.train_size=256",
                "dataset.test_size=128",
                "dataset.batch_size=64",
                "schedule.train=8it",
                "schedule.finetune=2it",
                "schedule.eval_every=4it",
            ]
        )
    )
    m = results["metrics"]
    assert results["compression_target"] == 64.0
    assert m["params/nonzero"] == round(m["params/total"] / 64)
    assert m["mask/compression"] == pytest.approx(64.0, abs=0.01)
    dense = m["params/total"] - m["params/prunable"]  # biases and the classifier: counted, never pruned
    assert results["fraction"] == pytest.approx(1 - (m["params/nonzero"] - dense) / m["params/prunable"])
    assert results["fraction"] > 0.997  # 99.73 % of the prunable weights, not 1 - 1/64


def test_already_zero_weights_and_ties_still_give_the_exact_count(make_cfg, tiny):
    """GMP on a network with a third of its weights already zero: the zeros go first, the count stays exact."""
    from koopsweep.prune import MaskSet, select_keep
    from koopsweep.tracking import Tracker
    from koopsweep.train.pruning import prune, prune_context

    run = build_run(make_cfg([*tiny, "pruner=gmp", "pruner.fraction=0.5"]))
    with torch.no_grad():
        for tensor in run.space.tensors(run.model):
            tensor.view(-1)[::3] = 0.0
    zeros = int((run.space.flatten(run.model) == 0).sum())
    with Tracker.start(mode="disabled", project="t") as tracker:
        masks = prune(run, prune_context(run), tracker)
    assert isinstance(masks, MaskSet)
    assert masks.num_removed == count_to_remove(0.5, run.space.numel)
    theta = run.space.flatten(run.model)
    assert int((theta == 0).sum()) == masks.num_removed >= zeros
    assert torch.equal(masks.keep, select_keep(theta.abs(), count_to_remove(0.5, run.space.numel), run.space))


def test_masked_weights_stay_zero_through_finetuning_with_momentum_and_weight_decay(make_cfg, tiny):
    results = run_experiment(
        make_cfg(
            [
                *tiny,
                "pruner.fraction=0.9",
                "optimizer.momentum=0.9",
                "optimizer.nesterov=true",
                "optimizer.weight_decay=0.01",
                "schedule.finetune=3ep",
            ]
        )
    )
    weights = load_checked(Path(results["config"]["paths"]["output_dir"]) / "model.pt")
    prunable = [n for n in results["layer_sparsity"]]
    zeros = sum(int((weights[n] == 0).sum()) for n in prunable)
    total = sum(weights[n].numel() for n in prunable)
    assert zeros == count_to_remove(0.9, total)
    assert results["metrics"]["mask/sparsity"] == pytest.approx(0.9, abs=1e-6)


def test_same_seed_same_numbers_twice(make_cfg, tiny):
    a = run_experiment(make_cfg([*tiny, "store.reuse=false"], out="a"))
    b = run_experiment(make_cfg([*tiny, "store.reuse=false"], out="b"))
    for key in ("dense/test_loss", "pruned/test_loss", "final/test_loss", "final/test_acc"):
        assert a["metrics"][key] == b["metrics"][key]
    wa = load_checked(Path(a["config"]["paths"]["output_dir"]) / "model.pt")
    wb = load_checked(Path(b["config"]["paths"]["output_dir"]) / "model.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = run_experiment(make_cfg([*tiny, "store.reuse=false", "seed=1"], out="c"))
    assert c["metrics"]["final/test_loss"] != a["metrics"]["final/test_loss"]


def test_results_json_holds_what_the_report_needs(make_cfg, tiny):
    results = run_experiment(make_cfg(tiny))
    on_disk = json.loads((Path(results["config"]["paths"]["output_dir"]) / "results.json").read_text())
    assert on_disk["status"] == "finished"
    for key in (
        "dense/test_acc",
        "pruned/test_acc",
        "final/test_acc",
        "dense/test_loss",
        "final/test_loss",
        "mask/sparsity",
        "mask/compression",
        "mask/fraction",
        "run/prune_epoch",
        "params/total",
        "params/nonzero",
        "flops/speedup",
        "time/total_s",
    ):
        assert key in on_disk["metrics"], key
    assert on_disk["versions"]["torch"] == metadata.version("torch")
    assert on_disk["config"]["pruner"]["name"] == "kmp"  # the default pruner
    assert on_disk["koopman"]["rank"] == on_disk["metrics"]["koopman/rank"]
    assert on_disk["metrics"]["final/test_acc"] > 0.5  # the synthetic task is learnable


def test_the_timings_count_work_and_only_work(make_cfg, tiny, monkeypatch):
    """time/prune_s is the pruning step, not the spectrum figure drawn beside it (overhead, drawn once per fit);
    time/evaluate_s holds every evaluation outside training, a dense one the trunk did not hold yet included."""
    import time

    from koopsweep.report import spectrum
    from koopsweep.train import session

    draw, evaluate, drawn = spectrum._draw_run_spectrum, session.evaluate, []

    def slow_draw(*args):
        drawn.append(args)
        time.sleep(0.5)
        return draw(*args)

    def slow_evaluate(*args):
        time.sleep(0.2)
        return evaluate(*args)

    monkeypatch.setattr(spectrum, "_draw_run_spectrum", slow_draw)
    monkeypatch.setattr(session, "evaluate", slow_evaluate)
    spectrum._drawn.clear()
    first = run_experiment(make_cfg(tiny))["metrics"]
    # the same trunk and fit; other evaluation batches: the dense model at t is evaluated again, outside training
    again = run_experiment(make_cfg([*tiny, "pruner.fraction=0.6", "dataset.eval_batch_size=128"]))["metrics"]
    assert again["trunk/reused_iterations"] == 16 and again["time/koopman_fit_s"] == 0.0
    assert len(drawn) == 1 and first["time/prune_s"] < 0.5  # drawn once, and not counted as pruning
    assert again["time/evaluate_s"] - first["time/evaluate_s"] > 0.15  # the dense evaluation counted as one


def test_pruning_before_the_koopman_recording_fits_is_refused(make_cfg, tiny):
    from koopsweep.errors import ConfigError

    with pytest.raises(ConfigError, match="snapshots"):
        run_experiment(make_cfg([*tiny, "pruner=kmp", "schedule.prune_at=1it"]))


def test_optimizers_come_from_their_target_with_the_settings_they_accept(make_cfg, tiny):
    """Hydra's _target_/_partial_ convention: any torch.optim class, extra arguments through optimizer.kwargs."""
    run = build_run(
        make_cfg(
            [
                *tiny,
                "optimizer._target_=torch.optim.RMSprop",
                "optimizer.name=rmsprop",
                "optimizer.lr=0.01",
                "+optimizer.kwargs.alpha=0.9",
            ]
        )
    )
    optimizer = run.trainer.optimizer
    assert isinstance(optimizer, torch.optim.RMSprop)
    group = optimizer.param_groups[0]
    assert (
        group["alpha"] == 0.9 and group["lr"] == 0.01 and group["momentum"] == 0.9
    )  # sgd.yaml's, RMSprop takes it too
    adam = build_run(make_cfg([*tiny, "optimizer=adam"])).trainer.optimizer
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.9, 0.999)
    assert run.gradient_settings()[1] == 0.0  # KGP's heavy-ball correction is for SGD only


def test_a_koopman_recording_longer_than_the_time_before_pruning_is_clipped_with_one_warning(make_cfg, tiny, caplog):
    """The paper's timing sweeps prune as early as 50it with a 1ep window: clipped to iteration 0, and said so."""
    results = run_experiment(make_cfg([*tiny, "pruner=kmp", "schedule.prune_at=5it", "koopman.window=1ep"]))
    clipped = [r for r in caplog.records if "was clipped" in r.getMessage()]
    assert len(clipped) == 1 and clipped[0].levelname == "WARNING"
    assert "koopman.window=1ep (8 it)" in clipped[0].getMessage() and "[0, 5] (6 snapshots)" in clipped[0].getMessage()
    assert results["status"] == "finished" and results["koopman"]["snapshots"] == 6


def test_a_run_resumed_during_finetuning_keeps_its_koopman_results(make_cfg, tiny, sigterm_at):
    args = [*tiny, "pruner=kmp", "schedule.prune_at=1ep"]  # 8 it/epoch: pruned at 8, fine-tuned to 16
    with sigterm_at(11), pytest.raises(SystemExit) as stopped:
        run_experiment(make_cfg(args, out="stopped"))
    assert stopped.value.code == 143
    before = json.loads((Path(make_cfg(args, out="stopped").paths.output_dir) / "results.json").read_text())
    assert before["status"] == "preempted" and before["koopman"] is not None
    resumed = run_experiment(make_cfg(args, out="resumed"))
    assert resumed["status"] == "finished"
    assert resumed["koopman"] == before["koopman"]
    assert resumed["metrics"]["koopman/eigenvalue_re"] == before["koopman"]["eigenvalue"]["re"]
    figure = Path(resumed["config"]["paths"]["output_dir"]) / "figures" / "koopman_spectrum_step8.png"
    assert figure.is_file() and figure.stat().st_size > 1000


def test_a_run_diverging_in_finetuning_reports_its_masks_sparsity(make_cfg, tiny):
    """NaN × 0 stays NaN: the sparsity of a diverged run comes from its mask, not from zeros in the weights."""
    results = run_experiment(make_cfg([*tiny, "pruner=gmp", "pruner.fraction=0.8", "schedule.finetune_lr=1e9"]))
    m = results["metrics"]
    assert results["status"] == "diverged" and m["run/diverged_at"] > results["iterations"]["prune_at"]
    assert round(m["mask/sparsity"] * m["params/prunable"]) == count_to_remove(0.8, m["params/prunable"])
    dense = m["params/total"] - m["params/prunable"]
    assert m["params/nonzero"] <= dense + m["params/prunable"] - count_to_remove(0.8, m["params/prunable"])
    assert m["mask/compression"] == pytest.approx(m["params/total"] / m["params/nonzero"]) and m["mask/compression"] > 3
    assert all(0.5 < share < 1 for share in results["layer_sparsity"].values())


class SecondLayerFirst(MagnitudeScorer):
    """A user's scorer that ranks every weight of fc2 below all others: pruning enough of them cuts the network."""

    def scores(self, ctx):
        scores = super().scores(ctx) + 1.0
        slot = next(slot for slot in ctx.space.slots if slot.name == "fc2.weight")
        scores[slot.offset : slot.stop] = 0.0
        return scores


def test_a_layer_pruned_whole_is_reported(make_cfg, tiny, caplog):
    results = run_experiment(make_cfg([*tiny, "pruner._target_=test_train.SecondLayerFirst", "pruner.fraction=0.2"]))
    assert results["layer_sparsity"]["fc2.weight"] == 1.0
    assert results["metrics"]["mask/collapsed_layers"] == 1
    assert "removed every weight of fc2.weight (layer collapse)" in caplog.text
