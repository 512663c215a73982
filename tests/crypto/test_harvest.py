"""Harvesting a sender's certificate from signed inbound mail: messages signed by Debian's
`openssl cms -sign` and by cryptography's PKCS7SignatureBuilder with certificates of the lab
CA, then judged by `harvest` — kept only when signature, chain, dates, address and usability
all hold, refused with a reason (never an exception) otherwise."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from sealgate.crypto.harvest import (
    MAX_MESSAGE_BYTES,
    MAX_SIGNATURE_BYTES,
    SYSTEM_TRUST,
    Harvested,
    NotHarvested,
    harvest,
    is_signed,
)
from sealgate.crypto.smime import certificate_info, encrypt
from sealgate.lab.pki import TestCa
from tests.crypto.conftest import Person

NOW = datetime.now(UTC)
ENTITY = (b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
          b"The Falcon numbers are attached.\r\nRegards, Bob\r\n")
HEADERS = (b"From: Bob <bob@partner.example>\r\nTo: alice@sealgate.example\r\n"
           b"Subject: Falcon\r\nDate: Tue, 03 Mar 2026 10:15:00 +0100\r\n")

Signer = Callable[[Person, Path], bytes]


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False,
                          timeout=60)


def _openssl_signed(person: Person, tmp_path: Path, *options: str | Path,
                    headers: bytes = HEADERS) -> bytes:
    """`headers` then what `openssl cms -sign` writes (MIME-Version, Content-Type, body)."""
    content, signed = tmp_path / "content.eml", tmp_path / "signed.eml"
    content.write_bytes(ENTITY)
    done = _openssl("cms", "-sign", "-md", "sha256", "-in", content, "-signer",
                    person.cert_file, "-inkey", person.key_file, *options, "-out", signed)
    assert done.returncode == 0, done.stderr.decode()
    return headers + signed.read_bytes()


def _detached(person: Person, tmp_path: Path) -> bytes:
    return _openssl_signed(person, tmp_path)  # LF line ends around CRLF content


def _detached_crlf(person: Person, tmp_path: Path) -> bytes:
    return _openssl_signed(person, tmp_path, "-crlfeol")


def _opaque(person: Person, tmp_path: Path) -> bytes:
    return _openssl_signed(person, tmp_path, "-nodetach")


def _cryptography_detached(person: Person, tmp_path: Path) -> bytes:
    """application/x-pkcs7-signature, CRLF throughout."""
    key = serialization.load_pem_private_key(person.key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(person.cert_pem)
    return HEADERS + (pkcs7.PKCS7SignatureBuilder().set_data(ENTITY)
                      .add_signer(cert, key, hashes.SHA256())
                      .sign(serialization.Encoding.SMIME,
                            [pkcs7.PKCS7Options.DetachedSignature]))


SIGNERS = pytest.mark.parametrize(
    "sign", [_detached, _detached_crlf, _opaque, _cryptography_detached],
    ids=["openssl-detached", "openssl-detached-crlf", "openssl-opaque",
         "cryptography-detached"])


def _identity(ca: TestCa, pki_dir: Path, address: str, label: str,
              **options: object) -> Person:
    key_pem, cert_pem = ca.issue_email(address, **options)  # type: ignore[arg-type]
    key_file, cert_file = pki_dir / f"{label}.key", pki_dir / f"{label}.pem"
    key_file.write_bytes(key_pem)
    cert_file.write_bytes(cert_pem)
    return Person(address, key_pem, cert_pem, key_file, cert_file)


def _intermediate(root: TestCa) -> TestCa:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        "Sealgate Test Issuing CA")]))
            .issuer_name(root.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=1000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                root.key.public_key()), critical=False)
            .sign(root.key, hashes.SHA256()))
    return TestCa(key=key, cert=cert)


def _refused(result: Harvested | NotHarvested) -> str:
    assert isinstance(result, NotHarvested), result
    assert result.reason and "\n" not in result.reason
    return result.reason


def _crlf(raw: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", raw)


def _with_signature(raw: bytes, signature: bytes) -> bytes:
    """`raw` (detached, CRLF) with the base64 of its signature part replaced by `signature`."""
    head, _, rest = raw.partition(b'filename="smime.p7s"\r\n\r\n')
    tail = rest[rest.index(b"\r\n\r\n--"):]
    return head + b'filename="smime.p7s"\r\n\r\n' + signature + tail


def _signature_der(raw: bytes) -> bytes:
    rest = raw.partition(b'filename="smime.p7s"\r\n\r\n')[2]
    return base64.b64decode(rest[:rest.index(b"\r\n\r\n--")])


# ---------------------------------------------------------------------------- kept


@SIGNERS
def test_a_good_signature_is_harvested(sign: Signer, ca: TestCa, bob: Person,
                                       tmp_path: Path) -> None:
    result = harvest(sign(bob, tmp_path), ca.cert_pem, NOW)
    assert isinstance(result, Harvested), result
    expected = certificate_info(bob.cert_pem, NOW)
    assert result.address == "bob@partner.example"
    assert result.fingerprint_sha256 == expected.fingerprint_sha256
    assert (x509.load_pem_x509_certificate(result.certificate_pem)
            == x509.load_pem_x509_certificate(bob.cert_pem))
    assert result.not_after == expected.not_after
    assert "CN=Sealgate Test CA" in result.evidence
    assert expected.not_after is not None
    assert expected.not_after.date().isoformat() in result.evidence
    assert "\n" not in result.evidence


def test_from_is_matched_whatever_its_case_and_display_name(ca: TestCa, bob: Person,
                                                            tmp_path: Path) -> None:
    raw = _openssl_signed(bob, tmp_path, headers=b'From: "Bob (Partner)" <BOB@Partner.Example>\r\n')
    result = harvest(raw, ca.cert_pem, NOW)
    assert isinstance(result, Harvested), result
    assert result.address == "bob@partner.example"


def test_unsigned_outer_fields_may_differ(ca: TestCa, bob: Person, tmp_path: Path) -> None:
    raw = _detached(bob, tmp_path).replace(b"Subject: Falcon", b"Subject: Re: Falcon")
    assert isinstance(harvest(raw, ca.cert_pem, NOW), Harvested)


def test_an_intermediate_carried_in_the_message_completes_the_chain(
        ca: TestCa, pki_dir: Path, tmp_path: Path) -> None:
    issuing = _intermediate(ca)
    carol = _identity(issuing, pki_dir, "carol@partner.example", "carol-via-intermediate")
    (tmp_path / "issuing.pem").write_bytes(issuing.cert_pem)

    with_chain = _openssl_signed(carol, tmp_path, "-certfile", tmp_path / "issuing.pem",
                                 headers=b"From: carol@partner.example\r\n")
    result = harvest(with_chain, ca.cert_pem, NOW)
    assert isinstance(result, Harvested), result
    assert result.address == "carol@partner.example"
    assert "chain to O=Sealgate lab,CN=Sealgate Test CA" in result.evidence

    without_chain = _openssl_signed(carol, tmp_path, headers=b"From: carol@partner.example\r\n")
    assert "unable to get local issuer certificate" in _refused(
        harvest(without_chain, ca.cert_pem, NOW))


def test_several_trusted_cas_in_one_bundle(ca: TestCa, bob: Person, tmp_path: Path) -> None:
    bundle = TestCa.create("Some Other CA").cert_pem + ca.cert_pem
    assert isinstance(harvest(_opaque(bob, tmp_path), bundle, NOW), Harvested)


# ---------------------------------------------------------------------------- signature


@pytest.mark.parametrize("sign", [_detached, _cryptography_detached],
                         ids=["openssl", "cryptography"])
def test_detached_content_changed_after_signing_is_refused(
        sign: Signer, ca: TestCa, bob: Person, tmp_path: Path) -> None:
    raw = sign(bob, tmp_path)
    tampered = raw.replace(b"Falcon numbers", b"Eagle! numbers")
    assert tampered != raw
    assert "does not match the signed content" in _refused(harvest(tampered, ca.cert_pem, NOW))


def test_opaque_content_changed_after_signing_is_refused(ca: TestCa, bob: Person,
                                                         tmp_path: Path) -> None:
    raw = _crlf(_opaque(bob, tmp_path))
    head, _, body = raw.partition(b"\r\n\r\n")
    der = base64.b64decode(body)
    assert b"Falcon numbers" in der
    forged = base64.encodebytes(der.replace(b"Falcon numbers", b"Eagle! numbers"))
    tampered = head + b"\r\n\r\n" + forged
    assert "does not match the signed content" in _refused(harvest(tampered, ca.cert_pem, NOW))


def test_line_ends_inside_the_signed_part_are_not_normalised_away(
        ca: TestCa, bob: Person, tmp_path: Path) -> None:
    """A trailing blank line added to the signed part changes the signed bytes."""
    raw = _cryptography_detached(bob, tmp_path)
    tampered = raw.replace(b"Regards, Bob\r\n", b"Regards, Bob\r\n\r\n", 1)
    assert "does not match" in _refused(harvest(tampered, ca.cert_pem, NOW))


def test_a_signature_from_another_message_is_refused(ca: TestCa, bob: Person,
                                                     tmp_path: Path) -> None:
    """Bob's genuine signature over other text, put on this message."""
    (tmp_path / "other.eml").write_bytes(b"Content-Type: text/plain\r\n\r\nsomething else\r\n")
    done = _openssl("cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
                    "-in", tmp_path / "other.eml", "-signer", bob.cert_file,
                    "-inkey", bob.key_file, "-out", tmp_path / "other.p7s")
    assert done.returncode == 0, done.stderr.decode()
    swapped = _with_signature(_crlf(_detached(bob, tmp_path)),
                              base64.encodebytes((tmp_path / "other.p7s").read_bytes()))
    assert "does not match" in _refused(harvest(swapped, ca.cert_pem, NOW))


