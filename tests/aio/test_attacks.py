"""Attacks on a running charger over real TCP/TLS on loopback (the cars in ``attackers.py``):
a second connection against the car that owns the power charger, unfinished connections against
the cap and the handshake deadline, refused handshakes against the log and the counters."""

from __future__ import annotations

import asyncio
import logging

import pytest

from iso15118 import pki
from iso15118.aio import tls
from iso15118.aio.listener import Throttle
from iso15118.aio.session import run_evcc, start_secc
from iso15118.evcc import Battery, EVCCConfig
from iso15118.secc import SECCConfig, simulated_charger
from iso15118.units import val
from iso15118.v2gtp import PayloadType, encode_frame

from .attackers import Holder, car_context, car_until, client_hello, foreign_car_context, handshake, tls12_context

HOST = "127.0.0.1"


def _run(coro, timeout: float = 90):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def _stage(**kw) -> SimulatedPowerStage:
    return simulated_charger(kind="DC", setpoint_w=-6000, isolation_time=0.05, **kw)


@pytest.fixture(scope="module")
def stranger_pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("stranger")
    pki.init_pki(d, profiles=["iso20-secp521r1"])
    return d


# --- one power charger, one session ----------------------------------------------------------------

def test_a_second_connection_never_touches_the_first_cars_power(v2g_pki):
    """Car A discharges in its loop. Meanwhile: car B (valid certificate) is refused at
    SessionSetup; C sets up TLS and the handshake and then idles until the charger's
    communication setup timer closes it; D drops its connection with a reset; E sends
    SessionSetup, is refused and idles. A's loop and power are untouched: every response at the
    asked 6 kW, the charger de-energised once, when A stops; only A's session reached the charger."""
    charger = _stage()
    cfg = SECCConfig(communication_setup_timeout=1.0)

    async def go():
        srv = await start_secc(charger, pki_dir=v2g_pki, host=HOST, config=cfg)
        a_log: list = []
        a = asyncio.ensure_future(run_evcc(Battery(), EVCCConfig(loops=120, loop_period=0.05, poll_interval=0.02),
                                           pki_dir=v2g_pki, secc=(HOST, srv.port),
                                           observer=lambda *e: a_log.append(e)))
        while not any(n == "DC_ChargeLoopRes" for _, _, n, _ in a_log):
            await asyncio.sleep(0.02)
        b = await run_evcc(Battery(), EVCCConfig(loops=2, evcc_id="0200000000B1"), pki_dir=v2g_pki,
                           secc=(HOST, srv.port))
        c = await car_until(v2g_pki, HOST, srv.port, stop_before="SessionSetupReq", then="idle")
        d = await car_until(v2g_pki, HOST, srv.port, stop_before="SessionSetupReq", then="drop")
        e = await car_until(v2g_pki, HOST, srv.port, stop_before="AuthorizationSetupReq", then="idle")
        in_loop = not a.done()
        result_a = await a
        await asyncio.sleep(0.1)
        await srv.close()
        return a_log, b, c, d, e, in_loop, result_a, srv.sessions

    a_log, b, c, d, e, in_loop, result_a, sessions = _run(go())
    assert in_loop, "car A finished before the intruders were done: the test proves nothing"
    assert result_a.ok and result_a.loops == 120, result_a.reason
    assert not b.ok and b.reason == "SessionSetupRes FAILED"
    assert c.closed_by_charger_after is not None and c.closed_by_charger_after < 2.0
    assert e.received == [("supportedAppProtocolRes", "OK_SuccessfulNegotiation"), ("SessionSetupRes", "FAILED")]
    loops = [m for _, direction, n, m in a_log if n == "DC_ChargeLoopRes"]
    assert all(val(m.EVSEPresentCurrent) * val(m.EVSEPresentVoltage) == pytest.approx(-6000, rel=0.002) for m in loops)
    last_loop = max(t for t, _, n, _ in a_log if n == "DC_ChargeLoopRes")
    de = [ev.time for ev in charger.stage.history.events if ev.kind == "deenergise"]
    assert len(de) == 1 and de[0] > last_loop  # once, at A's end
    assert [k for k in charger.supervisor.kinds() if k in ("SessionStarted", "SessionEnded")] == \
        ["SessionStarted", "SessionEnded"]
    established = [s for s in sessions if s.established]
    assert len(established) == 1 and established[0].end_reason == "SessionStopRes OK"
    refused = [s.end_reason for s in sessions if s.end_reason.startswith("SessionSetupRes FAILED")]
    assert len(refused) == 2 and all("the connector is in use (session " in r for r in refused)
    assert any(s.end_reason.startswith("communication setup timeout") for s in sessions)
    assert any(s.end_reason.startswith("connection lost") for s in sessions)
    assert not charger.stage.measurements(1e12).contactors_closed


