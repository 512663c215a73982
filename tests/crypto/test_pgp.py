"""OpenPGP: keys judged at a given time, PGP/MIME that Debian's `gpg` (not our code)
decrypts for each recipient, and Web Key Directory over HTTPS from loopback with a test CA.

Recipient keys are made by `gpg --quick-gen-key` in temporary homes, once per module."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pysequoia
import pytest
from pysequoia.packet import PacketPile, SignatureType, Tag

from sealgate.crypto.pgp import (
    OBSCURED_SUBJECT,
    HttpsOpener,
    PgpError,
    encrypt,
    fetch_wkd,
    key_info,
    wkd_urls,
)
from sealgate.lab.pki import TestCa

SUBJECT = "Quarterly figures – Zürich ✓ confidential"
TEXT = "Plain body: the merger closes on Friday.\n"
HTML = "<p>HTML body: the <b>merger</b> closes on Friday.</p>\n"
PDF = b"%PDF-1.7\n" + b"PDF-ATTACHMENT-MARKER " * 40 + os.urandom(2048) + b"\n%%EOF\n"


# --- gpg, the reference implementation ----------------------------------------------------


class GpgHome:
    """One GnuPG home: generate, export, decrypt. Its agent is stopped by `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.chmod(0o700)

    def run(self, *args: str, data: bytes | None = None, faked_time: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = ["gpg", "--homedir", str(self.path), "--batch", "--no-tty",
                   "--pinentry-mode", "loopback", "--passphrase", ""]
        if faked_time:
            command += ["--faked-system-time", faked_time]
        done = subprocess.run([*command, *args], input=data, capture_output=True, timeout=120,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"gpg {' '.join(args)} failed: {done.stderr.decode()}")
        return done

    def generate(self, uid: str, algorithm: str = "future-default", usage: str = "default",
                 expire: str = "never", faked_time: str | None = None) -> str:
        self.run("--quick-gen-key", uid, algorithm, usage, expire, faked_time=faked_time)
        return self.fingerprint(uid)

    def add_subkey(self, fingerprint: str, algorithm: str, usage: str) -> None:
        self.run("--quick-add-key", fingerprint, algorithm, usage, "never")

    def fingerprint(self, uid: str) -> str:
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        return next(line.split(":")[9] for line in listing.splitlines()
                    if line.startswith("fpr:"))

    def subkey_fingerprints(self, uid: str) -> list[str]:
        listing = self.run("--with-colons", "--list-keys", uid).stdout.decode()
        return [line.split(":")[9] for line in listing.splitlines()
                if line.startswith("fpr:")][1:]

    def export(self, uid: str) -> bytes:
        return self.run("--export", "--armor", uid).stdout

    def decrypt(self, armored: bytes) -> subprocess.CompletedProcess[bytes]:
        return self.run("--decrypt", data=armored, check=False)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "gpg-agent"],
                       capture_output=True, timeout=30, check=False)


@dataclass
class Keys:
    alice: bytes
    bob: bytes
    p256: bytes
    expired: bytes
    revoked: bytes
    sign_only: bytes
    weak_rsa: bytes
    subkey_revoked: bytes
    fingerprints: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, GpgHome]]:
    made = {name: GpgHome(tmp_path_factory.mktemp(f"gpg-{name}"))
            for name in ("alice", "bob", "others")}
    yield made
    for home in made.values():
        home.close()


@pytest.fixture(scope="module")
def keys(homes: dict[str, GpgHome]) -> Keys:
    alice, bob, others = homes["alice"], homes["bob"], homes["others"]
    fingerprints = {"alice": alice.generate("Alice <alice@example.org>")}
    # Bob: RSA at the 2048-bit floor, primary for signing and a subkey for encryption.
    fingerprints["bob"] = bob.generate("Bob Partner <bob@partner.example>", "rsa2048", "sign")
    bob.add_subkey(fingerprints["bob"], "rsa2048", "encr")

    p256 = others.generate("P256 <p256@example.org>", "nistp256", "sign")
    others.add_subkey(p256, "nistp256", "encr")
    # gpg refuses an expiry in the past, so the key is made in 2020, valid for a year.
    others.generate("Old <old@example.org>", expire="1y", faked_time="20200101T000000")
    # Revoked: import the revocation certificate gpg stored when it made the key.
    revoked = others.generate("Gone <gone@example.org>")
    stored = (others.path / "openpgp-revocs.d" / f"{revoked}.rev").read_bytes()
    others.run("--import", data=stored.replace(b":-----BEGIN", b"-----BEGIN"))
    others.generate("Signer <signer@example.org>", "ed25519", "sign")
    weak = others.generate("Weak <weak@example.org>", "rsa1024", "sign")
    others.add_subkey(weak, "rsa1024", "encr")
    # Only the encryption subkey revoked (`revkey` in the key editor).
    subrev = others.generate("Subrev <subrev@example.org>")
    others.run("--command-fd", "0", "--edit-key", subrev,
               data=b"key 1\nrevkey\ny\n0\n\ny\nsave\n")
    fingerprints.update(p256=p256, revoked=revoked)
    return Keys(
        alice=alice.export("alice@example.org"), bob=bob.export("bob@partner.example"),
        p256=others.export("p256@example.org"), expired=others.export("old@example.org"),
        revoked=others.export("gone@example.org"), sign_only=others.export("signer@example.org"),
        weak_rsa=others.export("weak@example.org"),
        subkey_revoked=others.export("subrev@example.org"), fingerprints=fingerprints)


# --- the message -----------------------------------------------------------------------------


@pytest.fixture
def original() -> bytes:
    message = EmailMessage()
    message["From"] = "Sam Sender <sam@corp.example>"
    message["To"] = "Alice <alice@example.org>, Bob Partner <bob@partner.example>"
    message["Cc"] = "Carol <carol@corp.example>"
    message["Reply-To"] = "desk@corp.example"
    message["Subject"] = SUBJECT
    message["Date"] = "Sun, 29 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = "<msg-1@corp.example>"
    message["In-Reply-To"] = "<msg-0@partner.example>"
    message["References"] = "<msg-0@partner.example>"
    message["X-Mailer"] = "Outlook 16.0"
    message["X-Internal-Project"] = "Project Falcon"
    message["Thread-Topic"] = "Quarterly figures"
    message["DKIM-Signature"] = "v=1; a=rsa-sha256; d=corp.example; s=s1; b=AAAA"
    message.set_content(TEXT)
    message.add_alternative(HTML, subtype="html")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="figures.pdf")
    return message.as_bytes(policy=policy.SMTP)


def _parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _armored_part(outer: bytes) -> bytes:
    parts = list(_parse(outer).iter_parts())
    payload = parts[1].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def _body(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[1]


# --- encrypt -------------------------------------------------------------------------------


def test_each_recipient_decrypts_with_gpg_and_gets_the_original(
        original: bytes, keys: Keys, homes: dict[str, GpgHome]) -> None:
    outer = encrypt(original, [keys.alice, keys.bob])

    message = _parse(outer)
    assert message.get_content_type() == "multipart/encrypted"
    assert message.get_param("protocol") == "application/pgp-encrypted"
    assert message["MIME-Version"] == "1.0"
    version, encrypted = list(message.iter_parts())
    assert version.get_content_type() == "application/pgp-encrypted"
    assert version.get_content().strip() == b"Version: 1"
    assert encrypted.get_content_type() == "application/octet-stream"
    armored = _armored_part(outer)
    assert armored.startswith(b"-----BEGIN PGP MESSAGE-----")
    assert armored.rstrip().endswith(b"-----END PGP MESSAGE-----")
    assert b"\r\n" in outer and b"\n" not in outer.replace(b"\r\n", b"")

    # The outer message: addressing and threading kept, nothing else of the original.
    original_headers = _parse(original)
    for name in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                 "In-Reply-To", "References"):
        assert message[name] == original_headers[name], name
    for name in ("X-Mailer", "X-Internal-Project", "Thread-Topic", "DKIM-Signature"):
        assert message[name] is None, name
    assert len(message.get_all("Content-Type") or []) == 1
    for secret in (b"merger", b"PDF-ATTACHMENT-MARKER", PDF[-200:], b"Project Falcon",
                   b"Outlook 16.0"):
        assert secret not in outer
    attachment_b64 = next(p for p in _parse(original).walk()
                          if p.get_content_type() == "application/pdf").get_payload()
    assert isinstance(attachment_b64, str)
    assert attachment_b64.splitlines()[3].encode() not in outer

    for name in ("alice", "bob"):
        done = homes[name].decrypt(armored)
        assert done.returncode == 0, done.stderr.decode()
        inner_raw = done.stdout
        assert _body(inner_raw) == _body(original), "the body entity must be byte-equal"
        inner = _parse(inner_raw)
        assert inner.get_param("hp") == "cipher"
        assert inner.get_content_type() == "multipart/mixed"
        for header in ("From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID",
                       "In-Reply-To", "References"):
            assert inner[header] == original_headers[header], header
        assert inner["Subject"] == SUBJECT
        assert inner["X-Mailer"] is None
        outer_seen = [str(v) for v in inner.get_all("HP-Outer") or []]
        assert f"Subject: {original_headers['Subject']}" in [v.replace("\r\n", "")
                                                            for v in outer_seen]
        text_part = inner.get_body(preferencelist=("plain",))
        html_part = inner.get_body(preferencelist=("html",))
        assert text_part is not None and html_part is not None
        assert _lf(text_part.get_content()) == TEXT
        assert _lf(html_part.get_content()) == HTML
        [attachment] = list(inner.iter_attachments())
        assert attachment.get_filename() == "figures.pdf"
        assert attachment.get_payload(decode=True) == PDF

    # Someone else's secret keys do not open it.
    assert homes["others"].decrypt(armored).returncode != 0


def test_protect_subject_puts_a_placeholder_outside(original: bytes, keys: Keys,
                                                   homes: dict[str, GpgHome]) -> None:
    outer = encrypt(original, [keys.alice], protect_subject=True)
    message = _parse(outer)
    assert message["Subject"] == OBSCURED_SUBJECT
    assert b"Quarterly" not in outer and "Zürich".encode() not in outer
    original_subject_line = next(line for line in original.split(b"\r\n")
                                 if line.startswith(b"Subject:"))
    assert original_subject_line not in outer

    done = homes["alice"].decrypt(_armored_part(outer))
    assert done.returncode == 0, done.stderr.decode()
    inner = _parse(done.stdout)
    assert inner["Subject"] == SUBJECT
    assert inner.get_param("hp") == "cipher"
    assert "Subject: [...]" in [str(v) for v in inner.get_all("HP-Outer") or []]
    assert _body(done.stdout) == _body(original)


def test_a_chosen_placeholder_and_a_plain_message(keys: Keys, homes: dict[str, GpgHome]) -> None:
    # Written with bare LF line ends, as a file would be: the result is CRLF throughout.
    plain = (b"From: sam@corp.example\nTo: alice@example.org\nSubject: Salaries\n"
             b"X-Originating-IP: 10.1.2.3\n\nThe salaries list.\n")
    outer = encrypt(plain, [keys.alice], protect_subject=True,
                    placeholder_subject="Message sécurisé")
    message = _parse(outer)
    assert message["Subject"] == "Message sécurisé"
    assert b"Salaries" not in outer and b"10.1.2.3" not in outer
    done = homes["alice"].decrypt(_armored_part(outer))
    assert done.returncode == 0, done.stderr.decode()
    inner = _parse(done.stdout)
    # No Content-Type in the original: the RFC 2045 default, marked.
    assert inner.get_content_type() == "text/plain" and inner.get_param("hp") == "cipher"
    assert inner["Subject"] == "Salaries"
    assert _body(done.stdout) == b"The salaries list.\r\n"
    assert b"\n" not in outer.replace(b"\r\n", b"")


def test_encrypting_to_an_unusable_key_is_refused(original: bytes, keys: Keys) -> None:
    for bad, reason in ((keys.expired, "expired on"), (keys.revoked, "revoked"),
                        (keys.sign_only, "no encryption subkey"),
                        (keys.weak_rsa, "RSA key of 1024 bits is too weak"),
                        (b"not a key at all", "not an OpenPGP key")):
        with pytest.raises(PgpError, match=reason):
            encrypt(original, [keys.alice, bad])
    with pytest.raises(PgpError, match="no OpenPGP key"):
        encrypt(original, [])


@pytest.mark.parametrize("message, reason", [
    (b"", "empty"),
    (b"this is not a header\r\n\r\nbody\r\n", "not a header field"),
    (b"\r\nbody only\r\n", "no header section"),
    (b"From: a@b.example\r\nSubject: one\nBcc: hidden@b.example\r\n\r\nx\r\n",
     "bare CR, LF or NUL"),
    (b"To: alice@example.org\r\nSubject: x\r\n\r\nbody\r\n", "no From header"),
    (b"From: a@b.example\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx\r\n",
     "more than one Content-Type"),
    (b"From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed\r\n\r\n"
     b"no boundary here\r\n", "no valid boundary"),
])
def test_a_message_that_cannot_be_read_is_refused(message: bytes, reason: str,
                                                  keys: Keys) -> None:
    with pytest.raises(PgpError, match=reason):
        encrypt(message, [keys.alice])


# --- key_info ------------------------------------------------------------------------------


def test_a_good_key(keys: Keys) -> None:
    now = datetime.now(UTC)
    info = key_info(keys.alice, now)
    assert info.usable and info.problems == ()
    assert info.fingerprint == keys.fingerprints["alice"]
    assert info.user_ids == ("Alice <alice@example.org>",)
    assert info.addresses == ("alice@example.org",)
    assert info.usable_for("alice@example.org") and info.usable_for("Alice@Example.ORG")
    assert not info.usable_for("bob@partner.example")
    assert info.expires is None
    assert info.created is not None and abs(info.created - now) < timedelta(hours=1)
    assert info.encryption_algorithm == "ECDH Curve25519"
    assert len(info.encryption_keys) == 1 and info.encryption_keys[0] != info.fingerprint


def test_rsa_2048_and_p256_keys_are_usable(keys: Keys, homes: dict[str, GpgHome]) -> None:
    now = datetime.now(UTC)
    bob = key_info(keys.bob, now)
    assert bob.usable_for("bob@partner.example"), bob.problems
    assert bob.encryption_algorithm == "RSA 2048"
    assert bob.encryption_keys == tuple(homes["bob"].subkey_fingerprints("bob@partner.example"))
    p256 = key_info(keys.p256, now)
    assert p256.usable_for("p256@example.org"), p256.problems
    assert p256.encryption_algorithm == "ECDH NIST P-256"


def test_the_same_key_in_binary_form(keys: Keys) -> None:
    binary = bytes(pysequoia.Cert.from_bytes(keys.alice))
    assert not binary.startswith(b"-----")
    assert key_info(binary, datetime.now(UTC)).usable_for("alice@example.org")


def test_an_expired_key_is_judged_at_the_time_given(keys: Keys) -> None:
    info = key_info(keys.expired, datetime.now(UTC))
    assert not info.usable and not info.usable_for("old@example.org")
    assert info.problems == ("expired on 2020-12-31",)
    assert info.expires == datetime(2020, 12, 31, tzinfo=UTC)
    assert key_info(keys.expired, datetime(2020, 6, 1, tzinfo=UTC)).usable_for(
        "old@example.org")


def test_a_revoked_key(keys: Keys) -> None:
    info = key_info(keys.revoked, datetime.now(UTC))
    assert info.fingerprint == keys.fingerprints["revoked"]
    assert not info.usable and not info.usable_for("gone@example.org")
    assert len(info.problems) == 1 and info.problems[0].startswith("revoked")


def test_a_key_whose_encryption_subkey_is_revoked(keys: Keys) -> None:
    info = key_info(keys.subkey_revoked, datetime.now(UTC))
    assert not info.usable and info.encryption_keys == ()
    assert [p for p in info.problems if p.startswith("encryption subkey revoked on")]


def test_a_sign_only_key(keys: Keys) -> None:
    info = key_info(keys.sign_only, datetime.now(UTC))
    assert info.addresses == ("signer@example.org",)
    assert info.problems == ("no encryption subkey",)
    assert not info.usable_for("signer@example.org")


def test_a_weak_rsa_key(keys: Keys) -> None:
    info = key_info(keys.weak_rsa, datetime.now(UTC))
    assert info.problems == ("RSA key of 1024 bits is too weak",)
    assert not info.usable_for("weak@example.org")


def test_a_forged_subkey_binding_is_not_trusted(keys: Keys) -> None:
    """The packets claim an encryption subkey, but its binding signature does not verify."""
    forged = b""
    for packet in PacketPile.from_bytes(keys.alice):
        raw = bytes(packet)
        if packet.tag == Tag.Signature and packet.signature_type == SignatureType.SubkeyBinding:
            raw = raw[:-3] + bytes([raw[-3] ^ 0x01]) + raw[-2:]
        forged += raw
    info = key_info(forged, datetime.now(UTC))
    assert not info.usable and info.encryption_keys == ()
    assert info.problems and "binding signature" in info.problems[0]


def test_two_keys_in_one_blob(keys: Keys) -> None:
    info = key_info(keys.alice + keys.bob, datetime.now(UTC))
    assert not info.usable
    assert "holds 2 OpenPGP keys" in info.problems[-1]


@pytest.mark.parametrize("garbage", [
    b"", b"   \n", b"garbage", os.urandom(600), b"\x99\x01\x0d" + os.urandom(40),
    b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64 !!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
    b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
])
def test_garbage_is_not_a_key(garbage: bytes) -> None:
    info = key_info(garbage, datetime.now(UTC))
    assert info.problems == ("not an OpenPGP key",)
    assert not info.usable and not info.usable_for("alice@example.org")
    assert info.fingerprint == ""


# --- WKD -----------------------------------------------------------------------------------


def test_wkd_urls_for_the_drafts_example() -> None:
    advanced, direct = wkd_urls("Joe.Doe@Example.ORG")
    assert advanced == ("https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/"
                        "iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe")
    assert direct == ("https://example.org/.well-known/openpgpkey/hu/"
                      "iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe")


def test_wkd_urls_escape_the_local_part_and_refuse_non_addresses() -> None:
    advanced, _ = wkd_urls("a+b&c@example.org")
    assert advanced.endswith("?l=a%2Bb%26c")
    for bad in ("no-at-sign", "@example.org", "joe@", "jo e@example.org",
                "joe@exa mple.org", "joe@example.org/evil", "joe@-bad-.example"):
        with pytest.raises(PgpError):
            wkd_urls(bad)


@dataclass
class WkdServer:
    port: int
    routes: dict[str, tuple[int, bytes]]
    delays: dict[str, float]
    requests: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _TlsServer

    def do_GET(self) -> None:
        site = self.server.site
        host = (self.headers.get("Host") or "").split(":")[0]
        site.requests.append(f"{host}{self.path}")
        time.sleep(site.delays.get(f"{host}{self.path}", 0))
        status, body = site.routes.get(f"{host}{self.path}", (404, b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    site: WkdServer


def _serve(tmp: Path, key_pem: bytes, cert_pem: bytes) -> tuple[_TlsServer, threading.Thread]:
    (tmp / "server.key").write_bytes(key_pem)
    (tmp / "server.pem").write_bytes(cert_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    server = _TlsServer(("127.0.0.1", 0), _Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.site = WkdServer(port=server.server_address[1], routes={}, delays={}, requests=[])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def wkd_ca() -> TestCa:
    return TestCa.create("Sealgate WKD test CA")


@pytest.fixture(scope="module")
def wkd(wkd_ca: TestCa, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WkdServer]:
    key_pem, cert_pem = wkd_ca.issue_server("openpgpkey.example.org",
                                            alt_names=("example.org",))
    server, thread = _serve(tmp_path_factory.mktemp("wkd"), key_pem, cert_pem)
    yield server.site
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def site(wkd: WkdServer) -> WkdServer:
    wkd.routes.clear()
    wkd.delays.clear()
    wkd.requests.clear()
    return wkd


def _opener(ca: TestCa, port: int) -> HttpsOpener:
    context = ssl.create_default_context(cadata=ca.cert_pem.decode())
    return HttpsOpener(ssl_context=context, resolve=lambda host, _port: ("127.0.0.1", port))


def _route(url: str) -> str:
    return url.removeprefix("https://")


def test_wkd_finds_the_key_by_the_advanced_method(site: WkdServer, wkd_ca: TestCa,
                                                  keys: Keys) -> None:
    advanced, _ = wkd_urls("alice@example.org")
    site.routes[_route(advanced)] = (200, bytes(pysequoia.Cert.from_bytes(keys.alice)))
    found = fetch_wkd("alice@example.org", opener=_opener(wkd_ca, site.port))
    assert found is not None
    info = key_info(found, datetime.now(UTC))
    assert info.usable_for("alice@example.org")
    assert info.fingerprint == keys.fingerprints["alice"]
    assert site.requests == [_route(advanced)]


def test_wkd_falls_back_to_the_direct_method(site: WkdServer, wkd_ca: TestCa,
                                             keys: Keys) -> None:
    advanced, direct = wkd_urls("Alice@example.org")
    site.routes[_route(direct)] = (200, keys.alice)  # armored is accepted too
    found = fetch_wkd("Alice@example.org", opener=_opener(wkd_ca, site.port))
    assert found is not None
    assert key_info(found, datetime.now(UTC)).fingerprint == keys.fingerprints["alice"]
    assert site.requests == [_route(advanced), _route(direct)]


def test_wkd_not_found_is_none_and_logged(site: WkdServer, wkd_ca: TestCa,
                                          caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sealgate.crypto.pgp"):
        assert fetch_wkd("nobody@example.org", opener=_opener(wkd_ca, site.port)) is None
    assert len(site.requests) == 2
    assert "HTTP 404" in caplog.text


def test_wkd_refuses_an_oversized_answer(site: WkdServer, wkd_ca: TestCa, keys: Keys) -> None:
    advanced, direct = wkd_urls("alice@example.org")
    site.routes[_route(advanced)] = (200, os.urandom(70 * 1024))
    site.routes[_route(direct)] = (200, keys.alice)
    assert fetch_wkd("alice@example.org", opener=_opener(wkd_ca, site.port),
                     max_bytes=len(keys.alice) - 1) is None
    assert fetch_wkd("alice@example.org", opener=_opener(wkd_ca, site.port)) is not None


def test_wkd_refuses_a_key_for_another_address_garbage_and_an_expired_key(
        site: WkdServer, wkd_ca: TestCa, keys: Keys) -> None:
    opener = _opener(wkd_ca, site.port)
    advanced, direct = wkd_urls("alice@example.org")
    site.routes[_route(advanced)] = (200, keys.bob)
    site.routes[_route(direct)] = (200, b"<html>hello</html>")
    assert fetch_wkd("alice@example.org", opener=opener) is None
    old, _ = wkd_urls("old@example.org")
    site.routes[_route(old)] = (200, keys.expired)
    assert fetch_wkd("old@example.org", opener=opener) is None


def test_wkd_answer_with_several_keys_gives_the_one_for_the_address(
        site: WkdServer, wkd_ca: TestCa, keys: Keys) -> None:
    advanced, _ = wkd_urls("alice@example.org")
    binary = [bytes(pysequoia.Cert.from_bytes(k)) for k in (keys.bob, keys.alice)]
    site.routes[_route(advanced)] = (200, b"".join(binary))
    found = fetch_wkd("alice@example.org", opener=_opener(wkd_ca, site.port))
    assert found is not None
    assert key_info(found, datetime.now(UTC)).fingerprint == keys.fingerprints["alice"]


def test_wkd_gives_up_on_a_slow_server(site: WkdServer, wkd_ca: TestCa, keys: Keys) -> None:
    advanced, direct = wkd_urls("alice@example.org")
    for url in (advanced, direct):
        site.routes[_route(url)] = (200, keys.alice)
        site.delays[_route(url)] = 2.0
    started = time.monotonic()
    assert fetch_wkd("alice@example.org", opener=_opener(wkd_ca, site.port),
                     timeout=0.3) is None
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("kind", ["self-signed", "wrong name", "another CA"])
def test_wkd_refuses_a_bad_certificate(kind: str, wkd_ca: TestCa, keys: Keys,
                                       tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    if kind == "self-signed":
        key_pem, cert_pem = wkd_ca.issue_server("openpgpkey.example.org",
                                                alt_names=("example.org",), self_signed=True)
    elif kind == "wrong name":
        key_pem, cert_pem = wkd_ca.issue_server("www.elsewhere.example")
    else:
        key_pem, cert_pem = TestCa.create("Impostor CA").issue_server(
            "openpgpkey.example.org", alt_names=("example.org",))
    server, thread = _serve(tmp_path, key_pem, cert_pem)
    try:
        for url in wkd_urls("alice@example.org"):
            server.site.routes[_route(url)] = (200, keys.alice)
        with caplog.at_level(logging.INFO, logger="sealgate.crypto.pgp"):
            assert fetch_wkd("alice@example.org",
                             opener=_opener(wkd_ca, server.site.port)) is None
        assert "TLS failed" in caplog.text
        assert server.site.requests == []  # no request was sent over the bad channel
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_wkd_survives_dns_failure_and_refused_connections(wkd_ca: TestCa) -> None:
    def no_dns(host: str, port: int) -> tuple[str, int]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    context = ssl.create_default_context(cadata=wkd_ca.cert_pem.decode())
    assert fetch_wkd("alice@example.org",
                     opener=HttpsOpener(ssl_context=context, resolve=no_dns)) is None
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    assert fetch_wkd("alice@example.org", opener=_opener(wkd_ca, closed)) is None
    assert fetch_wkd("not an address", opener=_opener(wkd_ca, closed)) is None


def test_an_opener_that_does_not_verify_is_refused() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="verifies"):
        HttpsOpener(ssl_context=context)


def test_the_wkd_hash_is_zbase32_of_sha1() -> None:
    """Cross-check with a straightforward z-base-32 written the other way round."""
    alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"
    digest = hashlib.sha1(b"joe.doe", usedforsecurity=False).digest()
    bits = "".join(f"{byte:08b}" for byte in digest)
    expected = "".join(alphabet[int(bits[i:i + 5], 2)] for i in range(0, 160, 5))
    assert expected == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    assert f"/hu/{expected}?" in wkd_urls("JOE.DOE@example.org")[1]