# ---------------------------------------------------------------------------- trust and dates


def test_a_signer_from_an_untrusted_ca_is_refused(ca: TestCa, pki_dir: Path,
                                                  tmp_path: Path) -> None:
    stranger_ca = TestCa.create("Stranger CA")
    mallory = _identity(stranger_ca, pki_dir, "bob@partner.example", "bob-by-stranger")
    raw = _detached(mallory, tmp_path)
    reason = _refused(harvest(raw, ca.cert_pem, NOW))
    assert reason == ("the signer's certificate does not verify: "
                      "unable to get local issuer certificate")
    assert isinstance(harvest(raw, stranger_ca.cert_pem, NOW), Harvested)


def test_a_self_signed_signer_is_refused(ca: TestCa, pki_dir: Path, tmp_path: Path) -> None:
    selfie = _identity(ca, pki_dir, "bob@partner.example", "bob-self-signed", self_signed=True)
    assert "does not verify" in _refused(harvest(_opaque(selfie, tmp_path), ca.cert_pem, NOW))


# Debian's bundle holds roots with serial number 0 (Go Daddy, Starfield, …), which
# cryptography warns about; OpenSSL is given them all the same.
@pytest.mark.filterwarnings("ignore:Parsed a serial number")
def test_the_system_trust_store_does_not_know_the_lab_ca(bob: Person, tmp_path: Path) -> None:
    reason = _refused(harvest(_detached(bob, tmp_path), None, NOW))
    if SYSTEM_TRUST.exists():
        assert reason == ("the signer's certificate does not verify: "
                          "unable to get local issuer certificate")
    else:
        assert reason.startswith("no trusted CAs")


