"""Session tests on both EXI backends.

The codec's own tests run on both backends (tests/exi/conftest.py). The session tests run on
the C extension — the backend a charger uses — and a slice of them, which exchanges every -20
message the SECC and EVCC have (checked: the same message types, encoded and decoded, as the
whole of tests/session and tests/aio), runs on the pure-Python codec as well: the backend of an
installation without a compiler. A directory's conftest.py names its slice with
``run_on_both_backends``; the tests themselves are not touched. The backend is switched through
``iso15118.exi._backend`` (the one place that chooses it) and restored after each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iso15118.exi import _backend

BACKENDS = ["cython", "python"] if _backend._built is not None else []  # nothing to add without C


def run_on_both_backends(metafunc, slice_: dict[str, set[str] | None], c_only: frozenset = frozenset()) -> None:
    """From pytest_generate_tests: tests of the modules in ``slice_`` (file name -> test function
    names, None for all) run once per backend; ``c_only`` names tests about the C path itself."""
    names = slice_.get(Path(metafunc.module.__file__).name, ())
    fn = metafunc.function.__name__
    if not BACKENDS or fn in c_only or (names is not None and fn not in names):
        return
    metafunc.parametrize("exi_backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def exi_backend(request):
    """The EXI backend a test runs on: its parameter where the slice doubles it, else the
    default (the C extension when built)."""
    name = getattr(request, "param", None)
    before = _backend.cext
    if name is not None:
        _backend.use(name)
    try:
        yield name or ("cython" if before is not None else "python")
    finally:
        _backend.cext = before
