"""S/MIME delivery: what `smime.encrypt` writes is read back by Debian's `openssl cms` (never
by our own code), and `certificate_info` judges certificates the way an administrator would."""

from __future__ import annotations

import email.policy
import re
import subprocess
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealgate.crypto.smime import (
    OBSCURED_SUBJECT,
    SmimeError,
    certificate_info,
    encrypt,
)
from sealgate.lab import documents
from sealgate.lab.pki import TestCa
from tests.crypto.conftest import Person

NOW = datetime.now(UTC)
SUBJECT = "Übernahme Falke – vertraulich: Zahlen für Q3 (€)"
TEXT = "The Falcon acquisition closes on Friday at 41.20 per share; keep it quiet.\n"
HTML = "<p>The <b>Falcon acquisition</b> closes on Friday at 41.20 per share.</p>\n"
PDF_TEXT = "Falcon term sheet: price 41.20, break fee 3 percent"


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False,
                          timeout=60)


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _leaves(message: Message) -> list[tuple[str, object]]:
    """Each leaf part's type and decoded content, in order."""
    return [(part.get_content_type(), part.get_payload(decode=True))
            for part in message.walk() if not part.is_multipart()]


def _decrypt(outer: bytes, person: Person, tmp_path: Path) -> bytes:
    """The content of `outer` as `person` reads it, with openssl."""
    source, target = tmp_path / "outer.eml", tmp_path / f"inner-{person.address}.eml"
    source.write_bytes(outer)
    done = _openssl("cms", "-decrypt", "-binary", "-in", source, "-inkey", person.key_file,
                    "-recip", person.cert_file, "-out", target)
    assert done.returncode == 0, done.stderr.decode()
    return target.read_bytes()


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return documents.pdf([PDF_TEXT])


@pytest.fixture(scope="module")
def original(pdf: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Alice Martin <alice@sealgate.example>"
    message["To"] = "Bob <bob@partner.example>"
    message["Cc"] = "dana@clinic.example"
    message["Reply-To"] = "deals@sealgate.example"
    message["Subject"] = SUBJECT
    message["Date"] = "Tue, 03 Mar 2026 10:15:00 +0100"
    message["Message-ID"] = "<falcon.42@sealgate.example>"
    message["In-Reply-To"] = "<falcon.41@partner.example>"
    message["References"] = "<falcon.40@sealgate.example> <falcon.41@partner.example>"
    message["X-Project"] = "Falcon acquisition"
    message["Thread-Topic"] = "Falcon acquisition"
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=sealgate.example; s=s1; bh=AAAA; b=BBBB"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(pdf, maintype="application", subtype="pdf",
                           filename="term-sheet.pdf")
    return message.as_bytes(policy=email.policy.SMTP)


# ---------------------------------------------------------------- encrypt: structure


def test_each_recipient_reads_the_original_entity_with_protected_headers(
        original: bytes, bob: Person, dana: Person, tmp_path: Path) -> None:
    outer = encrypt(original, [bob.cert_pem, dana.cert_pem], now=NOW)
    source = _parse(original)
    for person in (bob, dana):
        inner = _parse(_decrypt(outer, person, tmp_path))
        assert inner.get_param("hp") == "cipher"
        assert inner.get_content_type() == "multipart/mixed"
        for name in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                     "In-Reply-To", "References"):
            assert inner[name] == source[name], name
        assert _leaves(inner) == _leaves(source)
        # RFC 9788: one HP-Outer per field left on the outer message, so a reader can tell
        # what travelled in clear.
        hp_outer = inner.get_all("HP-Outer") or []
        assert {value.split(":", 1)[0] for value in hp_outer} == {
            "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
            "References"}
        assert inner["X-Project"] is None and inner["DKIM-Signature"] is None