def test_pause_and_resume_with_the_shared_stage(v2g_pki):
    """SessionStop(Pause) gives the charger back; the same car resumes (OK_OldSessionJoined) and
    owns it again, and a stranger during the resumed session is refused."""
    charger = _stage()

    async def go():
        srv = await start_secc(charger, pki_dir=v2g_pki, host=HOST)
        first = await run_evcc(Battery(), EVCCConfig(loops=3, loop_period=0.05, poll_interval=0.02, end="Pause"),
                               pki_dir=v2g_pki, secc=(HOST, srv.port))
        log: list = []
        resumed = asyncio.ensure_future(run_evcc(
            Battery(), EVCCConfig(loops=40, loop_period=0.05, poll_interval=0.02, resume_session_id=first.session_id),
            pki_dir=v2g_pki, secc=(HOST, srv.port), observer=lambda *e: log.append(e)))
        while not any(n == "DC_ChargeLoopRes" for _, _, n, _ in log):
            await asyncio.sleep(0.02)
        stranger = await run_evcc(Battery(), EVCCConfig(loops=2, evcc_id="0200000000B3"), pki_dir=v2g_pki,
                                  secc=(HOST, srv.port))
        second = await resumed
        await srv.close()
        return first, second, stranger, log

    first, second, stranger, log = _run(go())
    assert first.ok and first.reason == "SessionStop Pause"
    assert second.ok and second.session_id == first.session_id and second.loops == 40, second.reason
    assert [str(m.ResponseCode) for _, _, n, m in log if n == "SessionSetupRes"] == ["OK_OldSessionJoined"]
    assert not stranger.ok and stranger.reason == "SessionSetupRes FAILED"


# --- unfinished connections: the cap and the deadline ----------------------------------------------

def test_with_the_cap_reached_a_car_still_gets_its_session(v2g_pki):
    """Cap 4: six idle TCP connections, six stalled handshakes (a real ClientHello) and two
    connections that finished TLS but send nothing. The charger never holds more than 4; each
    newcomer pushes out the oldest stranger; a real car still gets its session."""
    charger = _stage()

    async def go():
        srv = await start_secc(charger, pki_dir=v2g_pki, host=HOST, max_connections=4)
        tcp = await Holder().open(HOST, srv.port, 6)
        hello = await Holder().open(HOST, srv.port, 6, client_hello(v2g_pki))
        silent = [asyncio.ensure_future(car_until(v2g_pki, HOST, srv.port, stop_before="supportedAppProtocolReq",
                                                  then="idle", wait=30)) for _ in range(2)]
        await asyncio.sleep(0.5)
        held = len(srv.server.connections)
        result = await run_evcc(Battery(), EVCCConfig(loops=3, loop_period=0.05, poll_interval=0.02),
                                pki_dir=v2g_pki, secc=(HOST, srv.port))
        silent_results = await asyncio.gather(*silent)
        await tcp.settle()
        await hello.settle()
        closed = tcp.closed_by_peer() + hello.closed_by_peer()
        tcp.close()
        hello.close()
        await srv.close()
        return held, result, silent_results, closed, srv.stats

    held, result, silent, closed, stats = _run(go())
    assert held <= 4
    assert result.ok, result.reason
    assert all(s.closed_by_charger_after is not None for s in silent)  # shed, not left to their timers
    assert closed >= 10
    assert stats.failures["shed"] >= 11 and stats.failures["full"] == 0


def test_unfinished_handshakes_end_at_the_communication_setup_deadline(v2g_pki):
    """asyncio waits 60 s for a handshake; the charger waits the communication setup timer."""
    cfg = SECCConfig(communication_setup_timeout=0.5)

    async def go():
        srv = await start_secc(_stage(), pki_dir=v2g_pki, host=HOST, config=cfg)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tcp = await Holder().open(HOST, srv.port, 2)
        hello = await Holder().open(HOST, srv.port, 2, client_hello(v2g_pki))
        while tcp.closed_by_peer() + hello.closed_by_peer() < 4 and loop.time() - t0 < 5:
            await tcp.settle()
            await hello.settle()
        took = loop.time() - t0
        await srv.close()
        return took, srv.stats

    took, stats = _run(go())
    assert took < 2.0
    assert stats.failures["timeout"] == 4 and stats.handshakes == 0


