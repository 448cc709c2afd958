"""The asyncio adapter for files to and from the station (``ocpp_bridge.files.FileTransfer``)
over HTTP(S), as `v2h charger` runs it: the blocking urllib work in a worker thread, with a time
limit and a size limit, http:// and https:// only (OCPPCommCtrlr.FileTransferProtocols); the
callback (``done``) on the event loop, then the station adapter is woken (its core's timers and
frames moved on). An upload is an HTTP POST of multipart/form-data, the file in the field ``file``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

from .files import Downloaded, Uploaded, supported

log = logging.getLogger(__name__)
MAX_DOWNLOAD = 256 * 1024 * 1024   # bytes: a firmware image larger than this is refused, not buffered
TIMEOUT = 60.0                     # s per request


class HttpTransfer:
    """``FileTransfer`` over HTTP(S) for an asyncio station: each transfer runs in a worker
    thread; ``done`` is called on the loop. ``wakeup`` tells the station adapter to look at its
    core again (its deadlines and frames changed)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, timeout: float = TIMEOUT,
                 max_bytes: int = MAX_DOWNLOAD, wakeup: Callable[[], None] | None = None,
                 clock: Callable[[], float] | None = None):
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.wakeup = wakeup
        self.clock = clock  # the station's time, passed to the callbacks
        self._tasks: set[asyncio.Task] = set()

    def download(self, url: str, done: Downloaded) -> None:
        self._spawn(self._get, (url,), lambda r, now: done(*r, now))

    def upload(self, url: str, filename: str, data: bytes, done: Uploaded) -> None:
        self._spawn(self._post, (url, filename, data), done)

    def _spawn(self, work, args, finish) -> None:
        loop = asyncio.get_running_loop()

        async def run() -> None:
            result = await loop.run_in_executor(None, work, *args)
            finish(result, self.clock() if self.clock is not None else loop.time())
            if self.wakeup is not None:
                self.wakeup()
        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- blocking, in a worker thread ------------------------------------------------------------
    def _get(self, url: str) -> tuple[bytes | None, str | None]:
        if (why := supported(url)) is not None:
            return None, why
        try:
            with self._open(url) as res:
                data = res.read(self.max_bytes + 1)
        except (urllib.error.URLError, OSError, ValueError) as e:  # HTTPError is a URLError
            return None, f"{type(e).__name__}: {e}"[:200]
        if len(data) > self.max_bytes:
            return None, f"larger than {self.max_bytes} bytes"
        return data, None

    def _post(self, url: str, filename: str, data: bytes) -> str | None:
        if (why := supported(url)) is not None:
            return why
        boundary = uuid.uuid4().hex
        safe = filename.replace('"', "").replace("\r", "").replace("\n", "")
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with self._open(req) as res:
                res.read(65536)
        except (urllib.error.URLError, OSError, ValueError) as e:
            return f"{type(e).__name__}: {e}"[:200]
        return None

    def _open(self, req):
        """HTTP and HTTPS only, redirects included (urllib's default opener would also follow a
        redirect to ftp:// and read file:// URLs)."""
        opener = urllib.request.OpenerDirector()
        for handler in (urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(context=self.ssl_context),
                        urllib.request.HTTPRedirectHandler(), urllib.request.HTTPDefaultErrorHandler(),
                        urllib.request.HTTPErrorProcessor()):
            opener.add_handler(handler)
        return opener.open(req, timeout=self.timeout)