def test_the_outer_message_carries_routing_fields_and_no_plaintext(
        original: bytes, pdf: bytes, bob: Person, dana: Person) -> None:
    outer = encrypt(original, [bob.cert_pem, dana.cert_pem], now=NOW)
    parsed, source = _parse(outer), _parse(original)

    assert parsed.get_content_type() == "application/pkcs7-mime"
    assert parsed.get_param("smime-type") == "enveloped-data"
    assert parsed.get_param("name") == "smime.p7m"
    assert parsed.get_content_disposition() == "attachment"
    assert parsed.get_filename() == "smime.p7m"
    assert parsed["Content-Transfer-Encoding"] == "base64"
    assert parsed.get_all("MIME-Version") == ["1.0"]
    for name in ("From", "To", "Cc", "Reply-To", "Date", "Message-ID", "In-Reply-To",
                 "References", "Subject"):
        assert parsed[name] == source[name], name
    for name in ("X-Project", "Thread-Topic", "DKIM-Signature"):
        assert parsed[name] is None, name
    assert len(parsed.get_all("Content-Type") or []) == 1

    assert b"Falcon" not in outer and b"41.20" not in outer
    assert pdf not in outer and pdf[:64] not in outer
    attachment_lines = [line for line in original.split(b"\r\n") if len(line) == 76]
    assert attachment_lines and not any(line in outer for line in attachment_lines)
    assert outer.endswith(b"\r\n") and b"\n" not in outer.replace(b"\r\n", b"")


def test_protect_subject_hides_it_outside_and_keeps_it_inside(
        original: bytes, bob: Person, tmp_path: Path) -> None:
    outer = encrypt(original, [bob.cert_pem], protect_subject=True, now=NOW)
    parsed = _parse(outer)
    assert parsed["Subject"] == OBSCURED_SUBJECT == "[...]"
    encoded_subject = re.search(rb"\r\nSubject: (.*?)\r\n(?! )", original, re.S)
    assert encoded_subject and encoded_subject.group(1) not in outer
    inner = _parse(_decrypt(outer, bob, tmp_path))
    assert inner["Subject"] == SUBJECT
    assert "Subject: [...]" in (inner.get_all("HP-Outer") or [])


def test_a_custom_placeholder_subject(original: bytes, bob: Person) -> None:
    outer = encrypt(original, [bob.cert_pem], protect_subject=True,
                    placeholder_subject="Secure message from Sealgate", now=NOW)
    assert _parse(outer)["Subject"] == "Secure message from Sealgate"
    with pytest.raises(SmimeError, match="one line"):
        encrypt(original, [bob.cert_pem], protect_subject=True,
                placeholder_subject="two\r\nBcc: lines", now=NOW)


def test_someone_else_cannot_decrypt(original: bytes, bob: Person, eve: Person,
                                     tmp_path: Path) -> None:
    outer = tmp_path / "outer.eml"
    outer.write_bytes(encrypt(original, [bob.cert_pem], now=NOW))
    done = _openssl("cms", "-decrypt", "-in", outer, "-inkey", eve.key_file,
                    "-recip", eve.cert_file, "-out", tmp_path / "nothing.eml")
    assert done.returncode != 0


def test_content_encryption_is_aes_256(original: bytes, bob: Person, dana: Person,
                                       tmp_path: Path) -> None:
    outer = _parse(encrypt(original, [bob.cert_pem, dana.cert_pem], now=NOW))
    envelope = outer.get_payload(decode=True)
    assert isinstance(envelope, bytes)
    p7m = tmp_path / "smime.p7m"
    p7m.write_bytes(envelope)
    done = _openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", p7m)
    assert done.returncode == 0, done.stderr.decode()
    printed = done.stdout.decode()
    assert "pkcs7-envelopedData" in printed
    algorithm = re.search(r"contentEncryptionAlgorithm:\s*\n\s*algorithm: (\S+)", printed)
    assert algorithm and algorithm.group(1) in {"aes-256-cbc", "aes-256-gcm"}
    assert printed.count("d.ktri:") == 2  # one wrapped key per recipient


