"""Progress bars: quiet in logs and pipes, on at a terminal, forceable either way."""

from __future__ import annotations

import io

import pytest

from koopsweep.progress import is_interactive, progress


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
    bar = progress(range(3), desc="train")  # under capsys stdout/stderr are not TTYs
    assert bar.disable and list(bar) == [0, 1, 2]
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
