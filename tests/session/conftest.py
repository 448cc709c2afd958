"""The complete in-memory sessions (every service, control mode and authorization) and the
SECC handlers run on both EXI backends; see tests/codec_backends.py."""

from tests.codec_backends import exi_backend, run_on_both_backends  # noqa: F401  (fixture)

SLICE = {"test_pair.py": None, "test_handlers.py": None}
C_ONLY = frozenset({"test_every_session_message_takes_the_c_encoder"})


def pytest_generate_tests(metafunc):
    run_on_both_backends(metafunc, SLICE, C_ONLY)
