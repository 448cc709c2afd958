"""Which codec backend runs, decided in exactly this one place.

``V2H_PURE_PYTHON=1`` forces the pure-Python codec; otherwise the C extension ``_cexi`` is used
when it was built, and the pure-Python codec when it was not (no compiler on the target).
"""

from __future__ import annotations

import os
from types import ModuleType

FORCE_PURE = os.environ.get("V2H_PURE_PYTHON", "") not in ("", "0")

cext: ModuleType | None = None
if not FORCE_PURE:
    try:
        from . import _cexi as cext
    except ImportError:  # not built: the pure-Python codec serves alone
        cext = None

_built = cext


def implementation() -> str:
    return "cython" if cext is not None else "python"


def use(name: str) -> None:
    """Switch backend at run time (tests run the whole codec suite against both)."""
    global cext
    if name == "python":
        cext = None
    elif name == "cython":
        if _built is None:
            raise RuntimeError("the Cython extension iso15118.exi._cexi is not built")
        cext = _built
    else:
        raise ValueError(f"unknown backend {name!r}")