@pytest.mark.parametrize("trust", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\n"
                                   b"AAAA\n-----END CERTIFICATE-----\n"],
                         ids=["empty", "text", "bad-pem"])
def test_a_trust_without_certificates_is_refused(trust: bytes, bob: Person,
                                                 tmp_path: Path) -> None:
    assert _refused(harvest(_detached(bob, tmp_path), trust, NOW)) == (
        "no trusted CAs: the trust given holds no PEM certificate")


def test_a_certificate_expired_at_now_is_refused(ca: TestCa, bob: Person,
                                                 tmp_path: Path) -> None:
    later = NOW + timedelta(days=400)  # bob's certificate is valid for 365 days
    assert "certificate has expired" in _refused(harvest(_detached(bob, tmp_path),
                                                         ca.cert_pem, later))


def test_a_certificate_expired_when_signing_is_refused(ca: TestCa, pki_dir: Path,
                                                       tmp_path: Path) -> None:
    old = _identity(ca, pki_dir, "bob@partner.example", "bob-expired",
                    not_before=NOW - timedelta(days=400), days=30)
    assert "certificate has expired" in _refused(harvest(_opaque(old, tmp_path),
                                                         ca.cert_pem, NOW))


def test_a_certificate_not_yet_valid_is_refused(ca: TestCa, bob: Person,
                                                tmp_path: Path) -> None:
    earlier = NOW - timedelta(days=2)
    assert "not yet valid" in _refused(harvest(_detached(bob, tmp_path), ca.cert_pem, earlier))


