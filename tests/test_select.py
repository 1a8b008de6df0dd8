import pytest
import torch

from koopsweep.prune.paramspace import ParamSpace
from koopsweep.prune.select import layer_quotas, select_keep


def count_to_remove(fraction: float, numel: int) -> int:
    return int(round(fraction * numel))


def space3() -> ParamSpace:
    return ParamSpace(["a.weight", "b.weight", "c.weight"], [(10, 7), (33,), (4, 4, 3)])


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.8, 0.9, 0.98, 0.999])
@pytest.mark.parametrize("scope", ["global", "layer"])
def test_exact_k_with_ties_and_zeros(fraction, scope):
    space = space3()
    scores = torch.randint(0, 4, (space.numel,)).float()  # massive ties
    scores[:20] = 0.0  # weights that are already zero
    keep = select_keep(scores, count_to_remove(fraction, space.numel), space, scope)
    assert int((~keep).sum()) == count_to_remove(fraction, space.numel)


def test_global_removes_the_lowest_and_breaks_ties_by_position():
    space = ParamSpace(["w"], [(6,)])
    scores = torch.tensor([3.0, 1.0, 1.0, 0.0, 1.0, 2.0])
    keep = select_keep(scores, 3, space)
    assert keep.tolist() == [True, False, False, False, True, True]


def test_layer_scope_prunes_each_tensor_by_the_same_fraction():
    space = space3()
    keep = select_keep(torch.rand(space.numel), count_to_remove(0.5, space.numel), space, "layer")
    quotas = layer_quotas(space, count_to_remove(0.5, space.numel))
    for slot, quota in zip(space.slots, quotas):
        removed = int((~keep[slot.offset : slot.stop]).sum())
        assert removed == quota
        assert abs(removed - 0.5 * slot.numel) <= 1


def test_nan_scores_are_refused():
    space = space3()
    scores = torch.rand(space.numel)
    scores[3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        select_keep(scores, 10, space)


def test_impossible_counts_are_refused():
    space = space3()
    with pytest.raises(ValueError, match="cannot remove"):
        select_keep(torch.rand(space.numel), space.numel + 1, space)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_selection_is_the_first_k_of_a_stable_sort(scope):
    """The selection without sorting removes exactly what a stable sort's first k would (ties by position)."""
    space = ParamSpace(["a.weight", "b.weight"], [(300, 7), (1000,)])
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 50, (space.numel,), generator=generator).double() / 7
    scores[::5] = 0.0
    scores[1::11] = -0.0  # equal to 0.0 for the order, as for torch.sort
    scores[2::13] = float("inf")
    for k in (0, 1, 17, space.numel // 2, space.numel - 3, space.numel):
        keep = select_keep(scores, k, space, scope)
        expected = torch.ones(space.numel, dtype=torch.bool)
        if scope == "global":
            expected[torch.sort(scores, stable=True).indices[:k]] = False
        else:
            for slot, quota in zip(space.slots, layer_quotas(space, k)):
                part = scores[slot.offset : slot.stop]
                expected[slot.offset + torch.sort(part, stable=True).indices[:quota]] = False
        assert torch.equal(keep, expected), k
