"""The sessions over TCP and TLS run on both EXI backends; see tests/codec_backends.py."""

from tests.codec_backends import exi_backend, run_on_both_backends  # noqa: F401  (fixture)

SLICE = {"test_session.py": {"test_session_over_tls"}}


def pytest_generate_tests(metafunc):
    run_on_both_backends(metafunc, SLICE)
