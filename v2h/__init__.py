"""The v2h application: the ``v2h`` command that composes the libraries (iso15118, ocpp_bridge,
hems). Nothing in the libraries imports this package."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("v2h")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
