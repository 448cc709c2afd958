"""`v2h charger`'s own certificates over OCPP (``ocpp_bridge.certificates.StationCertificates``)
wired to the running charger: it starts with the certificates of `--pki` (and `--csms-ca`,
`--station-cert`, `--firmware-roots`), keeps what the CSMS installs in the charger's database,
and applies it without a restart — a new SECC certificate to the TLS context of the next
handshake, the MO roots to Plug & Charge, the manufacturer roots to firmware checks, a new
station certificate and CSMS roots to the next OCPP connection. The files it writes live in
``DB.certs/`` beside the database."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ocpp_bridge.certificates import StationCertificates

log = logging.getLogger("ocpp_bridge.certificates")
# own certificate type → (the -20/-2 profile of --pki it starts from, the SECC TLS context it goes to)
SECC_KINDS = {"V2G20Certificate": "iso20", "V2GCertificate": "iso2"}


CSMS_ROOTS_DELETED = "certificates.csms_roots_deleted"  # in the station's store: survives a restart


class ChargerCertificates:
    """Built before the SECC listens (``attach``), told its server once it does (``serving``)."""

    def __init__(self, station, bridge, secc_config, *, pki: str | None, pki_profile: str, db: str,
                 csms_ca: str | None, firmware_roots: list) -> None:
        self.station, self.bridge, self.secc_config = station, bridge, secc_config
        self.core = station.core
        self.dir = Path(f"{db}.certs")
        self.server = None
        self.certs = StationCertificates(self.core, on_installed=self._installed, on_roots=self._roots)
        self.certs.seed(roots=_starting_roots(pki, pki_profile, csms_ca, firmware_roots),
                        own=_starting_own(pki, pki_profile, self.core.config))
        for kind in ("MORootCertificate", "ManufacturerRootCertificate", "CSMSRootCertificate"):
            if self.certs.roots(kind):  # what was installed before a restart is what counts
                self._roots(kind, [r["pem"] for r in self.certs.roots(kind)])
        if not self.certs.roots("CSMSRootCertificate") and self.core.store.get(CSMS_ROOTS_DELETED):
            self.core.config.csms_ca = ""  # the CSMS deleted every root before the restart: none is trusted
        own = self.certs.own("ChargingStationCertificate")
        if own is not None and self.core.config.client_cert:
            self._installed("ChargingStationCertificate", own["chain"], own["key"])

    def serving(self, server) -> None:
        """The SECC listens: its TLS contexts take the installed SECC certificates."""
        self.server = server
        for kind in SECC_KINDS:
            own = self.certs.own(kind)
            if own is not None:  # what it starts with: said only when it changes (CertificateSigned)
                self._installed(kind, own["chain"], own["key"], announce=False)

    def _write(self, name: str, text: str) -> Path:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        return path

    def _installed(self, kind: str, chain_pem: str, key_pem: str, announce: bool = True) -> None:
        chain = self._write(f"{kind}.pem", chain_pem)
        key = self._write(f"{kind}.key.pem", key_pem)
        if kind in SECC_KINDS:
            ctx = self.server.contexts.get(SECC_KINDS[kind]) if self.server is not None else None
            if ctx is not None:
                ctx.load_cert_chain(str(chain), str(key))  # the next TLS handshake presents it
                (log.info if announce else log.debug)("the SECC's %s certificate is now %s", SECC_KINDS[kind],
                                                      _subject(chain_pem))
        elif kind == "ChargingStationCertificate":
            self.core.config.client_cert, self.core.config.client_key = str(chain), str(key)

    def _roots(self, kind: str, pems: list[str]) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        certs = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
        if kind == "MORootCertificate":
            self.secc_config.contract_roots = tuple(c.public_bytes(serialization.Encoding.DER) for c in certs)
        elif kind == "ManufacturerRootCertificate":
            self.bridge.firmware.roots[:] = certs
        elif kind == "CSMSRootCertificate":  # the next connection trusts these, and nothing once none is left
            self.core.config.csms_ca = str(self._write("csms_roots.pem", "".join(pems))) if pems else ""
            self.core.store.set(CSMS_ROOTS_DELETED, not pems)


def _subject(chain_pem: str) -> str:
    from cryptography import x509

    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    return f"{leaf.subject.rfc4514_string()} (serial {leaf.serial_number:x}, until {leaf.not_valid_after_utc:%Y-%m-%d})"


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _starting_roots(pki: str | None, profile: str, csms_ca: str | None, firmware_roots: list) -> dict[str, list[str]]:
    from cryptography.hazmat.primitives import serialization

    roots: dict[str, list[str]] = {"V2GRootCertificate": [], "MORootCertificate": [], "CSMSRootCertificate": [],
                                   "ManufacturerRootCertificate": []}
    if pki is not None:
        for prof in (profile, "iso2-secp256r1"):
            for kind, name in (("V2GRootCertificate", "v2g_root_ca.pem"), ("MORootCertificate", "mo_root_ca.pem")):
                text = _read(Path(pki) / prof / name)
                if text is not None:
                    roots[kind].append(text)
    ca = csms_ca or (str(Path(pki) / "ocpp" / "csms_root_ca.pem") if pki is not None else None)
    if ca is not None and _read(Path(ca)) is not None:
        from cryptography import x509
        roots["CSMSRootCertificate"] = [c.public_bytes(serialization.Encoding.PEM).decode()
                                        for c in x509.load_pem_x509_certificates(Path(ca).read_bytes())]
    roots["ManufacturerRootCertificate"] = [c.public_bytes(serialization.Encoding.PEM).decode() for c in firmware_roots]
    return {k: v for k, v in roots.items() if v}


def _starting_own(pki: str | None, profile: str, config) -> dict[str, tuple[str, str]]:
    own = {}
    if pki is not None:
        for kind, prof in (("V2G20Certificate", profile), ("V2GCertificate", "iso2-secp256r1")):
            chain, key = _read(Path(pki) / prof / "secc_chain.pem"), _read(Path(pki) / prof / "secc_leaf.key.pem")
            if chain and key:
                own[kind] = (chain, key)
    if config.client_cert and config.client_key:
        chain, key = _read(Path(config.client_cert)), _read(Path(config.client_key))
        if chain and key:
            own["ChargingStationCertificate"] = (chain, key)
    return own
