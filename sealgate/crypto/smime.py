"""S/MIME for recipients whose certificate is on file: judge a certificate, and turn a whole
message into an encrypted (optionally signed, then encrypted) whole message.

Pure: bytes and values in, bytes and values out; the time is passed in (`encrypt` defaults
to the current time).

Choices, and why:

- Content encryption is AES-256-CBC inside CMS EnvelopedData (RFC 5652), the key transported
  to each recipient with RSA PKCS#1 v1.5. That is what `cryptography`'s
  `PKCS7EnvelopeBuilder` makes (AES-128 or AES-256, CBC only), and what every deployed
  S/MIME client reads. RFC 8551 prefers AES-GCM in AuthEnvelopedData (RFC 5083), which the
  library does not build and older clients do not read. CBC gives confidentiality, not
  integrity: a tampered ciphertext is detected only when the content is also signed, so
  signing is recommended. The library encrypts to RSA keys only: a certificate with any
  other key is reported as unusable (found by asking the library, so it stops being reported
  when the library learns more).
- Signing (optional) is `multipart/signed` with a detached CMS SignedData over SHA-256,
  protocol `application/pkcs7-signature` (RFC 8551), made before encrypting, so the
  signature is hidden too. The signed bytes are exactly the bytes placed in the multipart.
- Header protection (RFC 9788) and the outer message's fields: `crypto.protection`, shared
  with PGP/MIME.
"""

from __future__ import annotations

import base64
import email.utils
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealgate.crypto import protection
from sealgate.crypto.protection import OBSCURED_SUBJECT
from sealgate.errors import SealgateError

MIN_RSA_BITS = 2048
MIN_EC_BITS = 256

NOT_A_CERTIFICATE = "not a certificate"

_E = TypeVar("_E", bound=x509.ExtensionType)


class SmimeError(SealgateError, ValueError):
    """The message cannot be made into an S/MIME message: one line saying why."""


# ---------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class CertificateInfo:
    """What Sealgate needs to know about a recipient's certificate. `problems` lists, in
    words fit for an administrator, every reason not to encrypt to it; none means usable.
    Trust is the administrator's: the certificate was put on file, so no chain is built."""

    addresses: tuple[str, ...]
    subject: str
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    fingerprint_sha256: str  # lowercase hex, no separators
    key_type: str  # "RSA", "EC", "Ed25519", … or "" when unknown
    key_size: int | None  # bits (the curve's size for EC)
    can_encrypt: bool  # key type, strength and usages allow encryption (dates aside)
    problems: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not self.problems

    def usable_for(self, address: str) -> bool:
        """Usable, and issued for `address` (a bare address or `Name <address>`)."""
        wanted = _normalise_address(address)
        return (self.usable and bool(wanted)
                and any(_normalise_address(mine) == wanted for mine in self.addresses))


def _normalise_address(address: str) -> str:
    return email.utils.parseaddr(address.strip())[1].strip().casefold()


def _load_certificate(data: bytes) -> x509.Certificate | None:
    if not isinstance(data, bytes | bytearray | memoryview):
        return None
    raw = bytes(data)
    try:
        if b"-----BEGIN" in raw:  # PEM, perhaps after text such as openssl's "Bag Attributes"
            return x509.load_pem_x509_certificate(raw[raw.index(b"-----BEGIN"):].strip())
        # DER as it is: its last byte may well be a whitespace value.
        return x509.load_der_x509_certificate(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _addresses(cert: x509.Certificate) -> tuple[str, ...]:
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is not None:
        found = san.get_values_for_type(x509.RFC822Name)
        if found:
            return tuple(found)
    values = (attribute.value for attribute in
              cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS))
    return tuple(value.decode("ascii", "replace") if isinstance(value, bytes) else value
                 for value in values)


