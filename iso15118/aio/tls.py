"""TLS contexts for the car ↔ charger link (the TLS profiles of ISO 15118-20 and ISO 15118-2).

ISO 15118-20: TLS 1.3 only, mutual authentication, cipher suites TLS_AES_256_GCM_SHA384 then
TLS_CHACHA20_POLY1305_SHA256, groups secp521r1 and x448, signature algorithms
ecdsa_secp521r1_sha512 and ed448. ISO 15118-2: TLS 1.2, server authentication only,
ECDHE-ECDSA-AES128-SHA256 on secp256r1.

Python's ``ssl`` has no call for TLS 1.3 cipher suites, groups or signature algorithms, so these
are set on the context's OpenSSL ``SSL_CTX`` through the same libssl that ``ssl`` uses (ctypes).
If that is impossible the -20 contexts are not built at all (fail closed), and every handshake is
checked afterwards (version, cipher suite) by ``check_negotiated``.
"""

from __future__ import annotations

import ctypes
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

ISO20_CIPHERSUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
ISO20_GROUPS = "secp521r1:X448"
ISO20_SIGALGS = "ecdsa_secp521r1_sha512:ed448"
ISO2_CIPHERS = "ECDHE-ECDSA-AES128-SHA256"

_SSL_CTRL_SET_GROUPS_LIST = 92
_SSL_CTRL_SET_SIGALGS_LIST = 98
_SSL_CTRL_SET_CLIENT_SIGALGS_LIST = 102
_SSL_CTRL_GET_NEGOTIATED_GROUP = 134


class TLSConfigError(Exception):
    """The TLS context cannot be configured as the standard requires."""


class TLSPolicyError(Exception):
    """A completed handshake does not meet the standard (version, cipher suite, peer).
    ``kind``: 'version', 'cipher' or 'certificate' (the peer's certificate policy)."""

    def __init__(self, message: str, kind: str = "certificate"):
        super().__init__(message)
        self.kind = kind


def _libssl():
    import _ssl

    lib = ctypes.CDLL(_ssl.__file__)
    lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_ctrl.restype = ctypes.c_long
    lib.OBJ_nid2sn.argtypes = [ctypes.c_int]
    lib.OBJ_nid2sn.restype = ctypes.c_char_p
    return lib


def _ssl_ctx_ptr(ctx: ssl.SSLContext) -> int:
    # CPython's PySSLContext starts with PyObject_HEAD followed by the SSL_CTX pointer
    return ctypes.c_void_p.from_address(id(ctx) + 2 * ctypes.sizeof(ctypes.c_void_p)).value


def _restrict_iso20(ctx: ssl.SSLContext) -> None:
    try:
        lib = _libssl()
        p = _ssl_ctx_ptr(ctx)
        ok = (lib.SSL_CTX_set_ciphersuites(p, ":".join(ISO20_CIPHERSUITES).encode()) == 1
              and lib.SSL_CTX_ctrl(p, _SSL_CTRL_SET_GROUPS_LIST, 0, ctypes.c_char_p(ISO20_GROUPS.encode())) == 1
              and lib.SSL_CTX_ctrl(p, _SSL_CTRL_SET_SIGALGS_LIST, 0, ctypes.c_char_p(ISO20_SIGALGS.encode())) == 1
              and lib.SSL_CTX_ctrl(p, _SSL_CTRL_SET_CLIENT_SIGALGS_LIST, 0,
                                   ctypes.c_char_p(ISO20_SIGALGS.encode())) == 1)
    except (OSError, AttributeError, ValueError) as e:
        raise TLSConfigError(f"cannot reach OpenSSL to restrict TLS 1.3 parameters: {e}") from None
    if not ok:
        raise TLSConfigError("OpenSSL refused the ISO 15118-20 cipher suites, groups or signature algorithms")
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}
    if names != set(ISO20_CIPHERSUITES):
        raise TLSConfigError(f"TLS 1.3 cipher suites are {sorted(names)}, not {ISO20_CIPHERSUITES}")


@dataclass(frozen=True)
class Credentials:
    """Our certificate chain (leaf first, sub-CAs after) and key, and the roots we trust for
    the peer."""

    chain: Path | None
    key: Path | None
    trust: tuple[Path, ...]


