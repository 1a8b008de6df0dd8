"""koopsweep's public names: the docstring examples run, and prune/'s contract with the Koopman fit holds."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest
import torch

from koopsweep.koopman.vectors import KoopmanVectors
from koopsweep.prune import ParamSpace
from koopsweep.prune.scorers import KoopmanFit, KoopmanGradientScorer, KoopmanMagnitudeScorer, PruneContext
from koopsweep.train.koopman_recording import FitVectors, gradient_key

# Where the public names' examples live: koopsweep's own docstring and the modules that define them.
EXAMPLES = [
    "koopsweep",
    "koopsweep.api",
    "koopsweep.prune.scorers",
    "koopsweep.prune.methods",
    "koopsweep.prune.paramspace",
    "koopsweep.prune.masks",
    "koopsweep.config.compose",
    "koopsweep.train.run",
    "koopsweep.koopman.dmd",
]


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    tried = failed = 0
    for test in doctest.DocTestFinder().find(module, name):
        result = runner.run(test, out=report.append)
        tried, failed = tried + result.attempted, failed + result.failed
    assert tried > 0 and failed == 0, "".join(report)


def test_every_public_name_is_exported_with_an_example() -> None:
    import koopsweep

    for name in koopsweep.__all__[1:]:
        value = getattr(koopsweep, name)
        origin = importlib.import_module(koopsweep._HOMES[name])
        assert value is getattr(origin, name) and origin.__name__ in EXAMPLES, name
        if name != "METHODS":  # a dict: its example is in its module's docstring
            assert ">>>" in (value.__doc__ or ""), f"{name} has no example"
    assert ">>> from koopsweep import METHODS" in (importlib.import_module("koopsweep.prune.methods").__doc__ or "")
    assert sorted(dir(koopsweep)) == dir(koopsweep) and set(koopsweep.__all__) <= set(dir(koopsweep))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        koopsweep.nothing  # noqa: B018


def test_import_koopsweep_stays_light() -> None:
    """The public names load on first use: `import koopsweep` (every `koopsweep` command) imports no torch."""
    code = (
        "import sys, koopsweep\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'hydra', 'wandb', 'typing'))\n"
        "assert heavy == [] and koopsweep.__version__, heavy\n"
        "from koopsweep import container\n"  # submodules still import as before
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_both_koopman_fits_keep_prunes_contract() -> None:
    """The trunk's cached fit (runs) and the recorder's vectors (the Python API) are what the scorers type."""
    theta_star, g_hat = torch.tensor([3.0, -1.0, 2.0]), torch.tensor([0.5, 2.0, -1.0])
    cached = FitVectors({"summary": {"rank": 2}, "fixed_point": theta_star, gradient_key(0.1, 0.9): g_hat}, stride=1)
    own = KoopmanVectors({"rank": 2}, theta_star, g_hat, lr=0.1, momentum=0.9)
    model = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 1.0, -1.0]]))
    space = ParamSpace(["weight"], [(1, 3)])
    for fit in (cached, own):
        assert isinstance(fit, KoopmanFit)
        ctx = PruneContext(model=model, space=space, iteration=0, koopman_fit=fit, lr=0.1, momentum=0.9)
        assert torch.equal(KoopmanMagnitudeScorer().scores(ctx), theta_star.abs())
        assert torch.equal(KoopmanGradientScorer().scores(ctx), torch.tensor([0.5, 2.0, 1.0]))
        assert ctx.koopman().summary() == {"rank": 2}
