"""A trunk's logs (``evals.jsonl``, ``curves.jsonl``): JSON lines, each carrying its own checksum, checked on read.

Why per line: the logs are appended by every run that extends a trunk, so a whole-file checksum would have to be
rewritten on each append. A line whose checksum does not match (edited by hand, flipped bits), that was cut short by
a crash, that is not a JSON object or lacks a field is dropped with one warning, and what it held is measured
again; it never reaches a result. Lines written before koopsweep 0.3 carry no checksum and are dropped the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from koopsweep.atomic import append_line, refused_as_one_line

log = logging.getLogger(__name__)
CHECK = "sha"
Validator = Callable[[dict[str, Any]], str | None]
LEGACY = "no checksum (written by koopsweep < 0.3)"
_told: set[Path] = set()


def _digest(record: dict[str, Any]) -> str:
    text = json.dumps({k: v for k, v in record.items() if k != CHECK}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one checksummed line; a record holding NaN or infinity is not kept (it would be
    dropped on reading anyway, and what it held is measured again)."""
    try:
        line = json.dumps({**record, CHECK: _digest(record)}, allow_nan=False)
    except ValueError:
        return
    append_line(path, line)


def finite_number(value: Any) -> bool:
    """An int or float that is not a bool, NaN or infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problem(line: str, valid: Validator) -> tuple[dict[str, Any] | None, str | None]:
    try:
        record = json.loads(line)
    except ValueError:
        return None, "cut short or not JSON"
    if not isinstance(record, dict):
        return None, f"a JSON {type(record).__name__}, not a record"
    if CHECK not in record:
        return None, LEGACY
    try:
        matches = record[CHECK] == _digest(record)
    except (TypeError, ValueError):
        matches = False
    if not matches:
        return None, "checksum mismatch (edited or damaged)"
    record.pop(CHECK)
    why = valid(record)
    return (None, why) if why is not None else (record, None)


def read_records(path: Path, valid: Validator, owner: str) -> list[dict[str, Any]]:
    """The verified records of ``path`` in file order; damaged lines are dropped with one warning naming the first.

    ``valid`` says what is wrong with a record whose checksum matches (None: nothing); ``owner`` names the trunk.
    """
    if not path.is_file():
        return []
    with refused_as_one_line("cannot read", path):
        text = path.read_bytes().decode("utf-8", errors="replace")
    records, dropped, legacy, first = [], 0, 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record, why = _problem(line, valid)
        if record is None:
            dropped += 1
            legacy += why == LEGACY
            first = first or f"line {number}: {why}"
            continue
        records.append(record)
    if dropped and (legacy < dropped or path not in _told):  # an older store's lines: said once per process
        _told.add(path)
        log.warning("%s: dropped %d damaged record(s) of %s (%s); not used", owner, dropped, path.name, first)
    return records