# --- refused handshakes: logged once, counted, reported ---------------------------------------------

def test_refused_handshakes_are_logged_with_the_reason_counted_and_reported(v2g_pki, stranger_pki, caplog):
    """Each kind of refusal: a vehicle certificate from an OEM the charger does not trust (three
    times: one log line),
    none at all, TLS 1.2 only, a cipher suite outside -20, plain V2GTP on the TLS port."""
    reported = []
    no_cert = tls.iso20_client_context(tls.Credentials(None, None, tls.credentials_from_pki(v2g_pki, "evcc").trust))
    wrong_suite = car_context(v2g_pki)
    assert tls._libssl().SSL_CTX_set_ciphersuites(tls._ssl_ctx_ptr(wrong_suite), b"TLS_AES_128_GCM_SHA256") == 1

    async def go():
        # an ISO 15118-20 charger: a TLS 1.2 car is refused (with -2 offered it would be a -2 car)
        srv = await start_secc(_stage(), pki_dir=v2g_pki, host=HOST, on_handshake_failure=reported.append,
                               config=SECCConfig(protocols=("iso20",)))
        for _ in range(3):
            await handshake(foreign_car_context(v2g_pki, stranger_pki), HOST, srv.port)
        await handshake(no_cert, HOST, srv.port)
        await handshake(tls12_context(v2g_pki), HOST, srv.port)
        await handshake(wrong_suite, HOST, srv.port)
        reader, writer = await asyncio.open_connection(HOST, srv.port)
        writer.write(encode_frame(PayloadType.EXI, bytes.fromhex("8000dbab9371d3234b71d1b981899189d191818991d1bc8a"
                                                                 "63c9a58000000000000010000400")))
        await reader.read()
        writer.close()
        ok = await run_evcc(Battery(), EVCCConfig(loops=2, loop_period=0.05), pki_dir=v2g_pki, secc=(HOST, srv.port))
        for _ in range(50):
            if len(reported) >= 7:
                break
            await asyncio.sleep(0.02)
        await srv.close()
        return ok, srv.stats

    with caplog.at_level(logging.INFO, logger="iso15118.aio.listener"):
        ok, stats = _run(go())
    assert ok.ok, ok.reason  # and the next car is served
    kinds = [f.kind for f in reported]
    assert kinds == ["certificate"] * 4 + ["version", "cipher", "protocol"], [(f.kind, f.reason) for f in reported]
    assert all(f.refused and f.peer[0] == HOST for f in reported)
    assert stats.refused_handshakes == 7 and stats.failures["certificate"] == 4
    lines = [r.getMessage() for r in caplog.records if r.name == "iso15118.aio.listener"]
    assert len([x for x in lines if "certificate" in x]) == 1, lines  # four refusals, one line
    assert "unable to get local issuer certificate" in reported[0].reason
    assert any("not TLS 1.3" in x for x in lines) and any("no cipher suite" in x for x in lines)
    assert any("TLS handshake failed" in x for x in lines)
    assert all(x.startswith(f"refused TLS connection from {HOST}") for x in lines)


def test_throttle():
    t = Throttle(10.0)
    assert t.check("a", 0.0) == 0
    assert t.check("a", 1.0) is None and t.check("a", 9.9) is None
    assert t.check("b", 5.0) == 0  # each key on its own
    assert t.check("a", 10.0) == 2  # the next line says two were held back
    assert t.check("a", 15.0) is None


def test_closing_the_charger_de_energises_a_running_session(v2g_pki):
    """Shutting the listener down (v2h secc on SIGTERM) ends a discharging session the way a
    lost connection does: de-energised first, the car told by the connection's end."""
    charger = _stage()

    async def go():
        srv = await start_secc(charger, pki_dir=v2g_pki, host=HOST)
        log: list = []
        car = asyncio.ensure_future(run_evcc(Battery(), EVCCConfig(loops=200, loop_period=0.05, poll_interval=0.02),
                                             pki_dir=v2g_pki, secc=(HOST, srv.port), observer=lambda *e: log.append(e)))
        while not any(n == "DC_ChargeLoopRes" for _, _, n, _ in log):
            await asyncio.sleep(0.02)
        energised = charger.stage.measurements(asyncio.get_running_loop().time()).current != 0
        await srv.close()
        return energised, await car, srv.sessions

    energised, result, sessions = _run(go())
    assert energised
    assert not result.ok and "connection lost" in result.reason
    assert sessions[0].end_reason.startswith("connection lost in ChargeLoop")
    m = charger.stage.measurements(1e12)
    assert not m.contactors_closed and m.current == 0
