"""Plug & Charge certificates over OCPP 2.1, on the station's side: a car's CertificateInstallation
(and -2 CertificateUpdate) forwarded to the CSMS (Get15118EVCertificate, the car's EXI request in
base64; M01/M02), sans-I/O like the core it sits on.

``PlugAndChargeSupervision`` is the part of the SECC's supervisor (``OCPPBridge``) that answers
the SECC's certificate questions: whether requests are forwarded now (online, and
ISO15118Ctrlr.ContractCertificateInstallationEnabled true), and the CSMS's answer to one, asked
once per request (the car repeats it unaltered while it waits, EVSEProcessing=Ongoing) and
``ongoing`` until it comes. No answer (offline, CALLERROR, timeout) is ``None``: the SECC then
answers from its own provisioning service if it has one.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from iso15118.secc.controller import EVCertificateAnswer, EVCertificateRequest

from .device_model import RW, Variable

log = logging.getLogger(__name__)
ISO20_NS = "urn:iso:std:iso:15118:-20:CommonMessages"
PENDING_KEPT = 8   # car requests remembered (their answers), the oldest forgotten first


@dataclass
class _Asked:
    done: bool = False
    answer: dict | None = None


class PlugAndChargeSupervision:
    """Mixed into the OCPP bridge (it has ``station``, the core, and ``wall(now)``)."""

    def _init_plug_and_charge(self) -> None:
        dm = self.station.device_model
        dm.add(Variable("ISO15118Ctrlr", "ContractCertificateInstallationEnabled", "boolean", RW, "true"))
        self._ev_cert_asked: dict[bytes, _Asked] = {}

    def forwards_certificates(self, now: float) -> bool:
        """A CSMS to ask: online and ContractCertificateInstallationEnabled."""
        return self.station.online and \
            self.station.device_model.value("ISO15118Ctrlr", "ContractCertificateInstallationEnabled") == "true"

    def ev_certificate(self, request: EVCertificateRequest, now: float) -> EVCertificateAnswer | None:
        """Get15118EVCertificate for ``request`` (once per request key); ongoing until answered;
        the exiResponse (Accepted or Failed: it holds the response code for the car), or None
        when the CSMS gave none (offline, CALLERROR, timeout, a response that is no base64)."""
        asked = self._ev_cert_asked.get(request.key)
        if asked is None:
            asked = self._ev_cert_asked[request.key] = _Asked()
            while len(self._ev_cert_asked) > PENDING_KEPT:
                self._ev_cert_asked.pop(next(iter(self._ev_cert_asked)))
            payload: dict = {"iso15118SchemaVersion": request.namespace, "action": request.action,
                             "exiRequest": base64.b64encode(request.exi).decode()}
            if request.namespace == ISO20_NS:
                payload["maximumContractCertificateChains"] = 1

            def answered(result: dict | None, asked: _Asked = asked) -> None:
                asked.done, asked.answer = True, result
            self.station.request("Get15118EVCertificate", payload, now=self.wall(now), on_answer=answered)
        if not asked.done:
            return EVCertificateAnswer(ongoing=True)
        self._ev_cert_asked.pop(request.key, None)
        if asked.answer is None:
            return None
        try:
            data = base64.b64decode(asked.answer["exiResponse"], validate=True)
        except (binascii.Error, ValueError):
            log.warning("Get15118EVCertificate: the CSMS's exiResponse is not base64")
            return None
        if asked.answer["status"] != "Accepted":
            log.info("Get15118EVCertificate: the CSMS says %s (%s)", asked.answer["status"],
                     asked.answer.get("statusInfo", {}).get("reasonCode", "no reason given"))
        return EVCertificateAnswer(exi=data or None)
