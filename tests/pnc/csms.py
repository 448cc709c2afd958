"""The tests' CSMS (``tests.ocpp.csms``, on the ``ocpp`` package) with a contract-certificate pool
behind it: it answers Get15118EVCertificate with the pool's response (the EXI in base64) and
GetCertificateStatus with the pool's OCSP response, and signs the charger's CSRs
(SignCertificate, then CertificateSigned) with the PKI's CPO Sub-CA 2 when asked to."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field

from ocpp.routing import after, on
from ocpp.v21 import call_result

from iso15118.pki.pool import ContractPool, PoolRequestError
from iso15118.pki.signer import CsrSigner

from ..ocpp.csms import CSMS, _StationHandle


@dataclass
class PoolCSMS(CSMS):
    pool: ContractPool | None = None
    ev_certificate_delay: float = 0.0          # s before Get15118EVCertificate is answered
    csrs: list = field(default_factory=list)   # (station, certificateType, CSR PEM) of each SignCertificate
    signer: CsrSigner | None = None            # signs them (then CertificateSigned); None: Rejected
    signed: list = field(default_factory=list)  # (certificateType, chain PEM, the station's answer)
    tasks: list = field(default_factory=list)

    def _handle(self, station: str, ws) -> _PoolHandle:
        return _PoolHandle(station, ws, self)


class _PoolHandle(_StationHandle):
    @on("Get15118EVCertificate")
    async def on_ev_certificate(self, iso15118_schema_version, action, exi_request, **_):
        await asyncio.sleep(self.csms.ev_certificate_delay)
        now = dt.datetime.now(dt.timezone.utc)
        try:
            ok, data, _why = self.csms.pool.respond(base64.b64decode(exi_request, validate=True),
                                                    iso15118_schema_version, action, now)
        except (binascii.Error, PoolRequestError) as e:
            return call_result.Get15118EVCertificate(status="Failed", exi_response="",
                                                     status_info={"reason_code": "InvalidRequest",
                                                                  "additional_info": str(e)[:1024]})
        return call_result.Get15118EVCertificate(status="Accepted" if ok else "Failed",
                                                 exi_response=base64.b64encode(data).decode())

    @on("GetCertificateStatus")
    def on_certificate_status(self, ocsp_request_data, **_):
        request = {"hashAlgorithm": ocsp_request_data["hash_algorithm"],
                   "issuerNameHash": ocsp_request_data["issuer_name_hash"],
                   "issuerKeyHash": ocsp_request_data["issuer_key_hash"],
                   "serialNumber": ocsp_request_data["serial_number"]}
        der = self.csms.pool.ocsp_response(request, dt.datetime.now(dt.timezone.utc))
        return call_result.GetCertificateStatus(status="Accepted", ocsp_result=base64.b64encode(der).decode())

    @on("SignCertificate")
    def on_sign_certificate(self, csr, certificate_type="ChargingStationCertificate", **_):
        self.csms.csrs.append((self.id, certificate_type, csr))
        return call_result.SignCertificate(status="Accepted" if self.csms.signer is not None else "Rejected")

    @after("SignCertificate")
    def after_sign_certificate(self, csr, certificate_type="ChargingStationCertificate", **_):
        if self.csms.signer is None:
            return
        chain = self.csms.signer.sign(certificate_type, csr, dt.datetime.now(dt.timezone.utc))

        async def send() -> None:  # a task: the answer comes through this handle's own read loop
            answer = await self.csms.send_call(self.id, "CertificateSigned",
                                               {"certificateChain": chain, "certificateType": certificate_type})
            self.csms.signed.append((certificate_type, chain, answer))
            async with self.csms.changed:
                self.csms.changed.notify_all()
        self.csms.tasks.append(asyncio.ensure_future(send()))
