"""Running our SECC or EVCC against the peer's, as separate processes in two network
namespaces joined by a veth pair (SDP needs a link-local interface; the peer refuses ``lo``).

Each side reads nothing but its own configuration: ours takes CLI flags, the peer takes the
``.env`` file in its working directory (and a JSON file for its EVCC). The outcome holds both
sides' records: our JSON-lines message log and the peer's own log text.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "v2h.cli"]
PEER_RUN = HERE / "peer_run.py"
SERVICE_IDS = {"DC": 2, "DC_BPT": 6, "AC": 1, "AC_BPT": 5}
MODE_IDS = {"scheduled": 1, "dynamic": 2}
ISO20_TLS = "TLSv1.3 TLS_AES_256_GCM_SHA384 secp521r1"
# the corrections of the peer that every interop session needs (peer_run.py says why)
PEER_EVCC_FIXES = ("--tls-groups-iso20", "--ev-voltage=400", "--precharge-waits")
PEER_SECC_FIXES = ("--tls-groups-iso20", "--evse-follows-target")
# the peer's names of DIN 70121 and ISO 15118-2 (its PROTOCOLS and supportedProtocols)
PEER_PROTOCOLS = {"din": "DIN_SPEC_70121", "iso2": "ISO_15118_2"}
ENERGY_MODES = {"DC": "DC_extended", "AC": "AC_three_phase_core"}


@dataclass
class Netns:
    """Our side runs in ``ours`` on ``our_dev``; the peer in ``theirs`` on ``their_dev``."""

    ours: str
    our_dev: str
    theirs: str
    their_dev: str


@dataclass
class Outcome:
    """What both sides recorded about one session."""

    returncode: int | None           # our process (None: still running at the deadline, killed)
    stdout: str                      # our readable trace / summary
    log: list[dict]                  # our JSON-lines log: messages and notes
    peer_log: str                    # the peer's log
    messages: list[dict] = field(init=False)
    notes: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.messages = [d for d in self.log if "name" in d]
        self.notes = [d["note"] for d in self.log if "note" in d]

    def sent(self, name: str) -> list[dict]:
        """The bodies of our messages called ``name`` (tx); a DIN/-2 message's Body element."""
        return [_element(d) for d in self.messages if d["direction"] == "tx" and d["name"] == name]

    def received(self, name: str) -> list[dict]:
        return [_element(d) for d in self.messages if d["direction"] == "rx" and d["name"] == name]


    def names(self, direction: str) -> list[str]:
        return [d["name"] for d in self.messages if d["direction"] == direction]


def _element(d: dict) -> dict:
    """The body of a logged message: a DIN/-2 V2G_Message's Body element, else the message."""
    message = d["message"]
    if "V2G_Message" in message:
        return message["V2G_Message"]["Body"][d["name"]]
    return message[d["name"]]


