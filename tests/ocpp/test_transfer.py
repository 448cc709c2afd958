"""Firmware and log files over real HTTP: the adapter (ocpp_bridge.transfer.HttpTransfer) against
a local HTTP server, and `v2h charger` as a process updating its firmware (download, signature,
staging, the restart, Installed after the boot) and uploading its logs, for a real CSMS."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ocpp_bridge.core import iso
from ocpp_bridge.transfer import HttpTransfer

from .csms import CSMS
from .firmware_pki import pki

CLI = [sys.executable, "-m", "v2h.cli"]
PASSWORD = "a-very-secret-passphrase"
IMAGE = b"\x7fELF v2h firmware 2.1" + bytes(range(256)) * 64


class _Files(http.server.BaseHTTPRequestHandler):
    """GET /firmware.bin, /redirect (to ftp://), POST /logs/ (multipart, kept)."""

    uploads: list[tuple[str, bytes]] = []

    def do_GET(self):
        if self.path == "/firmware.bin":
            self._reply(200, IMAGE)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/firmware.bin")
            self.end_headers()
        else:
            self._reply(404, b"not found")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self.path.startswith("/logs/"):
            self._reply(500, b"no")
            return
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body)
        part = next(msg.iter_parts())
        type(self).uploads.append((part.get_filename(), part.get_payload(decode=True)))
        self._reply(200, b"ok")

    def _reply(self, code: int, data: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def test_http_transfer_downloads_uploads_and_refuses_the_rest():
    srv, base = _server()
    _Files.uploads = []

    async def run():
        t = HttpTransfer(max_bytes=len(IMAGE), clock=lambda: 42.0)
        results = {}

        def keep(name):
            return lambda *r: results.__setitem__(name, r)
        t.download(f"{base}/firmware.bin", keep("ok"))
        t.download(f"{base}/missing.bin", keep("404"))
        t.download(f"{base}/redirect", keep("redirect"))
        t.download("file:///etc/passwd", keep("file"))
        t.upload(f"{base}/logs/", 'a"b.log', b"line 1\nline 2\n", keep("up"))
        t.upload(f"{base}/elsewhere", "x.log", b"x", keep("up500"))
        small = HttpTransfer(max_bytes=100)
        small.download(f"{base}/firmware.bin", keep("big"))
        while len(results) < 7:
            await asyncio.sleep(0.02)
        return results

    try:
        r = asyncio.run(run())
    finally:
        srv.shutdown()
    assert r["ok"] == (IMAGE, None, 42.0)
    assert r["404"][0] is None and "404" in r["404"][1]
    assert r["redirect"][0] is None           # no redirect to ftp://
    assert r["file"][0] is None and "scheme" in r["file"][1]
    assert r["big"][0] is None and "larger" in r["big"][1]
    assert r["up"] == (None, 42.0) and _Files.uploads == [("ab.log", b"line 1\nline 2\n")]
    assert r["up500"][0] is not None


def test_v2h_charger_updates_its_firmware_and_uploads_its_logs(v2g_pki, tmp_path):
    """UpdateFirmware to `v2h charger --firmware-roots`: Downloading … InstallRebooting, the
    process re-executes, BootNotification FirmwareUpdate, FirmwareUpdated, Installed, the image
    staged in --firmware-dir; then GetLog uploads the security log over HTTP."""
    srv, base = _server()
    _Files.uploads = []
    roots = tmp_path / "roots.pem"
    roots.write_bytes(pki().root.public_bytes(serialization.Encoding.PEM))
    staged = tmp_path / "staged"

    async def run():
        csms = await CSMS(passwords={"CS110": PASSWORD}).start()
        charger = subprocess.Popen([*CLI, "charger", "--pki", str(v2g_pki), "--host", "::1", "--csms", csms.url(),
                                    "--id", "CS110", "--password", PASSWORD, "--db", str(tmp_path / "cs.db"),
                                    "--firmware-roots", str(roots), "--firmware-dir", str(staged), "--quiet",
                                    "--retry-backoff", "0.2", "--retry-random", "0"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            await csms.wait_for(lambda c: "CS110" in c.connections and c.actions("SecurityEventNotification"))
            update = await csms.send_call("CS110", "UpdateFirmware", {"requestId": 21, "firmware": {
                "location": f"{base}/firmware.bin", "retrieveDateTime": iso(0),
                "signingCertificate": pki().signing_pem, "signature": pki().sign(IMAGE)}})
            await csms.wait_for(lambda c: any(f.payload["status"] == "Installed"
                                              for f in c.actions("FirmwareStatusNotification")), timeout=60)
            log = await csms.send_call("CS110", "GetLog", {"logType": "SecurityLog", "requestId": 22,
                                                          "log": {"remoteLocation": f"{base}/logs/"}})
            await csms.wait_for(lambda c: any(f.payload["status"] == "Uploaded"
                                              for f in c.actions("LogStatusNotification")), timeout=30)
        finally:
            charger.kill()
            await csms.close()
        return csms, update, log, charger.stderr.read()

    try:
        csms, update, log, err = asyncio.run(run())
    finally:
        srv.shutdown()
    assert update == (3, {"status": "Accepted"}), err[-2000:]
    statuses = [f.payload["status"] for f in csms.actions("FirmwareStatusNotification")]
    assert statuses == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting",
                        "Installed"]
    assert {f.payload["requestId"] for f in csms.actions("FirmwareStatusNotification")} == {21}
    assert [b.payload["reason"] for b in csms.actions("BootNotification")] == ["PowerUp", "FirmwareUpdate"]
    assert "FirmwareUpdated" in [e.payload["type"] for e in csms.actions("SecurityEventNotification")]
    assert (staged / "firmware-21.bin").read_bytes() == IMAGE
    assert log[0] == 3 and log[1]["status"] == "Accepted" and re.match(r"CS110-SecurityLog-", log[1]["filename"])
    (name, data), = _Files.uploads
    events = [json.loads(x)["type"] for x in data.decode().splitlines()]
    assert name == log[1]["filename"] and events.count("StartupOfTheDevice") == 1 and "FirmwareUpdated" in events
    assert Path(tmp_path / "cs.db").exists()