# ---------------------------------------------------------------------------- the certificate


def test_a_certificate_for_another_address_than_from_is_refused(
        ca: TestCa, eve: Person, tmp_path: Path) -> None:
    raw = _detached(eve, tmp_path)  # From: bob, signed with eve's good certificate
    assert _refused(harvest(raw, ca.cert_pem, NOW)) == (
        "the signer's certificate is for eve@elsewhere.example, not bob@partner.example")


def test_an_ec_certificate_is_refused_as_unusable_for_encryption(
        ca: TestCa, pki_dir: Path, tmp_path: Path) -> None:
    ec_bob = _identity(ca, pki_dir, "bob@partner.example", "bob-ec", key_type="ec")
    reason = _refused(harvest(_opaque(ec_bob, tmp_path), ca.cert_pem, NOW))
    assert reason.startswith("the signer's certificate cannot be used to encrypt to "
                             "bob@partner.example:")
    assert "RSA only" in reason


def test_a_signing_only_certificate_is_refused(ca: TestCa, pki_dir: Path,
                                               tmp_path: Path) -> None:
    signing_bob = _identity(ca, pki_dir, "bob@partner.example", "bob-sign-only",
                            key_usage=False)
    reason = _refused(harvest(_detached(signing_bob, tmp_path), ca.cert_pem, NOW))
    assert "key usage does not allow encryption" in reason


def test_a_certificate_without_email_protection_fails_the_smime_purpose(
        ca: TestCa, pki_dir: Path, tmp_path: Path) -> None:
    client_bob = _identity(ca, pki_dir, "bob@partner.example", "bob-client-auth",
                           email_protection=False)
    assert "unsuitable certificate purpose" in _refused(
        harvest(_detached(client_bob, tmp_path), ca.cert_pem, NOW))


@pytest.mark.parametrize("from_field, reason", [
    (b"", "no From field"),
    (b"From: bob@partner.example, eve@elsewhere.example\r\n",
     "From holds 2 addresses, not one"),
    (b"From: undisclosed-recipients:;\r\n", "From holds 0 addresses, not one"),
    (b"From: bob@partner.example\r\nFrom: bob@partner.example\r\n", "2 From fields"),
    (b"From: Bob\r\n", "From holds no usable address"),
], ids=["none", "two-addresses", "empty-group", "two-fields", "no-address"])
def test_from_must_hold_exactly_one_address(from_field: bytes, reason: str, ca: TestCa,
                                            bob: Person, tmp_path: Path) -> None:
    raw = _openssl_signed(bob, tmp_path, headers=from_field + b"Subject: x\r\n")
    assert _refused(harvest(raw, ca.cert_pem, NOW)) == reason