def test_line_feed_input_is_canonicalised(bob: Person, tmp_path: Path) -> None:
    raw = (b"From: a@sealgate.example\nTo: bob@partner.example\nSubject: lf\n"
           b"Content-Type: text/plain; charset=utf-8\n\nline one\nline two\n")
    inner = _decrypt(encrypt(raw, [bob.cert_pem], now=NOW), bob, tmp_path)
    assert inner.endswith(b"\r\n\r\nline one\r\nline two\r\n")
    assert _parse(inner).get_param("hp") == "cipher"


def test_a_message_without_mime_gets_a_text_plain_root(bob: Person, tmp_path: Path) -> None:
    raw = b"From: a@sealgate.example\r\nSubject: plain\r\n\r\nJust text.\r\n"
    inner = _parse(_decrypt(encrypt(raw, [bob.cert_pem], now=NOW), bob, tmp_path))
    assert inner.get_content_type() == "text/plain"
    assert inner.get_param("hp") == "cipher"
    assert inner.get_payload(decode=True) == b"Just text.\r\n"


def test_the_root_content_type_keeps_its_parameters_and_gets_one_hp(bob: Person,
                                                                   tmp_path: Path) -> None:
    raw = (b"From: a@sealgate.example\r\nSubject: one part\r\n"
           b"Content-Type: application/pdf; hp=\"clear\";\r\n"
           b" name*=utf-8''r%C3%A9sum%C3%A9.pdf; x-note=\"a; b\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjcK\r\n")
    inner = _decrypt(encrypt(raw, [bob.cert_pem], now=NOW), bob, tmp_path)
    parsed = _parse(inner)
    assert len(parsed.get_all("Content-Type") or []) == 1
    assert parsed.get_param("hp") == "cipher"
    assert parsed.get_filename() == "résumé.pdf"
    assert parsed.get_param("x-note") == "a; b"
    assert parsed.get_payload(decode=True) == b"%PDF-1.7\n"


# ---------------------------------------------------------------- encrypt: signed


def test_signed_then_encrypted_verifies_against_the_ca(
        original: bytes, bob: Person, organisation: Person, pki_dir: Path,
        tmp_path: Path) -> None:
    outer = encrypt(original, [bob.cert_pem], now=NOW,
                    signer=(organisation.key_pem, organisation.cert_pem))
    signed = _decrypt(outer, bob, tmp_path)
    top = _parse(signed)
    assert top.get_content_type() == "multipart/signed"
    assert top.get_param("protocol") == "application/pkcs7-signature"
    assert top.get_param("micalg") == "sha-256"
    assert b"Falcon" not in outer

    signed_file, content_file = tmp_path / "signed.eml", tmp_path / "content.eml"
    signed_file.write_bytes(signed)
    # Not -binary: with it openssl rejoins the signed part's lines with LF (unless
    # -crlfeol), which is not the canonical form that was signed.
    done = _openssl("cms", "-verify", "-CAfile", pki_dir / "ca.pem",
                    "-in", signed_file, "-out", content_file)
    assert done.returncode == 0, done.stderr.decode()
    content = _parse(content_file.read_bytes())
    assert content.get_param("hp") == "cipher"
    assert content["Subject"] == SUBJECT
    assert _leaves(content) == _leaves(_parse(original))

    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(signed.replace(b"Message-ID: <falcon.42@", b"Message-ID: <falcon.43@"))
    assert _openssl("cms", "-verify", "-CAfile", pki_dir / "ca.pem",
                    "-in", tampered, "-out", tmp_path / "x.eml").returncode != 0


def test_a_signer_whose_key_does_not_match_is_refused(original: bytes, bob: Person,
                                                      organisation: Person) -> None:
    with pytest.raises(SmimeError, match="does not belong"):
        encrypt(original, [bob.cert_pem], signer=(bob.key_pem, organisation.cert_pem), now=NOW)
    with pytest.raises(SmimeError, match="signing key"):
        encrypt(original, [bob.cert_pem], signer=(b"nope", organisation.cert_pem), now=NOW)