def _key_facts(cert: x509.Certificate) -> tuple[str, int | None, list[str]]:
    """Key type, size in bits, and what is wrong with it for encryption."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "", None, ["unsupported key type"]
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            return "RSA", key.key_size, [f"RSA key of {key.key_size} bits is too weak"]
        return "RSA", key.key_size, []
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.key_size < MIN_EC_BITS:
            return "EC", key.curve.key_size, [f"EC key on {key.curve.name} is too weak"]
        return "EC", key.curve.key_size, []
    signing_only: dict[type, str] = {ed25519.Ed25519PublicKey: "Ed25519",
                                     ed448.Ed448PublicKey: "Ed448", dsa.DSAPublicKey: "DSA"}
    for kind, name in signing_only.items():
        if isinstance(key, kind):
            return name, None, [f"{name} keys can sign but not encrypt"]
    for kind, name in ((x25519.X25519PublicKey, "X25519"), (x448.X448PublicKey, "X448")):
        if isinstance(key, kind):
            return name, None, []
    return "", None, ["unsupported key type"]


def _encryption_supported(cert: x509.Certificate, key_type: str) -> str | None:
    """Why the library cannot encrypt to this key, or None when it can."""
    try:
        pkcs7.PKCS7EnvelopeBuilder().add_recipient(cert)
    except TypeError:
        return f"{key_type or 'this'} keys are not supported for S/MIME encryption yet (RSA only)"
    except UnsupportedAlgorithm as error:
        return f"S/MIME encryption is unavailable here: {error}"
    return None


def _usage_problems(cert: x509.Certificate, key_type: str) -> list[str]:
    problems = []
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None:
        allowed = {"RSA": usage.key_encipherment, "EC": usage.key_agreement}.get(
            key_type, usage.key_encipherment or usage.key_agreement)
        if not allowed:
            problems.append("key usage does not allow encryption")
    extended = _extension(cert, x509.ExtendedKeyUsage)
    if extended is not None:
        purposes = set(extended)
        if not purposes & {ExtendedKeyUsageOID.EMAIL_PROTECTION,
                           ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}:
            problems.append("not valid for email protection")
    return problems


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unreadable(problem: str) -> CertificateInfo:
    return CertificateInfo(addresses=(), subject="", issuer="", not_before=None, not_after=None,
                           fingerprint_sha256="", key_type="", key_size=None,
                           can_encrypt=False, problems=(problem,))


def _describe(cert: x509.Certificate, now: datetime) -> CertificateInfo:
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    problems: list[str] = []
    if now > not_after:
        problems.append(f"expired on {not_after.date().isoformat()}")
    if now < not_before:
        problems.append(f"not yet valid (valid from {not_before.date().isoformat()})")
    addresses = _addresses(cert)
    if not addresses:
        problems.append("no email address")
    key_type, key_size, key_problems = _key_facts(cert)
    key_problems += _usage_problems(cert, key_type)
    if not key_problems:
        unsupported = _encryption_supported(cert, key_type)
        if unsupported:
            key_problems.append(unsupported)
    return CertificateInfo(
        addresses=addresses, subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(), not_before=not_before, not_after=not_after,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(), key_type=key_type,
        key_size=key_size, can_encrypt=not key_problems,
        problems=tuple(problems + key_problems))


def certificate_info(pem_or_der: bytes, now: datetime) -> CertificateInfo:
    """Describe an X.509 certificate (PEM or DER) as of `now`. Never raises: bytes that are
    not a certificate give an info whose only problem is "not a certificate"."""
    cert = _load_certificate(pem_or_der)
    if cert is None:
        return _unreadable(NOT_A_CERTIFICATE)
    try:
        return _describe(cert, _aware(now))
    except Exception as error:  # a parsed certificate whose extensions do not parse
        return _unreadable(f"unreadable certificate: {error}")


# ---------------------------------------------------------------------------- messages


def _canonical(body: bytes) -> bytes:
    """CRLF line ends throughout, as MIME canonical form and the signature need."""
    return re.sub(rb"\r?\n", b"\r\n", body)


def _base64_lines(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


# ---------------------------------------------------------------------------- signing


def _load_signer(signer: tuple[bytes, bytes], now: datetime,
                 ) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    key_pem, cert_pem = signer
    try:
        key = serialization.load_pem_private_key(bytes(key_pem), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SmimeError("the signing key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise SmimeError("the signing key must be an RSA or EC key")
    cert = _load_certificate(cert_pem)
    if cert is None:
        raise SmimeError("the signing certificate is not a certificate")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise SmimeError("the signing key does not belong to the signing certificate")
    if now > cert.not_valid_after_utc:
        raise SmimeError(f"the signing certificate expired on "
                         f"{cert.not_valid_after_utc.date().isoformat()}")
    if now < cert.not_valid_before_utc:
        raise SmimeError("the signing certificate is not yet valid")
    return cert, key


def _sign(entity: bytes, signer: tuple[bytes, bytes], now: datetime) -> bytes:
    """`entity` as the first part of a multipart/signed with a detached CMS signature."""
    cert, key = _load_signer(signer, now)
    signature = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
                 .add_signer(cert, key, hashes.SHA256())
                 .sign(serialization.Encoding.DER,
                       [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    boundary = f"sealgate-signed-{secrets.token_hex(16)}".encode()
    delimiter = b"--" + boundary
    # The CRLF before a delimiter belongs to the delimiter (RFC 2046): the part's content,
    # and so the signed bytes, are exactly `entity`.
    return b"".join([
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
        b'\tmicalg=sha-256; boundary="' + boundary + b'"\r\n',
        b"\r\n",
        b"This is a cryptographically signed message in MIME format.\r\n",
        b"\r\n", delimiter, b"\r\n",
        entity,
        b"\r\n", delimiter, b"\r\n",
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=smime.p7s\r\n",
        b"\r\n",
        _base64_lines(signature),
        b"\r\n", delimiter, b"--\r\n",
    ])


# ---------------------------------------------------------------------------- encryption


def _recipients(certificates: Sequence[bytes], now: datetime) -> list[x509.Certificate]:
    if not certificates:
        raise SmimeError("no recipient certificate was given")
    loaded: dict[bytes, x509.Certificate] = {}
    reasons = []
    for number, data in enumerate(certificates, start=1):
        info = certificate_info(data, now)
        cert = _load_certificate(data)
        if info.problems or cert is None:
            who = ", ".join(info.addresses) or info.subject or "unreadable"
            reasons.append(f"certificate {number} ({who}): {'; '.join(info.problems)}")
            continue
        loaded.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    if reasons:
        raise SmimeError("cannot encrypt to " + " | ".join(reasons))
    return list(loaded.values())


def encrypt(message: bytes, certificates: Sequence[bytes], *,
            signer: tuple[bytes, bytes] | None = None, protect_subject: bool = False,
            placeholder_subject: str = OBSCURED_SUBJECT,
            now: datetime | None = None) -> bytes:
    """Turn a whole RFC 5322 message into a whole S/MIME message that only the holders of
    `certificates` can read (each PEM or DER).

    With `signer` (private key PEM, certificate PEM) the content is signed first, so
    recipients can verify it came from the organisation. The outer message keeps the routing
    and threading fields; its Subject becomes `placeholder_subject` only with
    `protect_subject`. `now` (default: the current time) is the moment certificates must be
    valid at. Raises `SmimeError` with the reason for bad input."""
    moment = _aware(now) if now is not None else datetime.now(UTC)
    try:
        fields, body = protection.split(message)
        outer = protection.outer_fields(
            fields, placeholder_subject if protect_subject else None)
    except protection.UnreadableMessage as problem:
        raise SmimeError(str(problem)) from None
    recipients = _recipients(certificates, moment)
    content = protection.payload(fields, _canonical(body), outer)
    if signer is not None:
        content = _sign(content, signer, moment)

    builder = (pkcs7.PKCS7EnvelopeBuilder().set_data(content)
               .set_content_encryption_algorithm(algorithms.AES256))
    try:
        for cert in recipients:
            builder = builder.add_recipient(cert)
        envelope = builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise SmimeError(f"S/MIME encryption failed: {error}") from None

    return b"".join([
        *(field.raw for field in outer),
        b"MIME-Version: 1.0\r\n",
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Disposition: attachment; filename=smime.p7m\r\n",
        b"\r\n",
        _base64_lines(envelope),
    ])