# ---------------------------------------------------------------------------- not signed


def test_an_unsigned_message_is_refused(ca: TestCa) -> None:
    raw = HEADERS + b"MIME-Version: 1.0\r\n" + ENTITY
    assert _refused(harvest(raw, ca.cert_pem, NOW)) == "not signed (text/plain)"
    assert _refused(harvest(HEADERS + b"\r\nplain\r\n", ca.cert_pem, NOW)) == (
        "not signed (text/plain)")


@pytest.mark.parametrize("signed_inside", [False, True], ids=["encrypted", "signed-encrypted"])
def test_an_encrypted_message_is_refused(signed_inside: bool, ca: TestCa, bob: Person,
                                         organisation: Person) -> None:
    raw = encrypt(HEADERS + b"MIME-Version: 1.0\r\n" + ENTITY, [organisation.cert_pem],
                  signer=(bob.key_pem, bob.cert_pem) if signed_inside else None, now=NOW)
    assert "encrypted" in _refused(harvest(raw, ca.cert_pem, NOW))


def test_a_pgp_signed_message_is_refused(ca: TestCa) -> None:
    raw = HEADERS + (b'Content-Type: multipart/signed; protocol="application/pgp-signature";'
                     b' micalg=pgp-sha256; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b\r\n'
                     b"Content-Type: application/pgp-signature\r\n\r\nsig\r\n--b--\r\n")
    assert "not S/MIME" in _refused(harvest(raw, ca.cert_pem, NOW))


# ---------------------------------------------------------------------------- hostile input


def _damaged(kind: str, good: bytes) -> bytes:
    boundary = re.search(rb'boundary="([^"]+)"', good)
    assert boundary
    b = boundary.group(1)
    if kind == "missing-boundary":
        return good.replace(b'; boundary="' + b + b'"', b"")
    if kind == "wrong-boundary":
        return good.replace(b'boundary="' + b + b'"', b'boundary="elsewhere"')
    if kind == "not-closed":
        return good[:good.rindex(b"--" + b + b"--")]
    if kind == "truncated-base64":  # 4k+1 characters: never valid
        compact = base64.b64encode(_signature_der(good))
        return _with_signature(good, compact[:len(compact) - len(compact) % 4 - 3])
    if kind == "garbage-der":
        return _with_signature(good, base64.encodebytes(b"\x30\x82\x01\x00" + b"\xff" * 300))
    if kind == "not-der":
        return _with_signature(good, base64.encodebytes(b"hello, this is no signature"))
    if kind == "empty-signature":
        return _with_signature(good, b"")
    if kind == "three-parts":
        return good.replace(b"\r\n--" + b + b"--", b"\r\n--" + b + b"\r\n\r\nextra\r\n--" + b
                            + b"--")
    if kind == "one-part":
        first = good.index(b"\r\n--" + b + b"\r\n")
        second = good.index(b"\r\n--" + b + b"\r\n", first + 1)
        return good[:second] + b"\r\n--" + b + b"--\r\n"
    if kind == "signature-not-base64":
        return good.replace(b"Content-Transfer-Encoding: base64",
                            b"Content-Transfer-Encoding: 8bit")
    if kind == "signature-wrong-type":
        return good.replace(b"Content-Type: application/pkcs7-signature",
                            b"Content-Type: text/plain")
    if kind == "two-content-types":
        return b"Content-Type: text/plain\r\n" + good
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, reason", [
    ("missing-boundary", "multipart/signed without a usable boundary"),
    ("wrong-boundary", "multipart/signed is not closed (truncated?)"),
    ("not-closed", "multipart/signed is not closed (truncated?)"),
    ("truncated-base64", "the signature is not valid base64 (truncated or damaged)"),
    ("garbage-der", "the signature is not readable CMS SignedData"),
    ("not-der", "the signature is not DER-encoded CMS"),
    ("empty-signature", "the signature is not DER-encoded CMS"),
    ("three-parts", "multipart/signed has 3 parts, not 2"),
    ("one-part", "multipart/signed has 1 parts, not 2"),
    ("signature-not-base64", "the signature part is not base64-encoded"),
    ("signature-wrong-type", "the signature part is text/plain, not application/pkcs7-signature"),
    ("two-content-types", "several Content-Type fields"),
])
def test_malformed_detached_messages_are_refused(kind: str, reason: str, ca: TestCa,
                                                 bob: Person, tmp_path: Path) -> None:
    good = _crlf(_detached(bob, tmp_path))
    assert isinstance(harvest(good, ca.cert_pem, NOW), Harvested)
    assert _refused(harvest(_damaged(kind, good), ca.cert_pem, NOW)) == reason


