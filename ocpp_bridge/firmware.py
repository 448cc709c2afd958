"""Secure firmware update (OCPP 2.1 part 2 L01), sans-I/O: UpdateFirmware, the download through
the station's ``FileTransfer``, the signature check against the manufacturer's root, the
installation through a pluggable ``Installer``, and every step as a FirmwareStatusNotification
with the request's requestId (durable, in order, through the outbox).

The steps, as OCPP 2.0.1 part 6 TC_L_01–TC_L_18 check them:
- the signing certificate must chain to a manufacturer root and be valid now, else
  InvalidCertificate (and a SecurityEventNotification InvalidFirmwareSigningCertificate); no
  certificate or no signature: Rejected (a secure update needs both, TC_L_18);
- DownloadScheduled until retrieveDateTime, Downloading, Downloaded (or DownloadFailed after the
  request's retries, retryInterval apart), then the signature over the image: SignatureVerified
  or InvalidSignature (and a SecurityEventNotification InvalidFirmwareSignature);
- InstallScheduled until installDateTime, and while a transaction runs (v2h cannot install during
  one: the installation waits for the EVSE to be idle; with
  ChargingStation.AllowNewSessionsPendingFirmwareUpdate false no new session starts meanwhile);
- Installing, then the installer's outcome: Installed, or InstallRebooting — the station restarts
  (BootNotification reason FirmwareUpdate, SecurityEventNotification FirmwareUpdated) and reports
  what the installer found after the boot (Installed, InstallationFailed,
  InstallVerificationFailed) — or a failure at once;
- one update at a time: a second UpdateFirmware during one is Rejected (v2h does not cancel a
  running update, TC_L_11); TriggerMessage FirmwareStatusNotification gives the running update's
  last status, Idle when none runs.

Signatures: ECDSA or RSA (PKCS #1 v1.5 or PSS) over SHA-256 of the image.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .times import parse_time
from .files import FileTransfer, supported

log = logging.getLogger(__name__)
TERMINAL = ("Installed", "DownloadFailed", "InvalidSignature", "InstallationFailed", "InstallVerificationFailed")
MAX_RETRIES = 10            # a CSMS's retries beyond this are cut (each waits retryInterval)
MAX_RETRY_INTERVAL = 86400  # s


class Installer(Protocol):
    """What puts a verified image on the station: ``install`` gives "Installed",
    "RebootRequired", "InstallationFailed" or "InstallVerificationFailed"; after the restart
    it asked for, ``after_reboot`` gives the final outcome."""

    def install(self, image: bytes, request_id: int, now: float) -> str: ...
    def after_reboot(self, request_id: int) -> str: ...


class StagingInstaller:
    """`v2h charger`'s installer: the verified image goes into ``directory``
    (``firmware-<requestId>.bin``) for the platform's updater, and the station restarts; after
    the restart the image is there (Installed) or not (InstallationFailed)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def _path(self, request_id: int) -> Path:
        return self.directory / f"firmware-{request_id}.bin"

    def install(self, image: bytes, request_id: int, now: float) -> str:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = self._path(request_id).with_suffix(".part")
            tmp.write_bytes(image)
            tmp.replace(self._path(request_id))
        except OSError as e:
            log.error("firmware %d not staged: %s", request_id, e)
            return "InstallationFailed"
        return "RebootRequired"

    def after_reboot(self, request_id: int) -> str:
        return "Installed" if self._path(request_id).is_file() else "InstallationFailed"


def load_roots(pem: bytes) -> list[x509.Certificate]:
    """Manufacturer root certificates from PEM (ValueError if there is none)."""
    roots = x509.load_pem_x509_certificates(pem)
    if not roots:
        raise ValueError("no certificate in the manufacturer roots")
    return roots


