"""Files to and from the station (firmware images in, log files out): what the sans-I/O modules
(``ocpp_bridge.firmware``, ``ocpp_bridge.diagnostics``) ask for. A transfer is answered later
through its callback (``done``, with the station's time then), which the adapter (``ocpp_bridge.transfer.HttpTransfer`` for
`v2h charger`, a fake in the tests) calls like any other input of the station.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

Downloaded = Callable[[bytes | None, str | None, float], None]  # (the file, or None and why; now)
Uploaded = Callable[[str | None, float], None]                   # (None: stored, else why not; now)

SCHEMES = ("http", "https")  # OCPPCommCtrlr.FileTransferProtocols HTTP, HTTPS


class FileTransfer(Protocol):
    def download(self, url: str, done: Downloaded) -> None: ...
    def upload(self, url: str, filename: str, data: bytes, done: Uploaded) -> None: ...


def supported(url: str) -> str | None:
    """Why ``url`` cannot be used (scheme, host), or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "not a URL"
    if parts.scheme not in SCHEMES:
        return f"{parts.scheme or 'no'} scheme: only {', '.join(SCHEMES)}"
    if not host:
        return "no host"
    return None
