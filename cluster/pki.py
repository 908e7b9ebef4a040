"""Certificates, keys and password hashes for a cluster, made with ``cryptography``.

Pure functions over PEM bytes: no files here (:mod:`cluster.state` decides what lives where).
Keys are ECDSA P-256 (fast to make, accepted by Kubernetes, etcd, nginx and Go's TLS); the
service-account signing key too (the apiserver signs ES256 tokens with it).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
# Certificates are dated a little in the past so a VM whose clock lags still accepts them.
BACKDATE = datetime.timedelta(minutes=5)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class CertKey:
    """A PEM certificate and its PEM private key (never shown in a repr)."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def __repr__(self) -> str:
        try:
            subject = self.cert.subject.rfc4514_string()
        except ValueError:
            subject = "unparsable certificate"
        return f"CertKey({subject})"

    def private_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an ECDSA private key")
        return key


def new_private_key_pem() -> bytes:
    """A fresh ECDSA P-256 private key, PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(private_key_pem: bytes) -> bytes:
    """The SubjectPublicKeyInfo PEM of a private key (the apiserver's service-account-key-file)."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_ca(common_name: str, *, days: int = CA_DAYS) -> CertKey:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key_pem = new_private_key_pem()
    key = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def issue(
    ca: CertKey,
    common_name: str,
    *,
    organizations: Iterable[str] = (),
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[IPAddress | str] = (),
    server: bool = False,
    client: bool = False,
    days: int = LEAF_DAYS,
) -> CertKey:
    """A leaf certificate signed by ``ca`` for a TLS server, a TLS client, or both.

    For client certificates Kubernetes reads the user from CN and the groups from O.
    """
    if not (server or client):
        raise ValueError("a certificate must be for a server, a client or both")
    key_pem = new_private_key_pem()
    key = serialization.load_pem_private_key(key_pem, password=None)
    ca_cert, ca_key = ca.cert, ca.private_key()
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans = _sans(dns_names, ip_addresses)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return CertKey(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def _sans(dns_names: Iterable[str], ips: Iterable[IPAddress | str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dict.fromkeys(dns_names)]
    unique_ips = dict.fromkeys(ipaddress.ip_address(ip) for ip in ips)
    names += [x509.IPAddress(ip) for ip in unique_ips]
    return names


def subject_alt_names(cert: x509.Certificate) -> tuple[frozenset[str], frozenset[IPAddress]]:
    """The DNS names and IP addresses a certificate is valid for."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset(), frozenset()
    return frozenset(ext.get_values_for_type(x509.DNSName)), frozenset(
        ext.get_values_for_type(x509.IPAddress)
    )


def identity(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """(CN, (O, ...)) of a certificate: the user and groups Kubernetes sees for it."""
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


def still_valid(pair: CertKey, ca: CertKey, *, min_days: int = 30) -> bool:
    """Whether ``pair`` was signed by ``ca``, matches its own key, and has ``min_days`` left."""
    try:
        cert = pair.cert
        ca_cert = ca.cert
        if cert.issuer != ca_cert.subject:
            return False
        cert.verify_directly_issued_by(ca_cert)
        if cert.public_key() != pair.private_key().public_key():
            return False
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - _now() >= datetime.timedelta(days=min_days)


def new_ssh_keypair(comment: str) -> tuple[bytes, str]:
    """An ed25519 key pair: (OpenSSH private key PEM, ``ssh-ed25519 AAAA... comment`` line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode()} {comment}"


def new_password() -> str:
    """A random admin password: 32 bytes (256 bits) from the OS, URL-safe text."""
    return secrets.token_urlsafe(32)


# --- htpasswd --------------------------------------------------------------------------------
#
# nginx checks basic-auth passwords with the system's crypt(3), which on Debian understands
# SHA-512 crypt ("$6$"), the strongest scheme both nginx and the Python stdlib (hashlib) can
# produce without a new dependency ({SHA} is one unsalted SHA-1; {SSHA} one salted SHA-1; bcrypt
# would need the bcrypt package). SHA-512 crypt is salted and iterated. The default 5000 rounds
# are kept on purpose: the password has 256 random bits, so stretching adds no real strength,
# while nginx pays the rounds again on every request that uses basic auth.

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SHA512_CRYPT_ROUNDS = 5000


def sha512_crypt(password: str, salt: str, rounds: int = SHA512_CRYPT_ROUNDS) -> str:
    """SHA-512 crypt as specified by Ulrich Drepper ("Unix crypt using SHA-256 and SHA-512")."""
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError("rounds must be from 1000 to 999999999")
    if not salt or any(ch not in _ITOA64 for ch in salt):
        raise ValueError("salt must be 1 to 16 characters of [./0-9A-Za-z]")
    pw, sv = password.encode(), salt[:16].encode()
    alternate = hashlib.sha512(pw + sv + pw).digest()
    digest_a = hashlib.sha512(pw + sv)
    digest_a.update(_stretch(alternate, len(pw)))
    length = len(pw)
    while length:
        digest_a.update(alternate if length & 1 else pw)
        length >>= 1
    current = digest_a.digest()
    p_bytes = _stretch(hashlib.sha512(pw * len(pw)).digest(), len(pw))
    s_bytes = _stretch(hashlib.sha512(sv * (16 + current[0])).digest(), len(sv))
    for i in range(rounds):
        step = hashlib.sha512(p_bytes if i & 1 else current)
        if i % 3:
            step.update(s_bytes)
        if i % 7:
            step.update(p_bytes)
        step.update(current if i & 1 else p_bytes)
        current = step.digest()
    prefix = "$6$" if rounds == SHA512_CRYPT_ROUNDS else f"$6$rounds={rounds}$"
    return f"{prefix}{sv.decode()}${_encode_sha512(current)}"


def _stretch(block: bytes, length: int) -> bytes:
    """``block`` repeated to exactly ``length`` bytes."""
    return (block * (length // len(block) + 1))[:length]


def _encode_sha512(digest: bytes) -> str:
    """The spec's byte permutation and base-64 alphabet for the 64-byte result."""
    out = []
    for i in range(21):
        a, b, c = digest[i], digest[i + 21], digest[i + 42]
        triple = ((a, b, c), (b, c, a), (c, a, b))[i % 3]
        out.append(_b64_24bit(triple[0], triple[1], triple[2], 4))
    out.append(_b64_24bit(0, 0, digest[63], 2))
    return "".join(out)


def _b64_24bit(high: int, mid: int, low: int, count: int) -> str:
    word = (high << 16) | (mid << 8) | low
    chars = []
    for _ in range(count):
        chars.append(_ITOA64[word & 0x3F])
        word >>= 6
    return "".join(chars)


def htpasswd_line(user: str, password: str) -> str:
    """``user:$6$salt$hash`` for nginx's ``auth_basic_user_file``, with a fresh random salt."""
    salt = "".join(secrets.choice(_ITOA64) for _ in range(16))
    return f"{user}:{sha512_crypt(password, salt)}"


def htpasswd_matches(line: str, user: str, password: str) -> bool:
    """Whether an htpasswd line made by :func:`htpasswd_line` is for ``user`` and ``password``."""
    name, _, hashed = line.strip().partition(":")
    parts = hashed.split("$")
    if name != user or len(parts) != 4 or parts[1] != "6":
        return False
    try:
        expected = sha512_crypt(password, parts[2])
    except ValueError:
        return False
    return hmac.compare_digest(expected, hashed)
