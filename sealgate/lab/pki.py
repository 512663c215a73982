"""A tiny certificate authority for tests and benchmarks: S/MIME certificates for mail
addresses and TLS server certificates for a test MX, with the bad variants (expired, not yet
valid, wrong name, self-signed, weak key, missing key usages) chosen by parameters.

Test/bench support only: nothing here is meant for a real deployment (keys are unencrypted
PEM, serials random, no revocation)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["rsa", "ec"]
_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def _new_key(key_type: KeyType, key_size: int) -> _PrivateKey:
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def _key_pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, sign: bool = False, encipher: bool = False, agree: bool = False,
               cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=sign, content_commitment=False,
                         key_encipherment=encipher, data_encipherment=False,
                         key_agreement=agree, key_cert_sign=cert_sign, crl_sign=cert_sign,
                         encipher_only=False, decipher_only=False)


@dataclass(frozen=True)
class TestCa:
    """A root CA: `create()` it, then `issue_email(...)` / `issue_server(...)`."""

    __test__ = False  # a fixture class, not a pytest test class

    key: _PrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "Sealgate Test CA", *, key_size: int = 2048,
               days: int = 3650) -> TestCa:
        key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sealgate lab")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(_key_usage(cert_sign=True), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key=key, cert=cert)

    @property
    def cert_pem(self) -> bytes:
        return _cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    def _issue(self, subject: x509.Name, key: _PrivateKey, extensions: list[x509.ExtensionType],
               critical: set[type[x509.ExtensionType]], *, days: int,
               not_before: datetime | None, self_signed: bool) -> x509.Certificate:
        start = not_before if not_before is not None else datetime.now(UTC) - timedelta(hours=1)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(subject if self_signed else self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start)
                   .not_valid_after(start + timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True))
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False)
        for extension in extensions:
            builder = builder.add_extension(extension, critical=type(extension) in critical)
        return builder.sign(key if self_signed else self.key, hashes.SHA256())

    def issue_email(self, address: str, *, days: int = 365, key_size: int = 2048,
                    key_type: KeyType = "rsa", not_before: datetime | None = None,
                    email_protection: bool | None = True, key_usage: bool | None = True,
                    address_in_san: bool = True,
                    self_signed: bool = False) -> tuple[bytes, bytes]:
        """An S/MIME certificate for `address`: (private key PEM, certificate PEM).

        `email_protection`: True → EKU emailProtection; False → an EKU without it
        (clientAuth); None → no EKU extension. `key_usage`: True → digitalSignature plus
        keyEncipherment (RSA) or keyAgreement (EC); False → digitalSignature only; None → no
        keyUsage extension. `address_in_san=False` puts the address only in the subject's
        emailAddress attribute (old-style certificates). An expired certificate is
        `not_before` in the past with `days` short enough."""
        key = _new_key(key_type, key_size)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address),
                             x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)])
        extensions: list[x509.ExtensionType] = []
        if address_in_san:
            extensions.append(x509.SubjectAlternativeName([x509.RFC822Name(address)]))
        if key_usage is not None:
            rsa_key = key_type == "rsa"
            extensions.append(_key_usage(sign=True, encipher=key_usage and rsa_key,
                                         agree=key_usage and not rsa_key))
        if email_protection is not None:
            extensions.append(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.EMAIL_PROTECTION] if email_protection
                else [ExtendedKeyUsageOID.CLIENT_AUTH]))
        cert = self._issue(subject, key, extensions, {x509.KeyUsage}, days=days,
                           not_before=not_before, self_signed=self_signed)
        return _key_pem(key), _cert_pem(cert)

    def issue_server(self, hostname: str, *, alt_names: tuple[str, ...] = (), days: int = 365,
                     key_size: int = 2048, key_type: KeyType = "rsa",
                     not_before: datetime | None = None,
                     self_signed: bool = False) -> tuple[bytes, bytes]:
        """A TLS server certificate: (private key PEM, certificate PEM). `hostname` (the
        subject CN) and each of `alt_names` go into the subjectAltName, as an IP address
        when they parse as one, else as a DNS name. EKU serverAuth. A wrong-name certificate
        is simply one issued for another hostname."""
        key = _new_key(key_type, key_size)
        names: list[x509.GeneralName] = []
        for name in (hostname, *alt_names):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                names.append(x509.DNSName(name))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
        rsa_key = key_type == "rsa"
        extensions: list[x509.ExtensionType] = [
            x509.SubjectAlternativeName(names),
            _key_usage(sign=True, encipher=rsa_key),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        ]
        cert = self._issue(subject, key, extensions, {x509.KeyUsage}, days=days,
                           not_before=not_before, self_signed=self_signed)
        return _key_pem(key), _cert_pem(cert)
