"""The v2h application: the ``v2h`` command that composes the libraries (iso15118, ocpp_bridge,
hems). Nothing in the libraries imports this package."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed metadata on first use: importlib.metadata (with the
    email, zipfile and csv modules it loads) costs a charger ~2 MB resident at every start
    (docs/aarch64.md), and only --version asks."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("v2h")
    except PackageNotFoundError:  # run from a source tree that was never installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value
