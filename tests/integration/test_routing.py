"""Per-recipient delivery on a real Postfix: one message to a recipient with an S/MIME
certificate on file, one with an OpenPGP key, one with neither and a colleague arrives in
four forms, each readable only by its recipient (decrypted here with openssl and gpg)."""

from __future__ import annotations

import re
import smtplib
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import select

from sealgate import config
from sealgate.lab.pki import TestCa
from sealgate.server.links import tracking_link
from sealgate.vault import recipient_keys
from sealgate.vault.models import AuditEvent
from sealgate.vault.vault import Vault
from tests.conftest import run_cli
from tests.crypto.test_pgp import GpgHome
from tests.integration.messages import SECRET_TEXT, compose, parsed, press
from tests.integration.test_milter import Gateway

ANN, CARL, BOB, NURSE = "ann@cert.test", "carl@key.test", "bob@plain.test", "nurse@example.org"


class Recipients:
    def __init__(self, root: Path) -> None:
        self.ca = TestCa.create()
        self.ann_key, self.ann_cert = self.ca.issue_email(ANN)
        (root / "ann.key").write_bytes(self.ann_key)
        (root / "ann.pem").write_bytes(self.ann_cert)
        self.gpg = GpgHome(root / "gnupg")
        self.gpg.generate(f"Carl <{CARL}>")
        (root / "carl.asc").write_bytes(self.gpg.export(CARL))
        self.root = root


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Recipients]]:
    root = tmp_path_factory.mktemp("routing")
    gateway = Gateway(root / "lab")
    (root / "gnupg").mkdir()
    people = Recipients(root)
    try:
        for name in ("ann.pem", "carl.asc"):
            run_cli("--home", str(gateway.home), "recipient-keys", "import", str(root / name))
        yield gateway, people
    finally:
        people.gpg.close()
        gateway.close()


def openssl_decrypt(people: Recipients, data: bytes) -> bytes:
    done = subprocess.run(["openssl", "cms", "-decrypt", "-inkey", str(people.root / "ann.key"),
                           "-recip", str(people.root / "ann.pem")], input=data,
                          capture_output=True, timeout=60, check=True)
    return done.stdout


def test_four_recipients_get_four_forms_each_only_readable_by_them(
        lab: tuple[Gateway, Recipients]) -> None:
    gateway, people = lab
    gateway.sink.clear()
    recipients = [ANN, CARL, BOB, NURSE]
    gateway.send(compose("encrypt/ Lab results", to=", ".join(recipients)), recipients)
    got = gateway.sink.wait_for_recipients(recipients)
    assert len({id(d) for d in got.values()}) == 4  # four separate copies
    for address in (ANN, CARL, BOB):
        assert SECRET_TEXT.encode() not in got[address].data
        assert parsed(got[address])["Subject"] == "Lab results"

    smime = parsed(got[ANN])
    assert smime.get_content_type() == "application/pkcs7-mime"
    inner = message_from_bytes(openssl_decrypt(people, got[ANN].data), policy=policy.default)
    assert SECRET_TEXT in inner.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    pgp = parsed(got[CARL])
    assert pgp.get_content_type() == "multipart/encrypted"
    armored = next(part.get_payload(decode=True) for part in pgp.iter_parts()
                   if part.get_content_type() == "application/octet-stream")
    decrypted = people.gpg.decrypt(armored)
    assert decrypted.returncode == 0 and SECRET_TEXT.encode() in decrypted.stdout

    assert parsed(got[BOB])["X-Sealgate-Message-Id"]  # the portal
    assert SECRET_TEXT.encode() in got[NURSE].data  # a colleague: as is
    assert "smime 1, pgp 1" in gateway.log("milter")
    # The plan, with the evidence for each choice, is in the deposit's audit event.
    vault = Vault.open(config.load(gateway.home, {}))
    try:
        with vault.database.session() as session:
            details = session.scalars(select(AuditEvent.details).where(
                AuditEvent.action == "message.deposited")).all()[-1]
    finally:
        vault.close()
    plan = {entry["address"]: entry for entry in details["plan"]}
    assert {a: e["method"] for a, e in plan.items()} == {ANN: "smime", CARL: "pgp",
                                                          BOB: "portal"}
    assert plan[ANN]["evidence"][-1].startswith("S/MIME certificate sha256 ")
    assert plan[BOB]["evidence"][-1] == "the portal"
    # And on the sender's tracking page.
    settings = config.load(gateway.home, {"SEALGATE_SERVER__BASE_URL":
                                          gateway.env["SEALGATE_SERVER__BASE_URL"]})
    deposit_id = uuid.UUID(str(parsed(got[BOB])["X-Sealgate-Message-Id"]))
    with urllib.request.urlopen(tracking_link(settings, deposit_id), timeout=10) as page:
        html = page.read().decode()
    assert "encrypted (S/MIME)" in html and "encrypted (PGP)" in html
    assert "S/MIME certificate sha256" in html and ANN in html and CARL in html
    assert SECRET_TEXT not in html