# ---------------------------------------------------------------- encrypt: bad input


def test_an_unusable_certificate_is_refused_with_the_reason(original: bytes, ca: TestCa,
                                                            bob: Person) -> None:
    _, expired = ca.issue_email("old@partner.example", not_before=NOW - timedelta(days=400),
                                days=30)
    with pytest.raises(SmimeError, match=r"certificate 2 \(old@partner\.example\): expired on"):
        encrypt(original, [bob.cert_pem, expired], now=NOW)
    with pytest.raises(SmimeError, match="not a certificate"):
        encrypt(original, [b"garbage"], now=NOW)


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "empty"),
    (b"this is not a header\r\n\r\nbody\r\n", "line 1 of the header section"),
    (b" From: continuation@first.example\r\n\r\nbody\r\n", "continuation"),
    (b"Subject: no sender\r\n\r\nbody\r\n", "no From"),
    (b"From: a@b.example\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
     "not well-formed MIME"),
    (b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\nnone\r\n",
     "not well-formed MIME"),
])
def test_a_message_that_is_not_mime_is_refused(raw: bytes, reason: str, bob: Person) -> None:
    with pytest.raises(SmimeError, match=reason) as caught:
        encrypt(raw, [bob.cert_pem], now=NOW)
    assert isinstance(caught.value, ValueError)


def test_no_certificate_is_refused(original: bytes) -> None:
    with pytest.raises(SmimeError, match="no recipient certificate"):
        encrypt(original, [], now=NOW)


# ---------------------------------------------------------------- certificate_info


def test_a_good_certificate(bob: Person) -> None:
    info = certificate_info(bob.cert_pem, NOW)
    assert info.usable and info.can_encrypt and info.problems == ()
    assert info.addresses == ("bob@partner.example",)
    assert info.key_type == "RSA" and info.key_size == 2048
    assert info.not_before is not None and info.not_before <= NOW
    assert info.not_after is not None and info.not_after > NOW
    assert info.usable_for("bob@partner.example")
    assert info.usable_for("Bob <BOB@Partner.Example>")
    assert not info.usable_for("dana@clinic.example")
    assert not info.usable_for("")
    printed = _openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", bob.cert_file)
    expected = printed.stdout.decode().split("=", 1)[1].strip().replace(":", "").lower()
    assert info.fingerprint_sha256 == expected


def test_der_is_read_too(bob: Person) -> None:
    der = x509.load_pem_x509_certificate(bob.cert_pem).public_bytes(serialization.Encoding.DER)
    assert certificate_info(der, NOW) == certificate_info(bob.cert_pem, NOW)


def test_expired_and_not_yet_valid(ca: TestCa) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    _, cert = ca.issue_email("old@partner.example", not_before=start, days=366)
    expired = certificate_info(cert, NOW)
    assert expired.problems == ("expired on 2025-01-01",)
    assert expired.can_encrypt and not expired.usable
    assert not expired.usable_for("old@partner.example")
    early = certificate_info(cert, datetime(2023, 6, 1, tzinfo=UTC))
    assert early.problems == ("not yet valid (valid from 2024-01-01)",)
    assert certificate_info(cert, datetime(2024, 6, 1)).usable  # naive means UTC


def test_usages_that_forbid_encryption(ca: TestCa) -> None:
    _, no_email = ca.issue_email("a@partner.example", email_protection=False)
    info = certificate_info(no_email, NOW)
    assert info.problems == ("not valid for email protection",) and not info.can_encrypt
    _, signing_only = ca.issue_email("a@partner.example", key_usage=False)
    assert certificate_info(signing_only, NOW).problems == ("key usage does not allow encryption",)
    _, bare = ca.issue_email("a@partner.example", email_protection=None, key_usage=None)
    assert certificate_info(bare, NOW).usable  # absent extensions restrict nothing


