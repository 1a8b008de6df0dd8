"""What a results.json must look like before a report uses it: field by field, with the reason when it does not.

Why: a report collects every results.json under a folder, and the newest file of a branch wins. A file with
``metrics: [1, 2, 3]`` or ``status: 5`` (hand-edited, written by another tool, damaged) would otherwise be flattened
into empty cells and displace the valid run of the same branch. Files of older koopsweep versions lack some fields;
what is there must have the right type.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("finished", "diverged", "preempted", "failed")
_SCALAR = (str, int, float, bool, type(None))
# field: (the types it may hold, what to call them)
FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "pruner": ((str, type(None)), "a name"),
    "fraction": ((int, float, type(None)), "a number"),
    "compression_target": ((int, float, type(None)), "a number"),
    "trunk_id": ((str, type(None)), "an id"),
    "branch_id": ((str, type(None)), "an id"),
    "iterations": ((dict,), "an object"),
    "metrics": ((dict,), "an object"),
    "layer_sparsity": ((dict,), "an object"),
    "koopman": ((dict, type(None)), "an object"),
    "config": ((dict,), "an object"),
    "versions": ((dict,), "an object"),
    "device": ((str,), "a name"),
    "error": ((str,), "a message"),
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def results_problem(data: Any) -> str | None:
    """Why ``data`` (a parsed results.json) cannot be used in a report, or None when it can."""
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not a results.json object"
    status = data.get("status")
    if status not in STATUSES:
        return f"status {status!r} is not one of {', '.join(STATUSES)}"
    for name, (types, what) in FIELDS.items():
        if name in data and (not isinstance(data[name], types) or isinstance(data[name], bool)):
            return f"{name} is a {type(data[name]).__name__}, not {what}"
    for key, value in data.get("metrics", {}).items():
        if not isinstance(value, _SCALAR):
            return f"metric {key!r} is a {type(value).__name__}, not a number"
    for key, value in data.get("iterations", {}).items():
        if not (value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)):
            return f"iterations.{key} is {value!r}, not a count"
    for key, value in data.get("layer_sparsity", {}).items():
        if not _number(value):
            return f"layer_sparsity[{key!r}] is {value!r}, not a number"
    return None
