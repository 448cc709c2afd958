"""v2h trace decode on captures the tests make with tcpdump: a -20 session over TLS 1.3 between
v2h secc and v2h evcc on loopback (decrypted with the key log both wrote, compared with the
charger's and the car's --log); the -2 session over TLS 1.2 and DIN and -2 over plain TCP
between the same commands; V2GTP frames of ISO 15118-2 and DIN 70121 made with the codec over
real TCP on IPv4 and IPv6, written in small pieces (many segments); and SDP with the session
across a veth pair between two network namespaces.

tcpdump needs root (or CAP_NET_RAW): without it these tests skip with the reason, except where
V2H_REQUIRE_CAPTURE=1 (CI), where they fail."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.test_trace_decode import frames_of, messages, session_docs

CLI = [sys.executable, "-m", "v2h.cli"]
REQUIRED = os.environ.get("V2H_REQUIRE_CAPTURE") == "1"


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"V2H_REQUIRE_CAPTURE=1, but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def tcpdump(path, interface: str, bpf: str, netns: str | None = None):
    """Capture on ``interface`` into ``path`` while the block runs."""
    exe = shutil.which("tcpdump")
    if exe is None:
        _unavailable("tcpdump is not installed (apt-get install tcpdump)")
    prefix = ["ip", "netns", "exec", netns] if netns else []
    # --immediate-mode: each packet as it comes (libpcap's ring hands packets over in blocks
    # otherwise, and a short exchange can still be in the ring when tcpdump stops)
    proc = subprocess.Popen([*prefix, exe, "-i", interface, "-n", "-U", "--immediate-mode", "-Z", "root", "-w",
                             str(path), *bpf.split()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    if "listening on" not in first:
        proc.kill()
        proc.wait()
        _unavailable(f"tcpdump cannot capture here: {first.strip() or 'no output'}")
    try:
        yield
    finally:
        time.sleep(0.3)  # the last packets reach the file
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _free_port() -> int:
    for _ in range(100):
        port = random.randint(50000, 60000)
        with socket.socket(socket.AF_INET6) as s:
            try:
                s.bind(("::", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def _decode(*args: str) -> tuple[list[dict], str]:
    r = subprocess.run([*CLI, "trace", "decode", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()], r.stderr


def _logged(path) -> list[tuple[str, str, dict]]:
    return [(d["direction"], d["name"], d["message"]) for d in map(json.loads, path.read_text().splitlines())
            if "message" in d]


def _start_secc(args, prefix=()):
    proc = subprocess.Popen([*prefix, *CLI, "secc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"listening on port (\d+)", line)
    if m is None:
        proc.kill()
        raise AssertionError(f"no listening line: {line!r} {proc.stderr.read()}")
    return proc, int(m.group(1))


def test_an_iso20_tls13_session_on_loopback_decrypts_to_what_both_sides_logged(v2g_pki, tmp_path):
    cap, keys = tmp_path / "lo.pcap", tmp_path / "keys.log"
    secc_log, evcc_log = tmp_path / "secc.jsonl", tmp_path / "evcc.jsonl"
    port = _free_port()
    with tcpdump(cap, "lo", f"tcp port {port}"):
        secc, _ = _start_secc(["--pki", str(v2g_pki), "--host", "::1", "--port", str(port), "--setpoint", "-7000",
                               "--once", "--quiet", "--log", str(secc_log), "--keylog", str(keys)])
        try:
            ev = subprocess.run([*CLI, "evcc", "--secc", f"[::1]:{port}", "--pki", str(v2g_pki), "--auth", "pnc",
                                 "--loops", "4", "--loop-period", "0.05", "--quiet", "--log", str(evcc_log),
                                 "--keylog", str(keys)], capture_output=True, text=True, timeout=60)
            _, secc_err = secc.communicate(timeout=30)
        finally:
            secc.kill()
    assert ev.returncode == 0, ev.stderr
    assert "anyone with this file can decrypt" in ev.stderr and "anyone with this file can decrypt" in secc_err
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    recs, err = _decode(str(cap), "--keylog", str(keys))
    assert err == ""
    assert recs[0]["note"].startswith("TLSv1.3 TLS_AES_256_GCM_SHA384 [::1]:") and "decrypted, " in recs[0]["note"]
    assert messages(recs) == _logged(secc_log)
    assert sum(n == "DC_ChargeLoopReq" for _, n, _ in messages(recs)) == 4
    car, _ = _decode(str(cap), "--keylog", str(keys), "--side", "evcc")
    assert messages(car) == _logged(evcc_log)

    # without the key log: the flow is listed and what could not be decrypted is said
    recs, err = _decode(str(cap))
    assert messages(recs) == []
    assert re.fullmatch(r"TLSv1\.3 TLS_AES_256_GCM_SHA384 \[::1\]:\d+ → \[::1\]:\d+: not decrypted: no key log given "
                        r"\(--keylog FILE\); \d+ encrypted records from the car, \d+ from the charger",
                        recs[0]["note"]), recs[0]["note"]
    assert "not decrypted: no key log given" in err

    # and the readable trace of the decoded capture shows the power
    shown = subprocess.run([*CLI, "trace", "show", "-", "--name", "DC_ChargeLoopRes"], input="\n".join(
        json.dumps(r) for r in _decode(str(cap), "--keylog", str(keys))[0]), capture_output=True, text=True,
        timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 4 and all(re.search(r"discharging 7\.00 kW", x) for x in lines), shown.stdout


def _exchange(family: int, host: str, frames: list[tuple[str, bytes]], port: int) -> None:
    """The frames over a real TCP connection, each written in small pieces (several segments)."""
    srv = socket.socket(family)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1)

    def recv_exactly(sock, n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "connection closed early"
            buf += chunk
        return buf

    def write(sock, data, piece):
        for i in range(0, len(data), piece):
            sock.sendall(data[i:i + piece])
            time.sleep(0.002)

    def charger():
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            for side, data in frames:
                if side == "client":
                    assert recv_exactly(conn, len(data)) == data
                else:
                    write(conn, data, 3)
    t = threading.Thread(target=charger)
    t.start()
    try:
        with socket.create_connection((host, port), timeout=10) as car:
            car.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for side, data in frames:
                if side == "client":
                    write(car, data, 7)
                else:
                    assert recv_exactly(car, len(data)) == data
    finally:
        t.join(timeout=10)
        srv.close()


@pytest.mark.parametrize("protocol", ["iso2", "din"])
@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["ipv4",
                                                                                                      "ipv6"])
def test_plain_v2gtp_over_real_tcp(tmp_path, protocol, family, host):
    docs = session_docs(protocol)
    cap = tmp_path / "plain.pcap"
    port = _free_port()
    with tcpdump(cap, "lo", f"tcp port {port}"):
        _exchange(family, host, frames_of(docs), port)
    recs, err = _decode(str(cap))
    assert err == ""
    assert messages(recs) == [("rx", "supportedAppProtocolReq", docs[0][2]), ("tx", "supportedAppProtocolRes",
                                                                             docs[1][2]),
                              ("rx", "CurrentDemandReq", docs[2][2]), ("tx", "CurrentDemandRes", docs[3][2])]
    assert "V2GTP without TLS, 4 V2G messages" in recs[0]["note"]


def test_sdp_and_the_session_across_network_namespaces(veth_pair, v2g_pki, tmp_path):
    ns_a, dev_a, ns_b, dev_b = veth_pair
    cap, keys, secc_log = tmp_path / "veth.pcap", tmp_path / "keys.log", tmp_path / "secc.jsonl"
    with tcpdump(cap, dev_a, "udp port 15118 or tcp", netns=ns_a):
        secc, port = _start_secc(["--interface", dev_a, "--pki", str(v2g_pki), "--setpoint", "-5000", "--once",
                                  "--quiet", "--log", str(secc_log), "--keylog", str(keys)],
                                 prefix=["ip", "netns", "exec", ns_a])
        try:
            ev = subprocess.run(["ip", "netns", "exec", ns_b, *CLI, "evcc", "--interface", dev_b, "--pki",
                                 str(v2g_pki), "--loops", "3", "--loop-period", "0.05", "--quiet", "--keylog",
                                 str(keys)], capture_output=True, text=True, timeout=60)
            secc.communicate(timeout=30)
        finally:
            secc.kill()
    assert ev.returncode == 0, ev.stderr
    recs, err = _decode(str(cap), "--keylog", str(keys))
    assert err == "", err
    sdp = [r for r in recs if "sdp" in r]
    assert [r["name"] for r in sdp[:2]] == ["SDPRequest", "SDPResponse"], sdp
    assert sdp[0]["sdp"]["security"] == "TLS" and sdp[0]["sdp"]["from"].startswith("[fe80::b]")
    assert sdp[1]["sdp"]["address"] == "fe80::a" and sdp[1]["sdp"]["port"] == port
    assert messages(recs) == _logged(secc_log)
    note = next(r["note"] for r in recs if "note" in r)
    assert note.startswith("TLSv1.3 TLS_AES_256_GCM_SHA384 [fe80::b]:") and f"[fe80::a]:{port}: decrypted" in note


def test_iso2_over_tls12_and_din_over_tcp_between_v2h_secc_and_evcc(v2g_pki, tmp_path):
    """The -2 and DIN sessions of v2h secc/evcc on one charger: -2 over TLS 1.2 (decrypted with
    the CLIENT_RANDOM line of the key log), DIN and -2 over plain TCP; each decodes to exactly
    what the charger logged."""
    cap, keys, secc_log = tmp_path / "lo.pcap", tmp_path / "keys.log", tmp_path / "secc.jsonl"
    tls_port, tcp_port = _free_port(), _free_port()
    with tcpdump(cap, "lo", f"tcp port {tls_port} or tcp port {tcp_port}"):
        secc, _ = _start_secc(["--pki", str(v2g_pki), "--host", "::1", "--port", str(tls_port), "--tcp-port",
                               str(tcp_port), "--quiet", "--log", str(secc_log), "--keylog", str(keys)])
        try:
            cars = [subprocess.run([*CLI, "evcc", "--secc", f"[::1]:{port}", *flags, "--loops", "3", "--loop-period",
                                    "0.05", "--quiet"], capture_output=True, text=True, timeout=60)
                    for port, flags in ((tls_port, ["--pki", str(v2g_pki), "--protocol", "iso2"]),
                                        (tcp_port, ["--protocol", "din"]),
                                        (tcp_port, ["--protocol", "iso2", "--security", "none"]))]
        finally:
            secc.terminate()
            secc.communicate(timeout=30)
    for car in cars:
        assert car.returncode == 0, car.stderr
    recs, err = _decode(str(cap), "--keylog", str(keys))
    assert err == "", err
    notes = [r["note"] for r in recs if "note" in r]
    assert re.fullmatch(rf"TLSv1\.2 ECDHE-ECDSA-AES128-SHA256 \[::1\]:\d+ → \[::1\]:{tls_port}: decrypted, \d+ V2G "
                        r"messages", notes[0]), notes
    assert all(re.fullmatch(rf"TCP \[::1\]:\d+ → \[::1\]:{tcp_port}: V2GTP without TLS, \d+ V2G messages", n)
               for n in notes[1:]) and len(notes) == 3, notes
    assert messages(recs) == _logged(secc_log)
    assert sum(n == "CurrentDemandReq" for _, n, _ in messages(recs)) == 9