def test_malformed_opaque_messages_are_refused(ca: TestCa, bob: Person, tmp_path: Path) -> None:
    good = _crlf(_opaque(bob, tmp_path))
    head, _, body = good.partition(b"\r\n\r\n")
    assert _refused(harvest(head + b"\r\n\r\n" + body[:-40] + b"\r\n", ca.cert_pem, NOW)) == (
        "the signed data is not valid base64 (truncated or damaged)")
    cut = base64.encodebytes(base64.b64decode(body)[:-200])
    assert _refused(harvest(head + b"\r\n\r\n" + cut, ca.cert_pem, NOW)) == (
        "the signature is not readable CMS SignedData")
    binary = good.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: 7bit")
    assert _refused(harvest(binary, ca.cert_pem, NOW)) == (
        "the signed data is not base64-encoded")


def test_a_20_mb_signature_part_is_refused_before_decoding(ca: TestCa, bob: Person,
                                                          tmp_path: Path) -> None:
    good = _crlf(_detached(bob, tmp_path))
    huge = base64.encodebytes(b"\x30" * (20 * 1024 * 1024)).replace(b"\n", b"\r\n")
    reason = _refused(harvest(_with_signature(good, huge), ca.cert_pem, NOW))
    assert reason == f"the signature is larger than {MAX_SIGNATURE_BYTES} bytes"


def test_an_oversized_message_is_not_examined(ca: TestCa) -> None:
    raw = HEADERS + b"\r\n" + b"x" * MAX_MESSAGE_BYTES
    assert "not examined" in _refused(harvest(raw, ca.cert_pem, NOW))


@pytest.mark.parametrize("raw", [
    b"", b"\r\n", b"\x00\xff" * 100, b"From: bob@partner.example",
    b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"",
    b"From: bob@partner.example\r\nContent-Type: application/pkcs7-mime; "
    b"smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n",
    b"From: =?utf-8?b?!!!?= <\x80\xff@\r\n\tx>\r\nContent-Type: multipart/signed; protocol*=''"
    b"\r\n\r\n",
    HEADERS + b"Content-Type: " + b"multipart/mixed; boundary=a;" * 5000 + b"\r\n\r\n",
], ids=["empty", "blank", "binary", "header-only", "no-body", "opaque-empty",
        "broken-encoded-words", "long-content-type"])
def test_junk_is_refused_with_a_reason(raw: bytes, ca: TestCa) -> None:
    _refused(harvest(raw, ca.cert_pem, NOW))