def iso20_server_context(creds: Credentials) -> ssl.SSLContext:
    """SECC side of ISO 15118-20: TLS 1.3 only, the EV must present a certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _restrict_iso20(ctx)
    ctx.load_cert_chain(str(creds.chain), str(creds.key))
    for t in creds.trust:
        ctx.load_verify_locations(cafile=str(t))
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def iso20_client_context(creds: Credentials) -> ssl.SSLContext:
    """EVCC side of ISO 15118-20: TLS 1.3 only, presents the vehicle certificate, verifies the
    SECC against the V2G root (no host names in V2G: the policy check looks at the leaf)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _restrict_iso20(ctx)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    for t in creds.trust:
        ctx.load_verify_locations(cafile=str(t))
    if creds.chain is not None:
        ctx.load_cert_chain(str(creds.chain), str(creds.key))
    return ctx


def iso2_server_context(creds: Credentials) -> ssl.SSLContext:
    """SECC side of ISO 15118-2: TLS 1.2, server authentication only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ISO2_CIPHERS)
    ctx.set_ecdh_curve("prime256v1")
    ctx.load_cert_chain(str(creds.chain), str(creds.key))
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def iso2_client_context(creds: Credentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ISO2_CIPHERS)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    for t in creds.trust:
        ctx.load_verify_locations(cafile=str(t))
    return ctx


def enable_keylog(ctx: ssl.SSLContext, path: str | Path) -> None:
    """Append the TLS secrets of every connection of ``ctx`` to ``path`` in the NSS key log
    format (SSLKEYLOGFILE) that Wireshark and ``v2h trace decode --keylog`` read. Anyone with
    the file decrypts the captured traffic: it is created readable by its owner only, and this
    is for test benches, never for a charger in service."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.close(fd)
    ctx.keylog_filename = str(path)


def negotiated_group(ssl_object) -> str | None:
    """The key-exchange group of a finished handshake (OpenSSL short name), if known."""
    try:
        lib = _libssl()
        sslsock = ssl_object._sslobj  # the _ssl._SSLSocket; its SSL* follows PyObject_HEAD and Socket
        ptr = ctypes.c_void_p.from_address(id(sslsock) + 3 * ctypes.sizeof(ctypes.c_void_p)).value
        nid = lib.SSL_ctrl(ptr, _SSL_CTRL_GET_NEGOTIATED_GROUP, 0, None)
        name = lib.OBJ_nid2sn(int(nid)) if nid > 0 else None
        return name.decode() if name else None
    except (OSError, AttributeError, ValueError):
        return None


def check_negotiated(ssl_object, standard: str) -> None:
    """Raise TLSPolicyError unless the handshake matches the standard."""
    version = ssl_object.version()
    cipher = (ssl_object.cipher() or ("?",))[0]
    if standard == "iso20":
        if version != "TLSv1.3":
            raise TLSPolicyError(f"ISO 15118-20 requires TLS 1.3, got {version}", "version")
        if cipher not in ISO20_CIPHERSUITES:
            raise TLSPolicyError(f"cipher suite {cipher} is not allowed for ISO 15118-20", "cipher")
    elif standard == "iso2":
        if version != "TLSv1.2":
            raise TLSPolicyError(f"ISO 15118-2 uses TLS 1.2, got {version}", "version")
        if cipher != ISO2_CIPHERS:
            raise TLSPolicyError(f"cipher suite {cipher} is not allowed for ISO 15118-2", "cipher")
    else:
        raise ValueError(f"unknown standard {standard!r}")


def credentials_from_pki(pki_dir: str | Path, role: str, profile: str = "iso20-secp521r1") -> Credentials:
    """Credentials from a directory made by ``v2h pki init``: role 'secc' or 'evcc'."""
    base = Path(pki_dir) / profile
    if not base.is_dir():
        raise ValueError(f"{base} does not exist (create the test PKI with: v2h pki init {pki_dir})")
    if role == "secc":
        trust = (base / "oem_root_ca.pem",) if profile.startswith("iso20") else ()
        return Credentials(base / "secc_chain.pem", base / "secc_leaf.key.pem", trust)
    if role == "evcc":
        if profile.startswith("iso20"):
            return Credentials(base / "vehicle_chain.pem", base / "vehicle_leaf.key.pem", (base / "v2g_root_ca.pem",))
        return Credentials(None, None, (base / "v2g_root_ca.pem",))
    raise ValueError(f"unknown role {role!r}")