def _env_file(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def _peer_env() -> dict[str, str]:
    """Our environment without PYTHONPATH: the peer's ``iso15118`` must not find ours."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _start_peer(python: Path, ns: str, workdir: Path, args: list[str]) -> tuple[subprocess.Popen, Path]:
    log = workdir / "peer.log"
    out = open(log, "w")
    try:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, str(python), str(PEER_RUN), *args], cwd=workdir,
                                env=_peer_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()
    return proc, log


def _stop(proc: subprocess.Popen) -> None:
    """End a process group: SIGTERM, then SIGKILL (the peer hangs after some failures)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def _read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def their_car_our_charger(netns: Netns, peer_python: Path, peer_pki: Path, v2h_pki: Path, workdir: Path, *,
                          service: str, secc_flags: list[str], peer_flags: tuple[str, ...] = PEER_EVCC_FIXES,
                          loops: int = 5, timeout: float = 60.0, peer_gave_up: str | None = None,
                          protocol: str = "iso20", tls: bool = True, cert_install: bool = False) -> Outcome:
    """The peer's EVCC (SDP, ``loops`` charge loops) against ``v2h secc --once``: ISO 15118-20
    over TLS 1.3, or (``protocol`` 'iso2'/'din') -2 or DIN, over TLS 1.2 with ``tls`` (-2 only)
    or plain TCP. Waits until our charger's session ends, or the peer's log shows
    ``peer_gave_up`` (a regex), or ``timeout``."""
    workdir.mkdir(parents=True, exist_ok=True)
    if protocol == "iso20":
        peer_protocol = "ISO_15118_20_DC" if service.startswith("DC") else "ISO_15118_20_AC"
    else:
        peer_protocol = PEER_PROTOCOLS[protocol]
    config = workdir / "evcc.json"
    config.write_text(json.dumps({"supportedProtocols": [peer_protocol], "supportedEnergyServices": [service],
                                  "isCertInstallNeeded": cert_install, "useTls": tls, "enforceTls": tls,
                                  "energyTransferMode": ENERGY_MODES[service[:2]],
                                  "chargeLoopCycle": loops, "sdpRetryCycles": 1}))
    _env_file(workdir / ".env", {"NETWORK_INTERFACE": netns.their_dev, "LOG_LEVEL": "INFO",
                                 "EVCC_CONFIG_PATH": str(config), "ENABLE_TLS_1_3": str(protocol == "iso20"),
                                 "PKI_PATH": f"{peer_pki}/"})
    log = workdir / "secc.jsonl"
    ours = subprocess.Popen(["ip", "netns", "exec", netns.ours, *CLI, "secc", "--interface", netns.our_dev,
                             "--pki", str(v2h_pki), "--once", "--log", str(log), *secc_flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    peer = None
    try:
        first = ours.stdout.readline()
        if "listening on port" not in first:
            ours.wait(timeout=10)
            raise RuntimeError(f"v2h secc did not start: {first}{ours.stdout.read()}")
        peer, peer_log = _start_peer(peer_python, netns.theirs, workdir, ["evcc", str(config), *peer_flags])
        deadline = time.monotonic() + timeout
        while ours.poll() is None and time.monotonic() < deadline:
            if peer_gave_up and re.search(peer_gave_up, peer_log.read_text()):
                break
            time.sleep(0.2)
        returncode = ours.poll()
    finally:
        if peer is not None:
            _stop(peer)
        _stop(ours)
    return Outcome(returncode, first + ours.stdout.read(), _read_log(log),
                   peer_log.read_text() if peer is not None else "")


def our_car_their_charger(netns: Netns, peer_python: Path, peer_pki: Path, v2h_pki: Path, workdir: Path, *,
                          evcc_flags: list[str], auth_modes: str = "EIM",
                          peer_flags: tuple[str, ...] = PEER_SECC_FIXES, timeout: float = 60.0,
                          protocol: str = "iso20", tls: bool = True) -> Outcome:
    """``v2h evcc`` (SDP on our interface) against the peer's SECC offering -20 DC and AC over
    TLS 1.3 only, or (``protocol`` 'iso2'/'din') -2 or DIN, with TLS 1.2 enforced (``tls``) or
    not."""
    workdir.mkdir(parents=True, exist_ok=True)
    protocols = "ISO_15118_20_DC,ISO_15118_20_AC" if protocol == "iso20" else PEER_PROTOCOLS[protocol]
    _env_file(workdir / ".env", {"NETWORK_INTERFACE": netns.their_dev, "LOG_LEVEL": "INFO",
                                 "PROTOCOLS": protocols, "AUTH_MODES": auth_modes,
                                 "FREE_CHARGING_SERVICE": "False", "SECC_ENFORCE_TLS": str(tls),
                                 "ENABLE_TLS_1_3": str(protocol == "iso20"), "PKI_PATH": f"{peer_pki}/"})
    peer, peer_log = _start_peer(peer_python, netns.theirs, workdir, ["secc", *peer_flags])
    log = workdir / "evcc.jsonl"
    try:
        try:
            # our car repeats SDP for 12.5 s: enough for the peer's start (a JVM among it)
            ours = subprocess.run(["ip", "netns", "exec", netns.ours, *CLI, "evcc", "--interface", netns.our_dev,
                                   "--pki", str(v2h_pki), "--log", str(log), *evcc_flags],
                                  capture_output=True, text=True, timeout=timeout)
            returncode, stdout = ours.returncode, ours.stdout + ours.stderr
        except subprocess.TimeoutExpired as e:
            returncode, stdout = None, "".join(x.decode() if isinstance(x, bytes) else x
                                               for x in (e.stdout, e.stderr) if x)
    finally:
        _stop(peer)
    return Outcome(returncode, stdout, _read_log(log), peer_log.read_text())


def peer_model_error(peer_python: Path, model: str, body: dict) -> str:
    """What the peer's pydantic model ``module:Class`` says about a message body we sent ('' if
    it accepts it): pins a session failure on the peer's model rather than on our bytes."""
    module, cls = model.split(":")
    code = ("import json, sys, importlib\n"
            f"m = getattr(importlib.import_module({module!r}), {cls!r})\n"
            "try:\n    m.parse_obj(json.loads(sys.stdin.read()))\nexcept Exception as e:\n    print(e)\n")
    r = subprocess.run([str(peer_python), "-c", code], input=json.dumps(body), capture_output=True, text=True,
                       timeout=60, env=_peer_env(), cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise RuntimeError(f"peer model check failed: {r.stderr[-500:]}")
    return r.stdout