def test_the_sender_can_ask_for_the_portal(lab: tuple[Gateway, Recipients]) -> None:
    gateway, _ = lab
    gateway.sink.clear()
    gateway.send(compose("secure/ Lab results", to=ANN), [ANN])
    (delivered,) = gateway.sink.wait_for(1)
    message = parsed(delivered)
    assert message["X-Sealgate-Message-Id"] and message["Subject"] == "Lab results"
    assert SECRET_TEXT.encode() not in delivered.data


def test_with_a_signing_key_the_smime_copy_is_signed_by_the_organisation(
        lab: tuple[Gateway, Recipients]) -> None:
    gateway, people = lab
    key, cert = people.ca.issue_email("no-reply@example.org")
    (people.root / "org.key").write_bytes(key)
    (people.root / "org.pem").write_bytes(cert)
    (people.root / "ca.pem").write_bytes(people.ca.cert_pem)
    gateway.sink.clear()
    gateway.stop_server()
    gateway.env.update({"SEALGATE_ROUTING__SMIME_SIGN_KEY": str(people.root / "org.key"),
                        "SEALGATE_ROUTING__SMIME_SIGN_CERTIFICATE": str(people.root / "org.pem")})
    try:
        gateway.start_server()
        gateway.send(compose("encrypt/ Signed results", to=ANN), [ANN])
        (delivered,) = gateway.sink.wait_for(1)
    finally:
        gateway.stop_server()
        for name in ("SEALGATE_ROUTING__SMIME_SIGN_KEY",
                     "SEALGATE_ROUTING__SMIME_SIGN_CERTIFICATE"):
            del gateway.env[name]
        gateway.start_server()
    signed = openssl_decrypt(people, delivered.data)
    assert message_from_bytes(signed).get_content_type() == "multipart/signed"
    verified = subprocess.run(["openssl", "cms", "-verify", "-CAfile",
                               str(people.root / "ca.pem")], input=signed,
                              capture_output=True, timeout=60, check=False)
    assert verified.returncode == 0, verified.stderr
    assert SECRET_TEXT.encode() in verified.stdout


def test_with_the_portal_off_a_recipient_without_a_key_is_refused_with_the_reason(
        lab: tuple[Gateway, Recipients]) -> None:
    gateway, _ = lab
    gateway.sink.clear()
    gateway.stop_server()
    gateway.env["SEALGATE_ROUTING__PORTAL_ENABLED"] = "false"
    try:
        gateway.start_server()
        with pytest.raises(smtplib.SMTPDataError) as refused:
            gateway.send(compose("encrypt/ Lab results", to=f"{ANN}, {BOB}"), [ANN, BOB])
        assert refused.value.smtp_code == 554
        assert BOB.encode() in refused.value.smtp_error
        assert gateway.sink.messages == []
    finally:
        gateway.stop_server()
        del gateway.env["SEALGATE_ROUTING__PORTAL_ENABLED"]
        gateway.start_server()


