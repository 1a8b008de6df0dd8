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


def test_without_a_terminal_long_work_logs_a_line_a_minute_and_short_work_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    caplog.set_level(logging.INFO, logger="koopsweep.progress")

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
