#!/usr/bin/env python3
"""What Plug & Charge's lifecycle costs a session (docs/pnc.md):

    python benchmarks/bench_pnc.py              # prints the table
    python benchmarks/bench_pnc.py --runs 50 --json

- installation: an ISO 15118-20 DC_BPT session of a car without a contract (CertificateInstallation,
  forwarded by the charger, then Authorization with the new contract) against the same session of
  a car that has one, both ends in one process (run_pair, no latency, no TLS), the CSMS's answer
  given at once from one computed before (the CSMS round trip and its work excluded): the time
  each end spends handling frames, and the difference — what the installation adds on the car
  (its signed request; the CPS chain, the signature over SignedInstallationData, ECDH + KDF +
  AES-GCM, the key check) and on the charger (the request to EXI for OCPP, the CSMS's response
  decoded, put under the session's header and encoded). The CSMS's own work (the pool: a key
  pair, a certificate, the encryption and the CPS signature) is reported beside it.
- OCSP check: the charger's work for one contract status (the OCSP request data with
  ``cryptography``'s OCSPRequestBuilder; the response parsed, matched and its signature verified)
  and the CSMS's (the pool's OCSP response, signed with secp521r1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iso15118 import pki  # noqa: E402
from iso15118.evcc import Battery, EVCCConfig, EVCCSession  # noqa: E402
from iso15118.pair import run_pair  # noqa: E402
from iso15118.pki.pool import ContractPool  # noqa: E402
from iso15118.secc import EVSEController, SECCConfig, SECCSession, SimulatedPowerStage  # noqa: E402
from iso15118.secc.controller import EVCertificateAnswer  # noqa: E402
from iso15118.secc.supervisor import LocalSupervisor  # noqa: E402
from ocpp_bridge.certificates import ocsp_request_data, read_ocsp_answer  # noqa: E402

PROFILE = "iso20-secp521r1"


class InstantCSMS(LocalSupervisor):
    """Forwards certificate requests; the CSMS's answer is ``answer`` (EXI), at once."""

    answer: bytes = b""

    def forwards_certificates(self, now: float) -> bool:
        return True

    def ev_certificate(self, request, now):
        return EVCertificateAnswer(exi=self.answer)


class Timed:
    """Wraps a session's frame entry points and sums the time spent in them, in total and by the
    message each call received (the session's observer names it)."""

    def __init__(self, session) -> None:
        self.total = 0.0
        self.by_name: dict[str, float] = {}
        self.current: str | None = None
        session.observer = self._observe
        for name in ("on_frame", "handle_timer", "start"):
            if hasattr(session, name):
                setattr(session, name, self._wrap(getattr(session, name)))

    def _observe(self, now, direction, name, message) -> None:
        if direction == "rx":
            self.current = name

    def _wrap(self, fn):
        def timed(*a):
            self.current = None
            t = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent = time.perf_counter() - t
                self.total += spent
                if self.current is not None:
                    self.by_name[self.current] = self.by_name.get(self.current, 0.0) + spent
        return timed


def one_session(pki_dir: Path, csms: InstantCSMS, *, install: bool) -> tuple[Timed, Timed, EVCCSession]:
    """The car's and the charger's time handling frames in one session."""
    epoch = time.time()
    stage = SimulatedPowerStage(kind="DC", isolation_time=0.0, voltage_ramp=1e6)
    secc = SECCSession(EVSEController(stage, csms), SECCConfig(contract_roots=pki.contract_roots(pki_dir, PROFILE)),
                       now=0.0, clock_offset=epoch, transport="tls1.3")
    oem, oem_key = pki.oem_credentials(pki_dir, PROFILE)
    chain, key = ((), None) if install else pki.contract_credentials(pki_dir, PROFILE)
    ev = EVCCSession(Battery(soc=60.0), EVCCConfig(service="DC_BPT", auth="pnc", loops=1, contract_chain=chain,
                                                   contract_key=key, oem_chain=oem, oem_key=oem_key,
                                                   v2g_roots=pki.v2g_roots(pki_dir, PROFILE)), clock_offset=epoch)
    car, charger = Timed(ev), Timed(secc)
    run_pair(secc, ev, latency=0.0)
    if not ev.result.ok or (install and ev.result.contract != "installed"):
        raise SystemExit(f"the session failed: {ev.result.reason}")
    return car, charger, ev