def test_deep_nesting_inside_the_signed_part_is_not_parsed(ca: TestCa, bob: Person,
                                                          tmp_path: Path) -> None:
    depth = 5000
    nested = b"".join(b'Content-Type: multipart/mixed; boundary="n%d"\r\n\r\n--n%d\r\n'
                      % (level, level) for level in range(depth)) + b"\r\nleaf\r\n"
    (tmp_path / "nested.eml").write_bytes(nested)
    signed = tmp_path / "nested.p7s"
    done = _openssl("cms", "-sign", "-binary", "-outform", "DER", "-md", "sha256",
                    "-in", tmp_path / "nested.eml", "-signer", bob.cert_file,
                    "-inkey", bob.key_file, "-out", signed)
    assert done.returncode == 0, done.stderr.decode()
    raw = HEADERS + (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                     b' micalg=sha-256; boundary="outer"\r\n\r\n--outer\r\n' + nested
                     + b"\r\n--outer\r\nContent-Type: application/pkcs7-signature\r\n"
                     b"Content-Transfer-Encoding: base64\r\n\r\n"
                     + base64.encodebytes(signed.read_bytes()) + b"\r\n--outer--\r\n")
    assert isinstance(harvest(raw, ca.cert_pem, NOW), Harvested)


def test_every_truncation_of_a_signed_message_is_refused(ca: TestCa, bob: Person,
                                                          tmp_path: Path) -> None:
    good = _crlf(_detached(bob, tmp_path))
    for end in range(0, len(good) - 1, max(1, len(good) // 60)):
        _refused(harvest(good[:end], ca.cert_pem, NOW))


def test_flipped_bytes_in_the_signature_never_harvest(ca: TestCa, bob: Person,
                                                      tmp_path: Path) -> None:
    good = _crlf(_detached(bob, tmp_path))
    der = _signature_der(good)
    for position in range(7, len(der), len(der) // 25):
        flipped = bytearray(der)
        flipped[position] ^= 0x5A
        damaged = _with_signature(good, base64.encodebytes(bytes(flipped)))
        result = harvest(damaged, ca.cert_pem, NOW)
        # a flip inside an unsigned, unused field (an extra certificate, say) may leave
        # the signature valid; the harvested certificate is then still bob's
        if isinstance(result, Harvested):
            assert result.fingerprint_sha256 == certificate_info(
                bob.cert_pem, NOW).fingerprint_sha256
        else:
            _refused(result)


# ---------------------------------------------------------------------------- is_signed


@pytest.mark.parametrize("header, expected", [
    ('multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; '
     'boundary="x"', True),
    ('multipart/signed; protocol="application/x-pkcs7-signature"; micalg="sha-256"; '
     'boundary="x"', True),
    ('Multipart/Signed;\r\n\tprotocol="Application/PKCS7-Signature"; boundary=x', True),
    ("multipart/signed; protocol=application/pkcs7-signature", True),
    ('application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"', True),
    ('application/x-pkcs7-mime; smime-type="Signed-Data"; name=smime.p7m', True),
    ('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', False),
    ("application/pkcs7-mime; smime-type=authEnveloped-data", False),
    ("application/pkcs7-mime; smime-type=certs-only", False),
    ("application/pkcs7-mime", False),
    ('multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256', False),
    ("multipart/signed", False),
    ("multipart/mixed; boundary=x", False),
    ("text/plain; charset=utf-8", False),
    ("application/pkcs7-signature", False),
    ("", False),
    ("garbage;;;=\x00", False),
    ("text/plain\r\nContent-Type: multipart/signed; protocol=application/pkcs7-signature",
     False),
])
def test_is_signed(header: str, expected: bool) -> None:
    assert is_signed(header) is expected


def test_is_signed_agrees_with_what_harvest_examines(ca: TestCa, bob: Person,
                                                     tmp_path: Path) -> None:
    for sign in (_detached, _opaque, _cryptography_detached):
        raw = _crlf(sign(bob, tmp_path))
        header = re.search(rb"\r\nContent-Type: ((?:[^\r]|\r\n[ \t])*)\r\n", raw)
        assert header
        assert is_signed(header.group(1).decode())
