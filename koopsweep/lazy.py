"""A package's public names loaded from their modules on first use (PEP 562 module ``__getattr__``).

``koopsweep`` and ``koopsweep.koopman`` both keep their imports light this way: a command or a report that needs one
name does not pay for torch. Kept free of imports beyond importlib, so using it costs nothing at import time.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing itself costs ~30 ms; type checkers read this as True
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable, MutableMapping


def lazy_names(
    package: str, homes: dict[str, str], namespace: MutableMapping[str, object]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: a name of ``homes`` is imported from its module the first time it
    is asked for, then kept in ``namespace`` (the package's globals), so later lookups are plain attribute reads."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
