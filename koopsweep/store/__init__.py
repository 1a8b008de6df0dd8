"""The trunk/branch store: dense trunks shared by content hash, branches keyed by what they add."""

from koopsweep.store.ids import branch_id, trunk_id, trunk_spec

__all__ = ["branch_id", "trunk_id", "trunk_spec"]