def test_a_certificate_harvested_from_signed_mail_is_used_for_the_next_message(
        lab: tuple[Gateway, Recipients]) -> None:
    gateway, people = lab
    dora = "dora@partner.test"
    key, cert = people.ca.issue_email(dora)
    (people.root / "dora.key").write_bytes(key)
    (people.root / "dora.pem").write_bytes(cert)
    (people.root / "ca.pem").write_bytes(people.ca.cert_pem)
    (people.root / "entity.eml").write_bytes(b"Content-Type: text/plain\n\nHello!\n")
    subprocess.run(["openssl", "cms", "-sign", "-md", "sha256", "-in",
                    str(people.root / "entity.eml"), "-signer", str(people.root / "dora.pem"),
                    "-inkey", str(people.root / "dora.key"), "-out",
                    str(people.root / "signed.eml")], check=True, timeout=60)
    signed = (f"From: Dora <{dora}>\r\nTo: {NURSE}\r\nSubject: Referral\r\n".encode()
              + (people.root / "signed.eml").read_bytes())
    gateway.stop_server()
    gateway.stop_milter()
    harvesting = {"SEALGATE_ROUTING__HARVEST_CERTIFICATES": "true",
                  "SEALGATE_ROUTING__HARVEST_CA_FILE": str(people.root / "ca.pem")}
    gateway.env.update(harvesting)
    try:
        gateway.start_milter()
        gateway.start_server()
        gateway.sink.clear()
        gateway.postfix.send(dora, [NURSE], signed)
        (received,) = gateway.sink.wait_for(1)
        # Delivered as it came, signature and all (the line ends are SMTP's CRLF).
        body = (people.root / "signed.eml").read_bytes().partition(b"\n\n")[2]
        assert re.sub(rb"\r?\n", b"\r\n", body) in received.data

        def harvested() -> bool:
            vault = Vault.open(config.load(gateway.home, {}))
            try:
                return any(k.source == "harvest" for k in
                           recipient_keys.listed(vault, dora))
            finally:
                vault.close()

        deadline = time.monotonic() + 30
        while not harvested():
            assert time.monotonic() < deadline, gateway.log("server")[-3000:]
            time.sleep(0.2)
        gateway.sink.clear()
        gateway.send(compose("encrypt/ Your referral", to=dora), [dora])
        (delivered,) = gateway.sink.wait_for(1)
    finally:
        gateway.stop_server()
        gateway.stop_milter()
        for name in harvesting:
            del gateway.env[name]
        gateway.start_milter()
        gateway.start_server()
    assert parsed(delivered).get_content_type() == "application/pkcs7-mime"
    done = subprocess.run(["openssl", "cms", "-decrypt", "-inkey", str(people.root / "dora.key"),
                           "-recip", str(people.root / "dora.pem")], input=delivered.data,
                          capture_output=True, timeout=60, check=True)
    assert SECRET_TEXT.encode() in done.stdout


def test_with_no_method_set_to_hold_the_message_waits_until_a_key_is_on_file(
        lab: tuple[Gateway, Recipients]) -> None:
    gateway, people = lab
    gateway.stop_server()
    settings = {"SEALGATE_ROUTING__PORTAL_ENABLED": "false",
                "SEALGATE_ROUTING__NO_METHOD": "hold"}
    gateway.env.update(settings)
    try:
        gateway.start_server()
        gateway.sink.clear()
        recipients = [ANN, BOB, NURSE]
        gateway.send(compose("encrypt/ Held results", to=", ".join(recipients)), recipients)
        # The colleague gets it at once; the outside recipients wait with the sender's notice.
        got = gateway.sink.wait_for_recipients([NURSE, "who@example.org"])
        assert SECRET_TEXT.encode() in got[NURSE].data
        notice = parsed(got["who@example.org"])
        assert notice["Subject"] == "Held: Held results"
        text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert BOB in text and "no secure way to deliver" in text
        (link,) = re.findall(r"http://\S+/held/\S+", text)
        assert {r for m in gateway.sink.messages for r in m.rcpt_tos} == {
            NURSE, "who@example.org"}
        # Still nothing for BOB: the hold stays.
        page, answer = press(link, "send_securely")
        assert "no secure way to deliver" in page and "Send as is" not in page
        assert "still no secure way" in answer and BOB in answer
        # A certificate for BOB on file: now both get S/MIME.
        key, cert = people.ca.issue_email(BOB)
        (people.root / "bob.pem").write_bytes(cert)
        (people.root / "bob.key").write_bytes(key)
        run_cli("--home", str(gateway.home), "recipient-keys", "import",
                str(people.root / "bob.pem"))
        gateway.sink.clear()
        _, answer = press(link, "send_securely")
        assert "Sent securely" in answer, answer
        delivered = gateway.sink.wait_for_recipients([ANN, BOB])
    finally:
        gateway.stop_server()
        for name in settings:
            del gateway.env[name]
        gateway.start_server()
    assert SECRET_TEXT.encode() in openssl_decrypt(people, delivered[ANN].data)
    done = subprocess.run(["openssl", "cms", "-decrypt", "-inkey", str(people.root / "bob.key"),
                           "-recip", str(people.root / "bob.pem")], input=delivered[BOB].data,
                          capture_output=True, timeout=60, check=True)
    assert SECRET_TEXT.encode() in done.stdout
