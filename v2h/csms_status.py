"""What ``v2h charger`` says about its connection to the CSMS: the attempt, each failure with
its reason in words (refused, DNS, TLS, HTTP 401 …) and when it tries again, the moment it is
connected and booted, and a lost connection.

It listens where the station already speaks (the OCPP adapter's log lines and the frames it
sends and receives), so the station itself stays as it is.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

try:
    import websockets
except ImportError:  # pragma: no cover - a dependency of the package
    websockets = None


def describe_failure(exc: BaseException, url: str, station_id: str) -> str:
    """A failed connection attempt, in words, with a hint where one helps."""
    parts = urlsplit(url)
    host, port = parts.hostname or "?", parts.port or (443 if parts.scheme == "wss" else 80)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS: the CSMS certificate is not trusted ({exc.verify_message or exc.reason}); "
                "give its roots with --csms-ca")
    if websockets is not None and isinstance(exc, websockets.exceptions.InvalidStatus):
        status = exc.response.status_code
        reason = getattr(exc.response, "reason_phrase", "") or ""
        text = f"HTTP {status}{' ' + reason if reason else ''}"
        if status == 401:
            return (f"{text}: the CSMS refused the credentials of station {station_id!r} (basic auth: the station id "
                    f"and --password); note that the station id is appended to the URL: {url}")
        if status in (403, 404):
            return f"{text}: the station id is appended to --csms; is {url} the CSMS's path for this station?"
        return text
    if isinstance(exc, socket.gaierror):
        return f"DNS: cannot resolve {host} ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {host} port {port} (is the CSMS running?)"
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError)) and parts.scheme == "wss":
        return (f"TLS handshake failed: {host} port {port} reset the connection (is it a ws:// server? wss:// needs "
                "TLS on the CSMS)")
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError)):
        return f"{host} port {port} reset the connection"
    if isinstance(exc, ssl.SSLError):
        hint = " (is it a ws:// server? wss:// needs TLS)" if "WRONG_VERSION" in str(exc) else ""
        return f"TLS handshake failed: {exc.reason or exc}{hint}"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"no answer from {host} port {port} within the timeout"
    if websockets is not None and isinstance(exc, websockets.exceptions.InvalidMessage):
        return f"{host} port {port} does not answer as a websocket server ({exc.__cause__ or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror} ({host} port {port})"
    return str(exc) or type(exc).__name__


class CSMSStatus:
    """Turns the station's log lines and frames into the charger's notes about the CSMS link.
    ``say`` writes a note (the trace and the JSON log), ``warn`` a warning (stderr with
    --quiet; may be None)."""

    def __init__(self, station, say: Callable[[str], None], warn: Callable[[str], None] | None = None):
        self.station = station
        self.say = say
        self.warn = warn
        self.failures = 0
        self.connected = False
        self.just_lost = False
        config = station.config
        self.url = config.url()
        self.station_id = config.station_id

    def start(self) -> None:
        profile = self.station.config.security_profile
        how = {1: "basic auth, no TLS", 2: "basic auth over TLS", 3: "TLS with the station's certificate"}[profile]
        self.say(f"connecting to the CSMS at {self.url} as {self.station_id} (security profile {profile}: {how})")

    def handler(self) -> logging.Handler:
        return _StationHandler(self)

    def frame_log(self, inner: Callable[[str, str, object], None]) -> Callable[[str, str, object], None]:
        """Wraps the OCPP frame log: the BootNotification and its answer mark the connection."""
        def log(direction: str, name: str, frame) -> None:
            inner(direction, name, frame)
            if name == "BootNotification" and direction == "tx" and not self.connected:
                self.just_lost = False
                tries = f" after {self.failures} failed attempts" if self.failures else ""
                self._report(f"connected to the CSMS{tries}; sending BootNotification", warn=bool(tries))
            elif name == "BootNotificationResponse" and isinstance(frame, list) and len(frame) > 2:
                status = frame[2].get("status") if isinstance(frame[2], dict) else None
                if status == "Accepted":
                    self.connected, self.failures = True, 0
                    self.say("online: the CSMS accepted the BootNotification")
                else:
                    self._report(f"the CSMS answered the BootNotification with {status}: the station waits and boots again", warn=True)
        return log

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        reason = describe_failure(exc, self.url, self.station_id)
        try:  # the station computes the next attempt right after it logs: read it once it has
            asyncio.get_running_loop().call_soon(self._failed, reason)
        except RuntimeError:
            self._failed(reason)

    def _failed(self, reason: str) -> None:
        self._report(f"cannot connect to the CSMS (attempt {self.failures}): {reason}; {self._next()}", warn=True)

    def lost(self, reason: str) -> None:
        self.connected = False
        self.just_lost = True
        try:
            asyncio.get_running_loop().call_soon(
                lambda: self._report(f"lost the CSMS connection ({reason}); {self._next()}", warn=True))
        except RuntimeError:
            self._report(f"lost the CSMS connection ({reason})", warn=True)

    def _next(self) -> str:
        try:
            wait = max(0.0, self.station.core.next_connect_at() - self.station.now())
        except (AttributeError, TypeError):
            return "trying again"
        at = time.strftime("%H:%M:%S", time.gmtime(time.time() + wait))
        return f"next attempt in {wait:.1f} s (at {at} UTC)"

    def _report(self, text: str, *, warn: bool = False) -> None:
        self.say(text)
        if warn and self.warn is not None:
            self.warn(text)


_FAILED = ("CSMS certificate refused", "CSMS refused the connection", "CSMS connection lost or refused")
_LOST = "CSMS connection lost:"


def about_connection(record: logging.LogRecord) -> bool:
    """Whether a log line of the OCPP adapter is about the CSMS connection (said here in
    words instead). Told by its text: the station core and its adapter log these lines."""
    msg = str(record.msg)
    return record.name.startswith("ocpp_bridge") and (msg.startswith(_FAILED) or msg.startswith(_LOST))


class _StationHandler(logging.Handler):
    """Reads the OCPP adapter's log lines about the connection (their first argument is the
    exception or the reason)."""

    def __init__(self, status: CSMSStatus):
        super().__init__(logging.DEBUG)
        self.status = status

    def emit(self, record: logging.LogRecord) -> None:
        if not about_connection(record):
            return
        arg = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if str(record.msg).startswith(_LOST):
            self.status.lost(str(arg) if arg is not None else "closed")
        elif self.status.just_lost:
            self.status.just_lost = False  # the adapter's own line about the same loss
        elif isinstance(arg, BaseException):
            self.status.failed(arg)
