"""What the long-running commands say as it happens: `v2h charger` about its CSMS (each attempt,
each failure with its reason, the moment it is online), `v2h evcc` about a charger that is not
listening (retrying until when), --quiet and --verbose."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import subprocess
import sys
import time

import pytest

from tests.ocpp.csms import CSMS

CLI = [sys.executable, "-m", "v2h.cli"]
PASSWORD = "a-very-secret-passphrase"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lines:
    """A child's stdout and stderr read line by line in threads, waited on by pattern."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((proc.stdout, self.out), (proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream, sink) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0, where: str = "out") -> str:
        sink = self.out if where == "out" else self.err
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(sink):
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in {where}:\n" + "\n".join(sink[-30:]))


def _charger(v2g_pki, tmp_path, csms_url: str, *flags: str, password: str = PASSWORD) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "charger", "--pki", str(v2g_pki), "--host", "127.0.0.1", "--csms", csms_url,
                             "--id", "CS7", "--db", str(tmp_path / "cs.db"), "--retry-backoff", "0.3",
                             "--retry-random", "0", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "V2H_CSMS_PASSWORD": password})


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_charger_says_it_cannot_reach_the_csms_then_that_it_is_online(v2g_pki, tmp_path):
    """The CSMS is down: each attempt fails with 'connection refused' and the time of the next
    one; then the CSMS comes up on that port and the charger says it is connected and online
    (it used to print only 'SECC listening' and nothing else)."""
    port = _free_port()
    proc = _charger(v2g_pki, tmp_path, f"ws://127.0.0.1:{port}")
    lines = Lines(proc)
    try:
        assert "listening on port" in lines.wait_for("listening")
        assert lines.out[0].startswith("SECC listening on port")  # still the first line
        lines.wait_for(r"OCPP connecting to the CSMS at ws://127\.0\.0\.1:\d+/CS7 as CS7 \(security profile 1")
        lines.wait_for(r"cannot connect to the CSMS \(attempt 1\): connection refused by 127\.0\.0\.1 port \d+ "
                       r"\(is the CSMS running\?\); next attempt in [\d.]+ s \(at \d\d:\d\d:\d\d UTC\)")
        lines.wait_for(r"\(attempt 2\)")

        async def serve_csms():
            csms = await CSMS(passwords={"CS7": PASSWORD}).start(port=port)
            try:
                await csms.wait_for(lambda c: c.actions("BootNotification"))
                await asyncio.get_running_loop().run_in_executor(None, lines.wait_for, "online: the CSMS accepted")
            finally:
                await csms.close()
        asyncio.run(serve_csms())
        connected = lines.wait_for(r"connected to the CSMS after \d+ failed attempts")
        assert "sending BootNotification" in connected
        lines.wait_for(r"lost the CSMS connection")
    finally:
        _stop(proc)


def test_charger_names_a_dns_failure(v2g_pki, tmp_path):
    proc = _charger(v2g_pki, tmp_path, "ws://no-such-host.invalid:9000/ocpp", "--quiet")
    lines = Lines(proc)
    try:
        line = lines.wait_for(r"cannot connect to the CSMS", where="err")
        assert line.startswith("v2h charger: ") and "DNS: cannot resolve no-such-host.invalid" in line, line
    finally:
        _stop(proc)


def test_charger_explains_http_401(v2g_pki, tmp_path):
    """Wrong password: HTTP 401 with the hint that the station id is appended to the URL."""
    async def run():
        csms = await CSMS(passwords={"CS7": "another-password-12345"}).start()
        proc = _charger(v2g_pki, tmp_path, csms.url())
        lines = Lines(proc)
        try:
            return await asyncio.get_running_loop().run_in_executor(
                None, lines.wait_for, r"cannot connect to the CSMS \(attempt 1\)")
        finally:
            _stop(proc)
            await csms.close()
    line = asyncio.run(run())
    assert "HTTP 401" in line and "the station id is appended to the URL" in line, line
    assert re.search(r"ws://127\.0\.0\.1:\d+/CS7", line), line


def test_charger_explains_tls_failures(v2g_pki, tmp_path):
    """wss:// to a plain server, and to a TLS server whose certificate is not trusted (signed by
    another PKI's CSMS root: the charger trusts its own --pki's)."""
    from iso15118 import pki

    other = tmp_path / "other-pki"
    pki.init_pki(other)

    async def run():
        plain = await CSMS(passwords={"CS7": PASSWORD}).start()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(other / "ocpp" / "csms_server.pem", other / "ocpp" / "csms_server.key.pem")
        tls = await CSMS(passwords={"CS7": PASSWORD}, ssl_context=ctx).start()
        out = []
        try:
            for url in (plain.url("wss"), tls.url("wss")):
                proc = _charger(v2g_pki, tmp_path, url)
                lines = Lines(proc)
                try:
                    out.append(await asyncio.get_running_loop().run_in_executor(
                        None, lines.wait_for, r"cannot connect to the CSMS \(attempt 1\)"))
                finally:
                    _stop(proc)
        finally:
            await plain.close()
            await tls.close()
        return out
    wrong_protocol, untrusted = asyncio.run(run())
    assert "TLS handshake failed" in wrong_protocol, wrong_protocol
    assert "the CSMS certificate is not trusted" in untrusted and "--csms-ca" in untrusted, untrusted


def test_evcc_says_it_is_retrying_and_until_when(v2g_pki):
    """A closed port: the car says at once that it retries, and until when (it used to be
    silent for 21 s); with --quiet the line goes to stderr."""
    port = _free_port()
    for flags, where in (([], "out"), (["--quiet"], "err")):
        proc = subprocess.Popen([*CLI, "evcc", "--secc", f"127.0.0.1:{port}", "--pki", str(v2g_pki), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = Lines(proc)
        t0 = time.monotonic()
        try:
            line = lines.wait_for(r"refuses the connection", timeout=10, where=where)
        finally:
            proc.kill()
            proc.wait()
        assert time.monotonic() - t0 < 8
        assert re.search(rf"127\.0\.0\.1:{port} refuses the connection \(nothing listening\); retrying every 0\.2 s "
                         r"until \d\d:\d\d:\d\d UTC \(the communication setup timer, 20 s\)", line), line


@pytest.mark.parametrize("command", ["secc", "charger", "evcc"])
def test_every_long_running_command_takes_quiet_and_verbose(command):
    from v2h.cli import build_parser

    base = {"secc": ["secc", "--pki", "P"], "evcc": ["evcc", "--pki", "P", "--secc", "[::1]:1"],
            "charger": ["charger", "--pki", "P", "--csms", "ws://x", "--id", "A"]}[command]
    assert build_parser().parse_args([*base, "-v"]).verbose
    assert build_parser().parse_args([*base, "--quiet"]).quiet
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "-v", "-q"])
