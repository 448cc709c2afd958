"""Every codec test runs against both backends (the pure-Python codec and the C extension),
except modules that set ``SINGLE_BACKEND = True`` (they drive the backends themselves)."""

from __future__ import annotations

import pytest

from iso15118.exi import _backend

BACKENDS = ["python"] + (["cython"] if _backend._built is not None else [])


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames and not getattr(metafunc.module, "SINGLE_BACKEND", False):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    name = getattr(request, "param", None)
    before = _backend.cext
    if name is not None:
        _backend.use(name)
    yield name
    _backend.cext = before

