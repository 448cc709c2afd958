"""Malicious or broken cars on the network, for the attack tests: each is a real TCP/TLS client
on loopback, built from the same parts as the simulated car (its TLS context, its -20 session)
with one thing done wrong on purpose."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from iso15118.aio.session import wall_offset
from iso15118.aio.tls import Credentials, credentials_from_pki, iso20_client_context
from iso15118.aio.v2gtp_stream import V2GTPClient
from iso15118.evcc import Battery, EVCCConfig, EVCCSession


def car_context(pki_dir, profile: str = "iso20-secp521r1") -> ssl.SSLContext:
    """The real car's TLS context (TLS 1.3, the -20 suites and groups, its vehicle certificate)."""
    return iso20_client_context(credentials_from_pki(pki_dir, "evcc", profile))


def foreign_car_context(pki_dir, foreign_pki_dir) -> ssl.SSLContext:
    """A car that trusts the charger (the V2G root of ``pki_dir``) but presents a vehicle
    certificate from another OEM PKI, one the charger does not trust."""
    ours, theirs = credentials_from_pki(pki_dir, "evcc"), credentials_from_pki(foreign_pki_dir, "evcc")
    return iso20_client_context(Credentials(theirs.chain, theirs.key, ours.trust))


def tls12_context(pki_dir) -> ssl.SSLContext:
    """A car that speaks only TLS 1.2 (with a valid vehicle certificate)."""
    creds = credentials_from_pki(pki_dir, "evcc")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(creds.chain), str(creds.key))
    return ctx


def client_hello(pki_dir) -> bytes:
    """The first flight of a real car: a TLS 1.3 ClientHello with the -20 parameters."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = car_context(pki_dir).wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass  # expected: the server's answer is what it would wait for
    return outgoing.read()


async def handshake(ctx: ssl.SSLContext, host: str, port: int, timeout: float = 10.0) -> BaseException | None:
    """One TLS handshake; the exception the client saw, or None if it completed (then closed)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return e
    writer.close()
    return None


@dataclass
class Holder:
    """Connections held open and never finished: plain TCP that sends nothing, or a
    ClientHello that never answers the charger's flight."""

    writers: list = field(default_factory=list)

    async def open(self, host: str, port: int, n: int, first: bytes = b"") -> Holder:
        for _ in range(n):
            reader, writer = await asyncio.open_connection(host, port)
            if first:
                writer.write(first)
            self.writers.append((reader, writer))
        return self

    def closed_by_peer(self) -> int:
        """How many the charger has closed (EOF or reset seen)."""
        return sum(r.at_eof() or w.transport.is_closing() or r.exception() is not None
                   for r, w in self.writers)

    async def settle(self) -> None:
        """Read what arrived (the charger's flight, EOF, resets) so that ``closed_by_peer`` sees it."""
        async def drain(r):
            try:
                while await asyncio.wait_for(r.read(65536), 0.05):
                    pass
            except (asyncio.TimeoutError, ConnectionError):
                pass
        await asyncio.gather(*(drain(r) for r, _ in self.writers))

    def close(self) -> None:
        for _, w in self.writers:
            w.transport.abort()


@dataclass
class ScriptResult:
    received: list[tuple[str, str]]          # (response name, ResponseCode) in order
    closed_by_charger_after: float | None    # s the charger took to close the silent connection


async def car_until(pki_dir, host: str, port: int, *, stop_before: str, then: str, wait: float = 10.0,
                    evcc_id: str = "0200000000B2") -> ScriptResult:
    """A real car (valid certificate, correct messages) that stops before sending
    ``stop_before`` ('SessionSetupReq', 'AuthorizationSetupReq', ...) and then either goes
    silent without hanging up (``then='idle'``: how long until the charger closes?) or kills
    the connection with a reset (``then='drop'``)."""
    loop = asyncio.get_running_loop()
    client = await V2GTPClient.connect(host, port, ssl=car_context(pki_dir), standard="iso20")
    ev = EVCCSession(Battery(), EVCCConfig(evcc_id=evcc_id), clock_offset=wall_offset())
    received: list[tuple[str, str]] = []
    frames = ev.start(loop.time())
    while ev.trace[-1][2] != stop_before:
        for f in frames:
            await client.send(f)
        frame = await client.receive(wait)
        frames = ev.on_frame(frame, loop.time())
        _, _, name, msg = next(e for e in reversed(ev.trace) if e[1] == "rx")
        received.append((name, str(msg.ResponseCode)))
        if ev.closed:  # the charger refused it: the connection is the charger's to close
            break
    if then == "drop":
        client._writer.transport.abort()
        return ScriptResult(received, None)
    t0 = loop.time()
    try:
        while True:
            await client.receive(wait)
    except ConnectionError:
        return ScriptResult(received, loop.time() - t0)
    except TimeoutError:
        return ScriptResult(received, None)
    finally:
        client._writer.transport.abort()
