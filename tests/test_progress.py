"""Progress bars: quiet in logs and pipes, on at a terminal, forceable either way."""

from __future__ import annotations

import io
import logging

import pytest

from koopsweep import progress as progress_module
from koopsweep.progress import LoggedProgress, is_interactive, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_interactive_detection() -> None:
    ttys = (_Tty(), _Tty())
    assert is_interactive({}, ttys)
    assert not is_interactive({}, (io.StringIO(), _Tty()))  # stdout piped (tee, SLURM log)
    assert not is_interactive({"CI": "true"}, ttys)
    assert not is_interactive({"TERM": "dumb"}, ttys)
    assert is_interactive({"CI": "0", "TERM": "xterm"}, ttys)


def test_disabled_when_not_a_tty_and_forced_on(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress(range(3), desc="train")  # under capsys stdout/stderr are not TTYs: no bar, log lines
    assert isinstance(bar, LoggedProgress) and bar.disable and list(bar) == [0, 1, 2]
    bar.set_postfix(loss="0.5000")
    bar.close()
    assert capsys.readouterr().err == ""

    bar = progress(total=3, desc="train", enabled=True, leave=True)
    assert not bar.disable
    bar.update(3)
    bar.set_postfix(loss="0.1235", acc="0.9000")
    bar.close()
    err = capsys.readouterr().err
    assert "train" in err and "loss=0.1235" in err and "3/3" in err
    assert progress(range(2), enabled=False).disable


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> list[float]:
    """A clock the test moves by hand (``clock[0] += 60``), with the progress log captured."""
    now = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: now[0])
    caplog.set_level(logging.INFO, logger="koopsweep.progress")
    return now


def test_without_a_terminal_long_work_logs_a_line_a_minute_and_short_work_none(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    quick = progress(total=100, desc="decoding")
    quick.update(100)  # under a minute: nothing
    quick.close()
    assert caplog.records == []

    bar = progress(total=15640, desc="train")
    for _ in range(3):  # 3 minutes at 2 iterations a second
        clock[0] += 60.0
        bar.update(120)
        bar.set_postfix(loss="2.3010")
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # one a minute, then the last
    assert lines[0] == "train: 120/15,640 it (1 %), 2.00 it/s, 2h09m left"
    assert lines[2] == "train: 360/15,640 it (2 %), 2.00 it/s, 2h07m left, loss=2.3010"
    assert lines[3] == lines[2]  # close() repeats where it stopped

    slow = LoggedProgress(None, 10, "fit", every_s=1.0)
    clock[0] += 5.0
    slow.update(1)
    assert caplog.records[-1].getMessage() == "fit: 1/10 it (10 %), 5.00 s/it, 0m45s left"
    assert progress(range(2), enabled=False).disable and not isinstance(
        progress(range(2), enabled=False), LoggedProgress
    )


def test_a_resumed_run_counts_from_the_start_and_rates_only_its_own_work(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    bar = progress(total=31280, initial=6256, desc="dense")  # epoch 16 of 80 was stored by an earlier process
    clock[0] += 60.0
    bar.update(120)
    assert caplog.records[-1].getMessage() == "dense: 6,376/31,280 it (20 %), 2.00 it/s, 3h27m left"


def test_a_dense_run_resumed_from_the_store_shows_its_place_in_the_whole_run(make_cfg, tiny, monkeypatch) -> None:
    """The trainer's bars: dense from iteration 0 (8 of 16 done by the first run), fine-tuning from its own start."""
    from koopsweep.train import loop
    from koopsweep.train.run import run_experiment

    bars: list[tuple[str, int, int]] = []

    def spy(**kwargs):
        bars.append((kwargs["desc"], kwargs["total"], kwargs["initial"]))
        return progress(**kwargs)

    run_experiment(make_cfg([*tiny, "pruner=gmp", "schedule.prune_at=8it"], out="first"))  # stores iteration 8
    monkeypatch.setattr(loop, "progress", spy)
    results = run_experiment(make_cfg([*tiny, "pruner=gmp"], out="second"))  # prunes at 16: resumes from 8
    assert results["metrics"]["trunk/reused_iterations"] == 8
    assert bars == [("dense", 16, 8), ("finetune", 8, 0)]
