import pytest

from koopsweep.errors import ConfigError
from koopsweep.steps import Step, definitely_after


@pytest.mark.parametrize(
    ("text", "epochs", "iterations", "at_469"),
    [("3ep", 3, 0, 1407), ("500it", 0, 500, 500), ("2ep10it", 2, 10, 948), ("0ep", 0, 0, 0), (7, 0, 7, 7)],
)
def test_parse_and_convert(text, epochs, iterations, at_469):
    step = Step.parse(text)
    assert (step.epochs, step.iterations) == (epochs, iterations)
    assert step.to_iterations(469) == at_469
    assert Step.parse(str(step)) == step


@pytest.mark.parametrize("bad", ["3", "ep", "3eps", "2it3ep", "-1ep", "1.5ep", "3 days", ""])
def test_bad_steps_name_the_key(bad):
    with pytest.raises(ConfigError, match="schedule.train="):
        Step.parse(bad, what="schedule.train")


def test_definitely_after_holds_for_any_epoch_length():
    assert definitely_after(Step(5, 0), Step(3, 0))
    assert definitely_after(Step(3, 1), Step(3, 0))
    assert not definitely_after(Step(3, 0), Step(3, 0))
    assert not definitely_after(Step(4, 0), Step(3, 900))  # depends on the epoch length: left to the plan