def csms_answer(pki_dir: Path, pool: ContractPool) -> tuple[bytes, float]:
    """One CertificateInstallationRes for the PKI's car (the pool's work timed)."""
    csms = InstantCSMS(setpoint_w=5000.0)
    captured = []

    def ask(request, now):
        captured.append(request)
        return EVCertificateAnswer(ongoing=True)
    csms.ev_certificate = ask
    try:
        one_session(pki_dir, csms, install=True)
    except SystemExit:
        pass  # the car gave up waiting; its request is what we wanted
    request = captured[0]
    t = time.perf_counter()
    ok, data, _ = pool.respond(request.exi, request.namespace, request.action, dt.datetime.now(dt.timezone.utc))
    return data, time.perf_counter() - t


def stats(values: list[float]) -> dict:
    values = sorted(values)
    return {"median_ms": statistics.median(values) * 1e3, "p90_ms": values[int(0.9 * (len(values) - 1))] * 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pki_dir = Path(tmp)
        pki.init_pki(pki_dir, profiles=[PROFILE])
        pool = ContractPool.from_pki(pki_dir, standards=("iso20",))
        answer, _ = csms_answer(pki_dir, pool)
        csms = InstantCSMS(setpoint_w=5000.0)
        csms.answer = answer
        rows = {"car_with": [], "car_without": [], "charger_with": [], "charger_without": [], "pool": [],
                "car_response": [], "charger_request": [], "ocsp_charger": [], "ocsp_csms": []}
        for _ in range(args.runs):
            car, charger, ev = one_session(pki_dir, csms, install=True)
            rows["car_with"].append(car.total)
            rows["charger_with"].append(charger.total)
            rows["car_response"].append(car.by_name["CertificateInstallationRes"])
            rows["charger_request"].append(charger.by_name["CertificateInstallationReq"])
            car, charger, _ = one_session(pki_dir, csms, install=False)
            rows["car_without"].append(car.total)
            rows["charger_without"].append(charger.total)
            rows["pool"].append(csms_answer(pki_dir, pool)[1])
        from cryptography import x509
        leaf, issuer = (x509.load_der_x509_certificate(d) for d in ev.result.contract_chain[:2])
        for _ in range(args.runs):
            now = dt.datetime.now(dt.timezone.utc)
            t = time.perf_counter()
            der = pool.ocsp_response(ocsp_request_data(leaf, issuer), now)
            rows["ocsp_csms"].append(time.perf_counter() - t)
            import base64
            t = time.perf_counter()
            data = ocsp_request_data(leaf, issuer)
            status, _ = read_ocsp_answer({"status": "Accepted", "ocspResult": base64.b64encode(der).decode()}, leaf,
                                         issuer, now.timestamp())
            rows["ocsp_charger"].append(time.perf_counter() - t)
            assert data and status.value == "Good"
    out = {k: stats(v) for k, v in rows.items()}
    out["car_added"] = {k: out["car_with"][k] - out["car_without"][k] for k in ("median_ms", "p90_ms")}
    out["charger_added"] = {k: out["charger_with"][k] - out["charger_without"][k] for k in ("median_ms", "p90_ms")}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    labels = [("car_added", "installation added to the car (median of with − without)"),
              ("car_response", "car: CertificateInstallationRes handled (checks, decrypt)"),
              ("charger_request", "charger: CertificateInstallationReq handled (forwarded)"),
              ("charger_added", "charger, median of with − without (noise: the above is it)"),
              ("car_with", "car, whole session with installation"), ("car_without", "car, whole session with a contract"),
              ("charger_with", "charger, whole session with installation"),
              ("charger_without", "charger, whole session with a contract"),
              ("pool", "CSMS: the pool's answer (excluded above)"),
              ("ocsp_charger", "OCSP check, charger: request data + response verified"),
              ("ocsp_csms", "OCSP check, CSMS: the pool's signed response")]
    print(f"{'measurement':<62} {'median':>9} {'p90':>9}")
    for key, label in labels:
        print(f"{label:<62} {out[key]['median_ms']:>7.2f}ms {out[key]['p90_ms']:>7.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