def test_a_weak_rsa_key(ca: TestCa) -> None:
    _, weak = ca.issue_email("weak@partner.example", key_size=1024)
    info = certificate_info(weak, NOW)
    assert info.problems == ("RSA key of 1024 bits is too weak",)
    assert info.key_size == 1024 and not info.can_encrypt


def test_a_hand_made_weak_certificate_without_an_address() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - weak on purpose
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "nobody")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7)
            .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(key, hashes.SHA256()))
    info = certificate_info(cert.public_bytes(serialization.Encoding.PEM), NOW)
    assert set(info.problems) == {"no email address", "RSA key of 1024 bits is too weak",
                                  "not valid for email protection"}


def test_the_subject_email_address_is_the_fallback(ca: TestCa) -> None:
    _, old_style = ca.issue_email("legacy@partner.example", address_in_san=False)
    info = certificate_info(old_style, NOW)
    assert info.addresses == ("legacy@partner.example",) and info.usable


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01\x02", b"-----BEGIN CERTIFICATE-----\nxx\n",
                                     "not bytes"])
def test_garbage_is_not_a_certificate(garbage: bytes) -> None:
    info = certificate_info(garbage, NOW)
    assert info.problems == ("not a certificate",)
    assert not info.usable and not info.can_encrypt and not info.usable_for("a@b.example")


def test_a_certificate_for_another_address(ca: TestCa) -> None:
    _, cert = ca.issue_email("carol@partner.example")
    info = certificate_info(cert, NOW)
    assert info.usable and not info.usable_for("bob@partner.example")


def test_an_ec_certificate_is_usable_exactly_when_encryption_works(
        ca: TestCa, original: bytes, pki_dir: Path, tmp_path: Path) -> None:
    key_pem, cert_pem = ca.issue_email("ec@partner.example", key_type="ec")
    info = certificate_info(cert_pem, NOW)
    assert info.key_type == "EC" and info.key_size == 256
    if info.usable:
        person = Person("ec@partner.example", key_pem, cert_pem, pki_dir / "ec.key",
                        pki_dir / "ec.pem")
        person.key_file.write_bytes(key_pem)
        person.cert_file.write_bytes(cert_pem)
        assert _parse(_decrypt(encrypt(original, [cert_pem], now=NOW), person, tmp_path))
    else:
        assert info.problems == ("EC keys are not supported for S/MIME encryption yet "
                                 "(RSA only)",)
        with pytest.raises(SmimeError, match="RSA only"):
            encrypt(original, [cert_pem], now=NOW)


# ---------------------------------------------------------------- the lab CA itself


def test_lab_server_certificates_verify_for_their_names(ca: TestCa, pki_dir: Path,
                                                       tmp_path: Path) -> None:
    _, good = ca.issue_server("mx.partner.example", alt_names=("localhost", "127.0.0.1"))
    _, expired = ca.issue_server("mx.partner.example", not_before=NOW - timedelta(days=10),
                                 days=1)
    _, self_signed = ca.issue_server("mx.partner.example", self_signed=True)
    for name, pem in (("good", good), ("expired", expired), ("self", self_signed)):
        (tmp_path / f"{name}.pem").write_bytes(pem)

    def verify(name: str, *checks: str) -> int:
        return _openssl("verify", "-CAfile", pki_dir / "ca.pem", "-purpose", "sslserver",
                        *checks, tmp_path / f"{name}.pem").returncode

    assert verify("good", "-verify_hostname", "mx.partner.example") == 0
    assert verify("good", "-verify_hostname", "localhost") == 0
    assert verify("good", "-verify_ip", "127.0.0.1") == 0
    assert verify("good", "-verify_hostname", "mx.other.example") != 0
    assert verify("expired") != 0
    assert verify("self") != 0