def check_certificate(pem: str, roots: list[x509.Certificate], now: float) -> tuple[x509.Certificate | None, str | None]:
    """The signing certificate if it is valid now and issued by one of ``roots`` (or is one)."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as e:
        return None, f"not a PEM certificate: {e}"[:200]
    if not cert.not_valid_before_utc.timestamp() <= now <= cert.not_valid_after_utc.timestamp():
        return None, "not valid now"
    for root in roots:
        if cert == root:
            return cert, None
        if cert.issuer != root.subject or not root.not_valid_before_utc.timestamp() <= now \
                <= root.not_valid_after_utc.timestamp():
            continue
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return cert, None
    return None, "not issued by the manufacturer's root"


def check_signature(cert: x509.Certificate, signature_b64: str, image: bytes) -> bool:
    """ECDSA or RSA (PKCS #1 v1.5 or PSS) over SHA-256 of ``image``."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, image, ec.ECDSA(hashes.SHA256()))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            for pad in (padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO)):
                try:
                    key.verify(signature, image, pad, hashes.SHA256())
                    return True
                except InvalidSignature:
                    continue
    except InvalidSignature:
        return False
    return False


@dataclass
class _Job:
    request_id: int
    location: str
    retrieve_at: float
    install_at: float | None
    certificate: x509.Certificate
    signature: str
    retries: int
    retry_interval: float
    status: str = "Accepted"
    image: bytes | None = None
    attempts: int = 0
    next_step: float | None = None    # the download (scheduled or a retry), or the installation
    waiting: str | None = None        # "download" | "install"


class FirmwareManager:
    """UpdateFirmware for one station core and its bridge (reboots, the EVSE's idleness).
    ``installer``: where verified images go; ``roots``: the manufacturer's certificates."""

    def __init__(self, core, bridge, transfer: FileTransfer | None, installer: Installer | None,
                 roots: list[x509.Certificate]):
        self.core, self.bridge = core, bridge
        self.transfer, self.installer, self.roots = transfer, installer, roots
        self.job: _Job | None = None
        core.handlers["UpdateFirmware"] = self._update
        core.triggers["FirmwareStatusNotification"] = self._trigger
        core.timers.append(self)
        rebooted = core.store.get("firmware_rebooting")
        if rebooted is not None:  # installed before the restart: report the outcome once registered
            core.on_registered.append(lambda: self._after_reboot(rebooted))

    # --- UpdateFirmware ----------------------------------------------------------------------------
    def _update(self, payload: dict) -> dict:
        fw, now = payload["firmware"], self.core.now
        request_id = payload["requestId"]
        if self.job is not None and self.job.status not in TERMINAL:
            return _refused("Rejected", "an update is running (v2h does not cancel one)")
        if "signingCertificate" not in fw or "signature" not in fw:
            return _refused("Rejected", "a secure firmware update needs the signing certificate and the signature")
        if self.transfer is None or self.installer is None or not self.roots:
            return _refused("Rejected", "this station has no firmware installer or manufacturer root")
        if (why := supported(fw["location"])) is not None:
            return _refused("Rejected", f"location: {why}")
        retrieve_at = parse_time(fw["retrieveDateTime"])
        install_at = parse_time(fw["installDateTime"]) if "installDateTime" in fw else None
        if retrieve_at is None or ("installDateTime" in fw and install_at is None):
            return _refused("Rejected", "retrieveDateTime / installDateTime is not a dateTime")
        cert, why = check_certificate(fw["signingCertificate"], self.roots, now)
        if cert is None:
            self.core.after_response(lambda: self.core.security_event("InvalidFirmwareSigningCertificate", why,
                                                                      now=self.core.now))
            return _refused("InvalidCertificate", why)
        retries = min(max(payload.get("retries", 0), 0), MAX_RETRIES)
        interval = min(max(payload.get("retryInterval", 60), 0), MAX_RETRY_INTERVAL)
        self.job = _Job(request_id, fw["location"], retrieve_at, install_at, cert, fw["signature"], retries, interval)
        self.core.after_response(self._start)
        return {"status": "Accepted"}

    def _start(self) -> None:
        job, now = self.job, self.core.now
        if job.retrieve_at > now:
            self._notify("DownloadScheduled")
            job.next_step, job.waiting = job.retrieve_at, "download"
            self.core.changed()
        else:
            self._download()

    # --- the steps ------------------------------------------------------------------------------------
    def _download(self) -> None:
        job = self.job
        job.next_step = job.waiting = None
        job.attempts += 1
        if job.status != "Downloading":
            self._notify("Downloading")
        self.transfer.download(job.location, lambda data, why, now, j=job: self._downloaded(j, data, why, now))

    def _downloaded(self, job: _Job, data: bytes | None, why: str | None, now: float) -> None:
        if job is not self.job:
            return
        self.core.now = max(self.core.now, now)
        if data is None:
            log.warning("firmware %d: download %d failed: %s", job.request_id, job.attempts, why)
            if job.attempts <= job.retries:
                job.next_step, job.waiting = now + job.retry_interval, "download"
                self.core.changed()
                return
            self._notify("DownloadFailed")
            return
        self._notify("Downloaded")
        if not check_signature(job.certificate, job.signature, data):
            self._notify("InvalidSignature")
            self.core.security_event("InvalidFirmwareSignature", f"requestId {job.request_id}", now=now)
            return
        job.image = data
        self._notify("SignatureVerified")
        self._install_when_due()

    def _install_when_due(self) -> None:
        job, now, bridge = self.job, self.core.now, self.bridge
        if job.install_at is not None and job.install_at > now:
            if job.status != "InstallScheduled":
                self._notify("InstallScheduled")
            job.next_step, job.waiting = job.install_at, "install"
            self.core.changed()
            return
        if bridge.tx is not None:  # no installation during a transaction: after it
            if job.status != "InstallScheduled":
                self._notify("InstallScheduled")
            bridge.firmware_pending = True
            bridge._update_status(now)
            bridge.on_idle.append(self._install_when_due)
            return
        self._install()

    def _install(self) -> None:
        job, now = self.job, self.core.now
        job.next_step = job.waiting = None
        self._notify("Installing")
        outcome = self.installer.install(job.image, job.request_id, now)
        job.image = None
        if outcome == "RebootRequired":
            self._notify("InstallRebooting")
            self.core.store.set("firmware_rebooting", job.request_id)
            self.core.store.set("boot_reason", "FirmwareUpdate")
            self.bridge.firmware_pending = False
            if self.bridge.on_reset is not None:
                self.bridge.on_reset()
            return
        self.bridge.firmware_pending = False
        self.bridge._update_status(now)
        self._notify(outcome if outcome in TERMINAL else "InstallationFailed")

    def _after_reboot(self, request_id: int) -> None:
        self.core.store.set("firmware_rebooting", None)
        outcome = self.installer.after_reboot(request_id) if self.installer is not None else "InstallationFailed"
        self._notify(outcome if outcome in TERMINAL else "InstallationFailed", request_id=request_id)

    # --- the timers -----------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        return self.job.next_step if self.job is not None else None

    def handle_timer(self, now: float) -> None:
        job = self.job
        if job is None or job.next_step is None or now < job.next_step:
            return
        if job.waiting == "download":
            self._download()
        elif job.waiting == "install":
            job.next_step = job.waiting = None
            job.install_at = None
            self._install_when_due()

    # --- notifications --------------------------------------------------------------------------------
    def _notify(self, status: str, *, request_id: int | None = None) -> None:
        if self.job is not None and request_id is None:
            self.job.status = status
            request_id = self.job.request_id
        self.core.enqueue("FirmwareStatusNotification", {"status": status, "requestId": request_id},
                          now=self.core.now)

    def _trigger(self, evse: dict | None, now: float) -> str:
        job = self.job
        running = job is not None and job.status not in TERMINAL and job.status != "Accepted"
        payload = {"status": job.status, "requestId": job.request_id} if running else {"status": "Idle"}
        self.core.after_response(lambda: self.core.request("FirmwareStatusNotification", payload,
                                                           now=self.core.now, while_pending=True))
        return "Accepted"


def _refused(status: str, why: str) -> dict:
    return {"status": status, "statusInfo": {"reasonCode": "InvalidCertificate" if status == "InvalidCertificate"
                                             else "UnsupportedRequest", "additionalInfo": why[:512]}}

