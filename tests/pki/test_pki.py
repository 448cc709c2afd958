"""The test PKI, `v2h pki`, and chain validation that fails closed (a corpus of broken chains)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.x509.oid import NameOID

from iso15118 import pki
from iso15118.pki import ChainError, validate_chain

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="session")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    pki.init_pki(d)
    return d


def read(pki_dir, profile, name):
    return (pki_dir / profile / f"{name}.pem").read_bytes()


@pytest.mark.parametrize("profile", list(pki.PROFILES))
@pytest.mark.parametrize("chain,root,purpose", [
    ("secc_chain", "v2g_root_ca", "secc"), ("contract_chain", "mo_root_ca", "contract"),
    ("oem_prov_chain", "oem_root_ca", None)])
def test_generated_chains_validate(pki_dir, profile, chain, root, purpose):
    path = validate_chain(read(pki_dir, profile, chain), read(pki_dir, profile, root), purpose=purpose,
                          profile=pki.PROFILES[profile].standard)
    assert len(path) == 4
    leaf = path[0]
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    if purpose == "secc":
        assert leaf.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)[0].value == "CPO"


def test_profiles_have_the_right_keys(pki_dir):
    leaf = x509.load_pem_x509_certificate(read(pki_dir, "iso20-secp521r1", "secc_leaf"))
    assert isinstance(leaf.public_key().curve, ec.SECP521R1) and isinstance(leaf.signature_hash_algorithm, hashes.SHA512)
    assert isinstance(x509.load_pem_x509_certificate(read(pki_dir, "iso20-ed448", "secc_leaf")).public_key(),
                      ed448.Ed448PublicKey)
    leaf2 = x509.load_pem_x509_certificate(read(pki_dir, "iso2-secp256r1", "secc_leaf"))
    assert isinstance(leaf2.public_key().curve, ec.SECP256R1)
    emaid = x509.load_pem_x509_certificate(read(pki_dir, "iso20-secp521r1", "contract_leaf"))
    assert emaid.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "DEV2HC1234567X9"
    assert (pki_dir / "iso20-secp521r1" / "vehicle_chain.pem").exists()
    assert oct((pki_dir / "iso20-ed448" / "secc_leaf.key.pem").stat().st_mode)[-3:] == "600"


def test_cli_init_and_show(tmp_path):
    r = subprocess.run([sys.executable, "-m", "v2h.cli", "pki", "init", str(tmp_path / "p")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "secc_chain.pem" in r.stdout and "DC=CPO" in r.stdout
    s = subprocess.run([sys.executable, "-m", "v2h.cli", "pki", "show",
                        str(tmp_path / "p" / "iso20-secp521r1" / "secc_chain.pem")], capture_output=True, text=True)
    assert s.returncode == 0 and s.stdout.count("issuer:") == 3 and "secp521r1" in s.stdout
    bad = subprocess.run([sys.executable, "-m", "v2h.cli", "pki", "show", str(tmp_path / "nope.pem")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


# --- the negative corpus ----------------------------------------------------------------------

def _name(cn, dc=None, org="V2H Test"):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def _ku(ca: bool, ds: bool = True, cert_sign: bool = True):
    return x509.KeyUsage(digital_signature=not ca and ds, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca and cert_sign,
                         crl_sign=ca, encipher_only=False, decipher_only=False)


def make(subject, key, issuer, issuer_key, *, ca, pathlen=None, start=None, days=365, bc=True, ku=None,
         hash_=hashes.SHA512, extra=()):
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(start or NOW - dt.timedelta(days=1))
         .not_valid_after((start or NOW - dt.timedelta(days=1)) + dt.timedelta(days=days)))
    if bc:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
    b = b.add_extension(ku if ku is not None else _ku(ca), critical=True)
    for ext, crit in extra:
        b = b.add_extension(ext, critical=crit)
    algo = None if isinstance(issuer_key, ed448.Ed448PrivateKey) else hash_()
    return b.sign(issuer_key, algo)


class World:
    """A -20 secp521r1 hierarchy built here, so each corpus entry can break one thing."""

    def __init__(self):
        self.k = lambda: ec.generate_private_key(ec.SECP521R1())
        self.root_key, self.s1_key, self.s2_key, self.leaf_key = self.k(), self.k(), self.k(), self.k()
        self.root_name, self.s1_name, self.s2_name = _name("Root"), _name("Sub 1"), _name("Sub 2")
        self.root = make(self.root_name, self.root_key, self.root_name, self.root_key, ca=True, days=3650)
        self.s1 = make(self.s1_name, self.s1_key, self.root_name, self.root_key, ca=True, pathlen=1)
        self.s2 = make(self.s2_name, self.s2_key, self.s1_name, self.s1_key, ca=True, pathlen=0)
        self.leaf = make(_name("SECC", "CPO"), self.leaf_key, self.s2_name, self.s2_key, ca=False)

    def chain(self, leaf=None, s2=None, s1=None):
        return [leaf or self.leaf, s2 or self.s2, s1 or self.s1]


W = World()
OTHER = World()


def _big_leaf():
    extra = [(x509.SubjectAlternativeName([x509.DNSName("x" * 60 + f"{i}.example") for i in range(40)]), False)]
    return make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key, ca=False, extra=extra)


def _tampered():
    der = bytearray(W.leaf.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    return bytes(der)


CORPUS = {
    "expired leaf": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key, ca=False,
                                         start=NOW - dt.timedelta(days=400), days=30)),
    "leaf not yet valid": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key, ca=False,
                                               start=NOW + dt.timedelta(days=2))),
    "expired sub-CA": lambda: W.chain(s1=make(W.s1_name, W.s1_key, W.root_name, W.root_key, ca=True, pathlen=1,
                                              start=NOW - dt.timedelta(days=900), days=10)),
    "wrong root": lambda: OTHER.chain(),
    "wrong curve (P-256 leaf in a -20 chain)": lambda: W.chain(make(
        _name("SECC", "CPO"), ec.generate_private_key(ec.SECP256R1()), W.s2_name, W.s2_key, ca=False)),
    "P-384 leaf": lambda: W.chain(make(_name("SECC", "CPO"), ec.generate_private_key(ec.SECP384R1()),
                                       W.s2_name, W.s2_key, ca=False)),
    "RSA leaf": lambda: W.chain(make(_name("SECC", "CPO"), rsa.generate_private_key(65537, 2048),
                                     W.s2_name, W.s2_key, ca=False)),
    "Ed448 leaf under secp521r1 CAs": lambda: W.chain(make(_name("SECC", "CPO"), ed448.Ed448PrivateKey.generate(),
                                                           W.s2_name, W.s2_key, ca=False)),
    "garbage DER": lambda: [b"\x30\x82\x01\x00garbage" + bytes(50), W.s2, W.s1],
    "truncated PEM": lambda: W.leaf.public_bytes(serialization.Encoding.PEM)[:300],
    "missing DC=CPO": lambda: W.chain(make(_name("SECC"), W.leaf_key, W.s2_name, W.s2_key, ca=False)),
    "DC=MO instead of CPO": lambda: W.chain(make(_name("SECC", "MO"), W.leaf_key, W.s2_name, W.s2_key, ca=False)),
    "too long (three sub-CAs)": lambda: _too_long(),
    "CA bit missing on sub-CA 2": lambda: _resigned_leaf(make(W.s2_name, W.s2_key, W.s1_name, W.s1_key, ca=False)),
    "basicConstraints missing on sub-CA 2": lambda: _resigned_leaf(
        make(W.s2_name, W.s2_key, W.s1_name, W.s1_key, ca=True, bc=False)),
    "leaf is a CA": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key, ca=True)),
    "sub-CA without keyCertSign": lambda: _resigned_leaf(
        make(W.s2_name, W.s2_key, W.s1_name, W.s1_key, ca=True, pathlen=0, ku=_ku(True, cert_sign=False))),
    "leaf without digitalSignature": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key,
                                                          ca=False, ku=_ku(False, ds=False))),
    "path length exceeded": lambda: W.chain(s1=make(W.s1_name, W.s1_key, W.root_name, W.root_key, ca=True, pathlen=0)),
    "bad signature (tampered leaf)": lambda: [_tampered(), W.s2, W.s1],
    "signed by the wrong key": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s1_key, ca=False)),
    "SHA-256 signature in a secp521r1 chain": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, W.s2_name,
                                                                   W.s2_key, ca=False, hash_=hashes.SHA256)),
    "unknown critical extension": lambda: W.chain(make(
        _name("SECC", "CPO"), W.leaf_key, W.s2_name, W.s2_key, ca=False,
        extra=[(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True)])),
    "broken link (issuer name)": lambda: W.chain(make(_name("SECC", "CPO"), W.leaf_key, _name("Sub X"), W.s2_key,
                                                      ca=False)),
    "ends in a self-signed non-anchor": lambda: W.chain() + [OTHER.root],
    "empty chain": lambda: [],
    "longer than 1600 bytes": lambda: W.chain(_big_leaf()),
    "self-signed leaf": lambda: [make(_name("SECC", "CPO"), W.leaf_key, _name("SECC", "CPO"), W.leaf_key, ca=False)],
}


def _too_long():
    k3 = W.k()
    s3_name = _name("Sub 3")
    s1 = make(W.s1_name, W.s1_key, W.root_name, W.root_key, ca=True)
    s2 = make(W.s2_name, W.s2_key, W.s1_name, W.s1_key, ca=True)
    s3 = make(s3_name, k3, W.s2_name, W.s2_key, ca=True)
    leaf = make(_name("SECC", "CPO"), W.leaf_key, s3_name, k3, ca=False)
    return [leaf, s3, s2, s1]


def _resigned_leaf(s2):
    return [W.leaf, s2, W.s1]


def test_the_good_world_validates():
    assert len(validate_chain(W.chain(), [W.root], now=NOW, purpose="secc", profile="iso20")) == 4


@pytest.mark.parametrize("case", list(CORPUS))
def test_broken_chain_is_rejected_with_a_reason(case):
    chain = CORPUS[case]()
    with pytest.raises(ChainError) as e:
        validate_chain(chain, [W.root], now=NOW, purpose="secc", profile="iso20")
    assert e.value.reason


def test_expired_anchor_is_rejected():
    old_root = make(W.root_name, W.root_key, W.root_name, W.root_key, ca=True, start=NOW - dt.timedelta(days=40),
                    days=10)
    with pytest.raises(ChainError, match="root: expired"):
        validate_chain(W.chain(), [old_root], now=NOW, purpose="secc", profile="iso20")


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 20
