"""Building charger/car pairs for the session tests."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from iso15118 import pki
from iso15118.evcc import Battery, EVCCConfig, EVCCSession
from iso15118.pair import run_pair
from iso15118.secc import EVSEController, SECCConfig, SECCSession, SimulatedPowerStage, simulated_charger
from iso15118.secc.controller import EVCertificateAnswer
from iso15118.secc.supervisor import LocalSupervisor

EPOCH = float(int(time.time()))  # the wall clock at simulated time 0 (the test PKI is valid now)


@dataclass
class Pair:
    charger: EVSEController  # the power stage and its supervisor
    secc: SECCSession
    ev: EVCCSession
    battery: Battery
    secc_log: list  # every message each side handled (the sessions' own traces are bounded)
    ev_log: list

    def run(self, **kw):
        return run_pair(self.secc, self.ev, **kw)

    @property
    def stage(self) -> SimulatedPowerStage:
        return self.charger.stage

    @property
    def supervisor(self):
        return self.charger.supervisor


def make_pair(service: str = "DC_BPT", mode: str = "dynamic", auth: str = "eim", *, setpoint: float = -5000.0,
              pki_dir=None, profile: str = "iso20-secp521r1", battery: Battery | None = None,
              charger: EVSEController | None = None, secc_config: SECCConfig | None = None,
              resume_store: dict | None = None, now: float = 0.0, transport: str | None = None, **ev_kw) -> Pair:
    """A charger and a car in memory. ``transport`` (the charger's view of the connection: 'tcp',
    'tls1.2', 'tls1.3'; default TLS of no given version) decides which protocols the charger may
    choose; ``protocols`` in ``ev_kw`` what the car offers."""
    charger = charger or simulated_charger(kind=service[:2], setpoint_w=setpoint)
    roots = pki.contract_roots(pki_dir, profile) if pki_dir is not None else ()
    cfg = secc_config or SECCConfig(contract_roots=roots)
    secc = SECCSession(charger, cfg, now=now, clock_offset=EPOCH, resume_store=resume_store, transport=transport)
    given = ev_kw.pop("contract_chain", None), ev_kw.pop("contract_key", None)
    chain, key = given if given[0] is not None or pki_dir is None or auth != "pnc" else \
        pki.contract_credentials(pki_dir, profile)
    chain = chain or ()
    battery = battery or Battery(soc=60.0)
    ev = EVCCSession(battery, EVCCConfig(service=service, control_mode=mode, auth=auth, contract_chain=chain,
                                         contract_key=key, **ev_kw), clock_offset=EPOCH)
    secc_log: list = []
    ev_log: list = []
    secc.observer = lambda *entry: secc_log.append(entry)
    ev.observer = lambda *entry: ev_log.append(entry)
    return Pair(charger, secc, ev, battery, secc_log, ev_log)


def names(log: list, direction: str) -> list[str]:
    return [n for _, d, n, _ in log if d == direction]


@dataclass
class ForwardingSupervisor(LocalSupervisor):
    """A supervisor whose CSMS answers a certificate request after ``delay`` s, from ``pool``."""

    pool: object = None          # an iso15118.pki.pool.ContractPool
    delay: float = 0.5
    asked: list = field(default_factory=list)  # (request key, first asked)

    def forwards_certificates(self, now: float) -> bool:
        return True

    def ev_certificate(self, request, now):
        if not any(k == request.key for k, _ in self.asked):
            self.asked.append((request.key, now))
        first = next(t for k, t in self.asked if k == request.key)
        if now - first < self.delay:
            return EVCertificateAnswer(ongoing=True)
        _, data, _ = self.pool.respond(request.exi, request.namespace, request.action,
                                       dt.datetime.fromtimestamp(now + EPOCH, dt.timezone.utc))
        return EVCertificateAnswer(exi=data)
