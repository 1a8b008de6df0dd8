"""Pruning: importance scores over a ParamSpace -> exact-k selection -> masks re-applied after every step."""

from koopsweep.prune.masks import MaskSet
from koopsweep.prune.paramspace import ParamSpace
from koopsweep.prune.select import select_keep

__all__ = ["MaskSet", "ParamSpace", "select_keep"]
